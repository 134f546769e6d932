"""``imagefolder``: a folder of class folders of images, any size, RGB or grey.

The layout is torchvision's ``ImageFolder`` one level up::

    root/train/<class>/*.png|jpg|...      the training images
    root/val/<class>/...  (or root/test/)  the evaluation images

Classes are the training folder's subfolders, sorted; an evaluation folder naming a class the
training folder lacks is an error. The file list is put in a fixed random order (seed 0), so
``train_subset``, ``test_subset`` and ``holdout`` take images of every class.
"""

from __future__ import annotations

from pathlib import Path

import torch
from pydantic import BaseModel, Field
from torch import Tensor
from torch.utils.data import Dataset

from robust_compress.config import STRICT
from robust_compress.data.datasets import DATASETS, Streamable
from robust_compress.errors import DataNotFoundError, UserError

EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
EVAL_DIRS = ("val", "test")


class ImageFolderOptions(BaseModel):
    """Options of ``imagefolder`` (``data.options``)."""

    model_config = STRICT
    channels: int | None = Field(None, description="1 (grey) or 3 (RGB); null: the first image's")


class ImageFiles(Dataset):
    """Image files and their labels; an item is a ``uint8`` (C, H, W) image and its label."""

    def __init__(self, files: list[Path], labels: list[int], channels: int):
        self.files, self.labels, self.channels = files, labels, channels

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        from robust_compress.adapters.torchvision.images import decode

        return decode(self.files[i], self.channels), self.labels[i]


def _split_dir(root: Path, split: str) -> Path:
    names = ("train",) if split == "train" else EVAL_DIRS
    for name in names:
        if (root / name).is_dir():
            return root / name
    wanted = " or ".join(f"{root / n}/" for n in names)
    raise DataNotFoundError(f"imagefolder: no {wanted} with one folder of images per class.")


def _classes(root: Path) -> list[str]:
    classes = sorted(p.name for p in _split_dir(root, "train").iterdir() if p.is_dir())
    if len(classes) < 2:
        raise UserError(f"imagefolder: {root / 'train'} needs at least two class folders.")
    return classes


def _listing(folder: Path, classes: list[str]) -> tuple[list[Path], list[int]]:
    unknown = sorted(p.name for p in folder.iterdir() if p.is_dir() and p.name not in classes)
    if unknown:
        raise UserError(f"imagefolder: {folder} has classes the training set lacks: {unknown}.")
    files, labels = [], []
    for label, name in enumerate(classes):
        for path in sorted((folder / name).rglob("*")) if (folder / name).is_dir() else []:
            if path.suffix.lower() in EXTENSIONS:
                files.append(path)
                labels.append(label)
    if not files:
        raise DataNotFoundError(f"imagefolder: no images ({', '.join(EXTENSIONS)}) in {folder}.")
    order = torch.randperm(len(files), generator=torch.Generator().manual_seed(0)).tolist()
    return [files[i] for i in order], [labels[i] for i in order]


@DATASETS.register("imagefolder", config=ImageFolderOptions)
def imagefolder(split: str, *, root=None, download: bool = False, **options) -> Streamable:
    """Class folders of images under ``root/train`` and ``root/val`` (or ``root/test``)."""
    if root is None:
        raise UserError("dataset 'imagefolder' needs data.root: the folder holding train/.")
    if download:
        raise UserError("dataset 'imagefolder' reads local files; download: true has no source.")
    o = ImageFolderOptions(**options)
    root = Path(root)
    classes = _classes(root)
    files, labels = _listing(_split_dir(root, split), classes)
    channels = o.channels or _channels_of(files[0])
    if channels not in (1, 3):
        raise UserError(f"imagefolder: options.channels must be 1 or 3, got {channels}.")
    return Streamable(ImageFiles(files, labels, channels), len(classes), "imagefolder")


def _channels_of(path: Path) -> int:
    from robust_compress.adapters.torchvision.images import decode

    return 1 if decode(path, None).shape[0] in (1, 2) else 3
