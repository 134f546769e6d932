"""The built-in datasets: the standard on-disk formats by name, and a synthetic set for tests.

Each reads local files only, from ``root`` (the folder torchvision's dataset class would be
given) or, for Fashion-MNIST, the places :func:`fashion_mnist_dirs` lists. ``download: true``
lets torchvision fetch the published files into ``root`` first (it needs a network).
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from pydantic import BaseModel, Field

from robust_compress.config import STRICT
from robust_compress.data.datasets import DATASETS
from robust_compress.data.formats import read_cifar, read_idx, read_stl10
from robust_compress.data.tensors import TensorData
from robust_compress.errors import DataNotFoundError, UserError

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("RC_CACHE", Path.home() / ".cache" / "robust-compress"))
ENV_VAR = "RC_FASHION_MNIST"
IDX_FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}


def _root(name: str, root, download: bool) -> Path:
    """The folder to read ``name`` from, after torchvision's download when asked for."""
    if root is None:
        raise UserError(f"dataset {name!r} needs data.root: the folder holding its files.")
    if download:
        from robust_compress.adapters.torchvision.datasets import download as fetch

        fetch(name, Path(root))
    return Path(root)


def _first_dir(name: str, candidates: list[Path], marker: str) -> Path:
    for folder in candidates:
        if (folder / marker).exists():
            return folder
    searched = ", ".join(str(c) for c in candidates)
    raise DataNotFoundError(
        f"{name} not found: no {marker} in {searched}. Point data.root to the folder "
        "torchvision's dataset class would be given, or set download: true (needs a network)."
    )


@DATASETS.register("cifar10")
def cifar10(split: str, *, root=None, download: bool = False) -> TensorData:
    """CIFAR-10 in the python pickle format (``cifar-10-batches-py`` under ``root``)."""
    base = _root("cifar10", root, download)
    folder = _first_dir("CIFAR-10", [base / "cifar-10-batches-py", base], "batches.meta")
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    x, y = read_cifar(_files(folder, names), "labels")
    return TensorData(x, y, 10, "cifar10")


@DATASETS.register("cifar100")
def cifar100(split: str, *, root=None, download: bool = False) -> TensorData:
    """CIFAR-100 (fine labels) in the python pickle format (``cifar-100-python`` under ``root``)."""
    base = _root("cifar100", root, download)
    folder = _first_dir("CIFAR-100", [base / "cifar-100-python", base], "meta")
    x, y = read_cifar(_files(folder, [split]), "fine_labels")
    return TensorData(x, y, 100, "cifar100")


def _files(folder: Path, names: list[str]) -> list[Path]:
    missing = [n for n in names if not (folder / n).is_file()]
    if missing:
        raise DataNotFoundError(f"{folder} lacks {', '.join(missing)}.")
    return [folder / n for n in names]


def _idx_split(name: str, dirs: list[Path], split: str, classes: int) -> TensorData | None:
    images, labels = IDX_FILES[split]
    for d in dirs:
        for ext in (".gz", ""):
            xf, yf = d / (images + ext), d / (labels + ext)
            if xf.is_file() and yf.is_file():
                x, y = read_idx(xf).unsqueeze(1), read_idx(yf).long()
                if len(x) != len(y):
                    raise UserError(f"{d}: {len(x)} images but {len(y)} labels.")
                return TensorData(x, y, classes, name)
    return None


@DATASETS.register("mnist")
def mnist(split: str, *, root=None, download: bool = False) -> TensorData:
    """MNIST from its IDX files (``.gz`` or not), in ``root`` or ``root/MNIST/raw``."""
    base = _root("mnist", root, download)
    found = _idx_split("mnist", [base, base / "MNIST" / "raw"], split, 10)
    if found is None:
        raise DataNotFoundError(f"MNIST's IDX files are not in {base} nor {base / 'MNIST/raw'}.")
    return found


