"""Datasets by name: the registry, and opening a split as the engine trains on it.

A dataset is a function ``(split, *, root=None, download=False, **options)`` registered in
:data:`DATASETS`, returning either :class:`TensorData` (images in memory) or a
:class:`Streamable` (a map-style ``torch.utils.data.Dataset`` of ``(image, label)`` read on
demand). ``py:package.module:fn`` names a function of the user's instead, called with the
options and returning the train and test ``Dataset``s (see :mod:`.python_source`).

:func:`open_data` applies the recipe's data block: fixed transforms per image, random
augmentation of training batches, and the choice between holding the split in memory (the fast
path, when it fits in ``memory_mb``) and streaming it through a ``DataLoader``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from torch.utils.data import Dataset

from robust_compress.data.stream import Items, StreamData
from robust_compress.data.tensors import TensorData
from robust_compress.errors import UserError
from robust_compress.registry import Registry

log = logging.getLogger(__name__)
DATASETS: Registry = Registry("dataset", builtins="robust_compress.data.builtin")
SPLITS = ("train", "test")
PY_PREFIX = "py:"

__all__ = ["DATASETS", "Streamable", "StreamData", "TensorData", "load_dataset", "open_data"]


@dataclass
class Streamable:
    """A dataset read on demand.

    Attributes:
        items: A map-style dataset whose items are ``(image, label)``: the image a (C, H, W)
            tensor (``uint8``, or floats in [0, 1]), a PIL image or an (H, W[, C]) array.
        num_classes: Number of classes.
        name: Dataset name, for reports.
    """

    items: Dataset
    num_classes: int
    name: str


def load_dataset(
    name: str,
    split: str = "train",
    *,
    root: Any = None,
    subset: int | None = None,
    download: bool = False,
    options: dict | None = None,
) -> TensorData | StreamData:
    """Load a dataset by name, without transforms (see :func:`open_data` for the recipe's way).

    Args:
        name: A registered dataset name, or ``py:package.module:fn``.
        split: ``train`` or ``test``.
        root: A folder to look in first.
        subset: Keep only the first ``subset`` examples.
        download: Allow torchvision to download missing files (needs a network).
        options: The dataset's own options (``data.options`` in a recipe).

    Raises:
        UserError: Unknown dataset or split, or a bad subset size.
        DataNotFoundError: The files could not be found.
    """
    from robust_compress.data.configs import DataConfig

    root = None if root is None else str(root)
    config = DataConfig.model_construct(
        name=name, root=root, download=download, options=options or {}
    )
    return open_data(config, split, subset=subset)


def open_data(config: Any, split: str, *, subset: int | None = None) -> TensorData | StreamData:
    """Open ``split`` as the data block ``config`` (a ``DataConfig``) says.

    Raises:
        UserError: Unknown split, a bad subset size, an empty dataset, or images of
            different sizes without a transform that makes them one size.
    """
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r}; use one of {', '.join(SPLITS)}.")
    if subset is not None and subset <= 0:
        raise UserError(f"subset must be a positive number of examples, got {subset}.")
    raw = _read_source(config, split)
    if len(raw.items if isinstance(raw, Streamable) else raw) == 0:
        raise UserError(f"dataset {config.name!r} ({split}) is empty.")
    from robust_compress.data.pipeline import prepared

    return prepared(raw, config, split, subset)


def _read_source(config: Any, split: str) -> TensorData | Streamable:
    if config.name.startswith(PY_PREFIX):
        from robust_compress.data.python_source import read_python_source

        return read_python_source(config.name[len(PY_PREFIX) :], split, config.options)
    source = DATASETS.get(config.name)
    kwargs = {"root": config.root, "download": config.download, **config.options}
    data = source(split, **kwargs)
    if not isinstance(data, TensorData | Streamable):
        raise UserError(
            f"dataset {config.name!r} returned {type(data).__name__}; a dataset returns "
            "TensorData or Streamable."
        )
    return data


def as_items(data: Streamable) -> Items:
    """The items of ``data`` as an :class:`Items` view over all of them."""
    return Items(data.items, range(len(data.items)))


def open_splits(d, device) -> tuple:
    """The recipe's training, test and validation data (``data.holdout``, else None).

    The validation split is the last ``holdout`` images of the training set, taken before
    ``train_subset``; every split's batches go to ``device``.

    Raises:
        UserError: The holdout leaves no training data.
    """
    train = open_data(d, "train")
    test = open_data(d, "test", subset=d.test_subset)
    holdout = None
    if d.holdout:
        if d.holdout >= len(train):
            raise UserError(f"data.holdout {d.holdout} leaves no training data.")
        holdout = train.subset(None, len(train) - d.holdout)
        train = train.subset(len(train) - d.holdout)
    train = train.subset(d.train_subset) if d.train_subset else train
    for data in (train, test, holdout):
        if data is not None:
            data.device = device
    return train, test, holdout
