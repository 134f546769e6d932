"""Datasets by name, as in-memory tensors in [0, 1] with shape (N, C, H, W).

``fashion-mnist`` is read straight from the four IDX ``.gz`` files, looked for in this order:

1. a folder the user gives (argument ``root`` or the environment variable ``RC_FASHION_MNIST``);
2. Debian's location ``/usr/share/datasets/fashion-mnist/`` (package ``dataset-fashion-mnist``);
3. torchvision's layout ``<folder>/FashionMNIST/raw/`` under the given folder or
   ``~/.cache/robust-compress``, which torchvision's download fills when ``download=True``.

``synthetic`` is a deterministic, tiny, learnable set for tests.
"""

from __future__ import annotations

import gzip
import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from robust_compress.errors import DataNotFoundError, UserError
from robust_compress.registry import Registry

DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
CACHE_DIR = Path(os.environ.get("RC_CACHE", Path.home() / ".cache" / "robust-compress"))
ENV_VAR = "RC_FASHION_MNIST"
FMNIST_FILES = {
    "train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
    "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"),
}
SPLITS = ("train", "test")

DATASETS: Registry = Registry("dataset")


@dataclass
class TensorData:
    """Images and labels held in memory.

    Attributes:
        x: Float images in [0, 1], shape (N, C, H, W).
        y: Integer labels, shape (N,).
        num_classes: Number of classes.
        name: Dataset name, for reports.
    """

    x: Tensor
    y: Tensor
    num_classes: int
    name: str = ""

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of one image."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None, start: int = 0) -> TensorData:
        """Return examples ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        end = None if n is None else start + n
        return TensorData(self.x[start:end], self.y[start:end], self.num_classes, self.name)

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        *,
        rank: int = 0,
        world: int = 1,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` batches; the order is fixed by ``seed`` when shuffling.

        With ``world`` > 1 the epoch's order (the same permutation on every rank) is padded by
        wrapping around to a multiple of ``world`` and rank ``rank`` takes every ``world``-th
        example from position ``rank``, like ``DistributedSampler``: every rank gets the same
        number of batches of the same sizes, and together the ranks see every example once
        (plus at most ``world - 1`` repeats).
        """
        n = len(self)
        if shuffle:
            order = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
        else:
            order = torch.arange(n)
        if world > 1:
            if not 0 <= rank < world:
                raise UserError(f"rank {rank} is outside 0..{world - 1}.")
            order = order[torch.arange(self._shard_len(world) * world) % n][rank::world]
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield self.x[idx], self.y[idx]

    def _shard_len(self, world: int) -> int:
        return -(-len(self) // world)

    def num_batches(self, batch_size: int, world: int = 1) -> int:
        """Number of batches ``batches(batch_size, world=world)`` yields (on each rank)."""
        return -(-self._shard_len(world) // batch_size)


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: str | Path | None = None,
    subset: int | None = None,
    download: bool = False,
) -> TensorData:
    """Load a dataset by name.

    Args:
        name: A registered dataset name (``fashion-mnist``, ``synthetic``).
        split: ``train`` or ``test``.
        root: A folder to look in first.
        subset: Keep only the first ``subset`` examples.
        download: Allow torchvision to download missing files (needs a network).

    Returns:
        The dataset as tensors.

    Raises:
        UserError: Unknown dataset or split, or a bad subset size.
        DataNotFoundError: The files could not be found.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if subset is not None and subset <= 0:
        raise UserError(f"subset must be a positive number of examples, got {subset}.")
    data = DATASETS.get(name)(split, root=root, download=download)
    if len(data) == 0:
        raise UserError(f"dataset {name!r} ({split}) is empty.")
    return data.subset(subset) if subset else data


def _read_idx(path: Path) -> Tensor:
    """Read a gzip-compressed IDX file of unsigned bytes into a uint8 tensor."""
    with gzip.open(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = bytearray(raw[4 + 4 * ndim :])
    expected = 1
    for d in dims:
        expected *= d
    if len(body) != expected:
        raise UserError(f"{path} is truncated: {len(body)} bytes, expected {expected}.")
    if expected == 0:  # torch.frombuffer refuses an empty buffer
        return torch.zeros(dims, dtype=torch.uint8)
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


def fashion_mnist_dirs(root: str | Path | None = None) -> list[Path]:
    """The folders searched for the Fashion-MNIST IDX files, in order."""
    dirs: list[Path] = []
    for given in (root, os.environ.get(ENV_VAR)):
        if given:
            dirs += [Path(given), Path(given) / "FashionMNIST" / "raw"]
    dirs.append(DEBIAN_DIR)
    dirs.append(CACHE_DIR / "FashionMNIST" / "raw")
    return dirs


def _not_found(dirs: list[Path]) -> DataNotFoundError:
    searched = ", ".join(str(d) for d in dirs)
    return DataNotFoundError(
        f"Fashion-MNIST not found (searched {searched}). Get it one of three ways: "
        "(1) `sudo apt-get install -y dataset-fashion-mnist` (Debian/Ubuntu); "
        f"(2) point to a folder with the four IDX .gz files: `--data-root DIR` or {ENV_VAR}=DIR; "
        "(3) let torchvision download it: `download: true` in the recipe's data block "
        "(needs a network)."
    )


@DATASETS.register("fashion-mnist")
def fashion_mnist(split: str, *, root=None, download: bool = False) -> TensorData:
    """Fashion-MNIST from the IDX files (see the module docstring for the search order)."""
    dirs = fashion_mnist_dirs(root)
    images, labels = FMNIST_FILES[split]
    for d in dirs:
        if (d / images).is_file() and (d / labels).is_file():
            x = _read_idx(d / images).unsqueeze(1).float().div_(255.0)
            y = _read_idx(d / labels).long()
            if len(x) != len(y):
                raise UserError(f"{d}: {len(x)} images but {len(y)} labels.")
            return TensorData(x, y, 10, "fashion-mnist")
    if download:
        _torchvision_download()
        return fashion_mnist(split, root=None, download=False)
    raise _not_found(dirs)


def _torchvision_download() -> None:
    """Download Fashion-MNIST into the cache with torchvision (needs a network)."""
    from torchvision.datasets import FashionMNIST

    for train in (True, False):
        FashionMNIST(str(CACHE_DIR), train=train, download=True)


@DATASETS.register("synthetic")
def synthetic(split: str, *, root=None, download: bool = False) -> TensorData:
    """A deterministic, learnable 10-class set of 28x28 images (512 train, 256 test).

    Each class is a bright square at its own place plus uniform noise; the seed depends only
    on the split, so two calls give identical tensors.
    """
    n = 512 if split == "train" else 256
    gen = torch.Generator().manual_seed(0 if split == "train" else 1)
    y = torch.arange(n) % 10
    x = torch.rand(n, 1, 28, 28, generator=gen) * 0.3
    for cls in range(10):
        row, col = 2 + 8 * (cls // 4), 2 + 8 * (cls % 4)
        x[y == cls, :, row : row + 6, col : col + 6] += 0.6
    return TensorData(x.clamp_(0, 1), y, 10, "synthetic")