def fashion_mnist_dirs(root: str | Path | None = None) -> list[Path]:
    """The folders searched for the Fashion-MNIST IDX files, in order."""
    dirs: list[Path] = []
    for given in (root, os.environ.get(ENV_VAR)):
        if given:
            dirs += [Path(given), Path(given) / "FashionMNIST" / "raw"]
    dirs.append(DEBIAN_DIR)
    dirs.append(CACHE_DIR / "FashionMNIST" / "raw")
    return dirs


@DATASETS.register("fashion-mnist")
def fashion_mnist(split: str, *, root=None, download: bool = False) -> TensorData:
    """Fashion-MNIST from the IDX files (Debian's package, ``root``, or torchvision's layout)."""
    dirs = fashion_mnist_dirs(root)
    found = _idx_split("fashion-mnist", dirs, split, 10)
    if found is not None:  # kept as floats: the figures of earlier runs stay bit-identical
        return TensorData(found.x.float().div_(255.0), found.y, 10, "fashion-mnist")
    if download:
        from robust_compress.adapters.torchvision.datasets import download as fetch

        fetch("fashion-mnist", CACHE_DIR)
        return fashion_mnist(split, root=None, download=False)
    searched = ", ".join(str(d) for d in dirs)
    raise DataNotFoundError(
        f"Fashion-MNIST not found (searched {searched}). Get it one of three ways: "
        "(1) `sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu); "
        f"(2) point to a folder with the four IDX .gz files: `--data-root DIR` or {ENV_VAR}=DIR; "
        "(3) let torchvision download it: `download: true` in the recipe's data block "
        "(needs a network)."
    )


@DATASETS.register("stl10")
def stl10(split: str, *, root=None, download: bool = False) -> TensorData:
    """STL-10's labelled 96x96 images (``stl10_binary`` under ``root``)."""
    base = _root("stl10", root, download)
    folder = _first_dir("STL-10", [base / "stl10_binary", base], f"{split}_X.bin")
    x, y = read_stl10(folder / f"{split}_X.bin", folder / f"{split}_y.bin")
    return TensorData(x, y, 10, "stl10")


@DATASETS.register("svhn")
def svhn(split: str, *, root=None, download: bool = False) -> TensorData:
    """SVHN's cropped digits (``train_32x32.mat``, ``test_32x32.mat`` in ``root``)."""
    from robust_compress.adapters.torchvision.datasets import read_svhn

    base = _root("svhn", root, download)
    x, y = read_svhn(_first_dir("SVHN", [base], f"{split}_32x32.mat") / f"{split}_32x32.mat")
    return TensorData(x, y, 10, "svhn")


class SyntheticOptions(BaseModel):
    """Options of the synthetic set (``data.options``)."""

    model_config = STRICT
    channels: int = Field(1, ge=1, le=4)
    size: int = Field(28, ge=8, le=512)
    classes: int = Field(10, ge=2, le=12)
    train: int = Field(512, gt=0)
    test: int = Field(256, gt=0)


@DATASETS.register("synthetic", config=SyntheticOptions)
def synthetic(split: str, *, root=None, download: bool = False, **options) -> TensorData:
    """A deterministic, learnable set: each class a bright square at its own place, plus noise.

    The seed depends only on the split, so two calls give identical tensors. The defaults give
    512 training and 256 test 1x28x28 images of 10 classes; ``options`` (``channels``,
    ``size``, ``classes``, ``train``, ``test``) make it RGB, larger or smaller.
    """
    o = SyntheticOptions(**options)
    n = o.train if split == "train" else o.test
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    y = torch.arange(n) % o.classes
    x = torch.rand(n, o.channels, o.size, o.size, generator=gen) * 0.3
    scale, side = o.size / 28, max(1, round(6 * o.size / 28))
    for cls in range(o.classes):
        row, col = round((2 + 8 * (cls // 4)) * scale), round((2 + 8 * (cls % 4)) * scale)
        x[y == cls, :, row : row + side, col : col + side] += 0.6
    return TensorData(x.clamp_(0, 1), y, o.classes, "synthetic")
