"""torchvision's dataset classes where only they will do: downloads, and SVHN's .mat files."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from robust_compress.errors import DataNotFoundError, UserError

CLASSES = {
    "cifar10": "CIFAR10",
    "cifar100": "CIFAR100",
    "mnist": "MNIST",
    "fashion-mnist": "FashionMNIST",
    "svhn": "SVHN",
    "stl10": "STL10",
}


def download(name: str, root: Path) -> None:
    """Download dataset ``name`` into ``root`` with torchvision (needs a network).

    Raises:
        DataNotFoundError: The download failed (no network, or the server refused).
    """
    import torchvision.datasets as tvd

    cls = getattr(tvd, CLASSES[name])
    splits = (
        [{"split": s} for s in ("train", "test")]
        if name in ("svhn", "stl10")
        else [
            {"train": True},
            {"train": False},
        ]
    )
    try:
        for split in splits:
            cls(str(root), download=True, **split)
    except (OSError, RuntimeError) as exc:
        raise DataNotFoundError(f"downloading {name} into {root} failed: {exc}") from None


def read_svhn(path: Path) -> tuple[Tensor, Tensor]:
    """SVHN's ``*_32x32.mat``: images (N, 3, 32, 32) uint8 and labels 0..9 (10 means 0)."""
    from scipy.io import loadmat

    try:
        mat = loadmat(str(path))
    except (ValueError, OSError) as exc:
        raise UserError(f"{path} is not a MATLAB file of SVHN: {exc}.") from None
    if "X" not in mat or "y" not in mat:
        raise DataNotFoundError(f"{path} has no X and y arrays (SVHN's cropped-digit format).")
    x = torch.from_numpy(mat["X"]).permute(3, 2, 0, 1).contiguous()
    y = torch.from_numpy(mat["y"].astype("int64")).flatten() % 10
    return x, y
