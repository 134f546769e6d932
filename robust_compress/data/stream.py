"""Data read from disk batch by batch, through a ``DataLoader`` with worker processes.

:class:`StreamData` has the interface of :class:`~robust_compress.data.tensors.TensorData`
(``batches``, ``num_batches``, ``subset``, ``head``, ``input_shape``), so every stage trains
and evaluates on it unchanged. The epoch's order is :func:`epoch_order`'s (seeded, sharded over
DDP ranks like the in-memory path), handed to the loader as its sampler; random augmentation
runs on each batch in the main process, seeded by the batch index, so an epoch is the same on a
resume whatever the number of workers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from robust_compress.data.augment import Augment
from robust_compress.data.tensors import (
    Batching,
    TensorData,
    as_pixels,
)
from robust_compress.errors import UserError

SMALL = 64  # head() reads this many images or fewer in the main process


class Items(Dataset):
    """A map-style dataset seen through an index range and a fixed transform.

    Items are ``(image, label)``: the image a (C, H, W) tensor (``uint8``, or floats in
    [0, 1]), the label an int.
    """

    def __init__(self, base: Dataset, indices: range, transform: Callable | None = None):
        self.base, self.indices, self.transform = base, indices, transform

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, int]:
        image, label = self.base[self.indices[i]]
        if self.transform is not None:
            image = self.transform(image)
        return image, int(label)

    def part(self, start: int, end: int | None) -> Items:
        """Items ``start`` .. ``end`` of this view."""
        return Items(self.base, self.indices[start:end], self.transform)


@dataclass
class StreamData(Batching):
    """A dataset streamed from disk (see the module docstring).

    Attributes:
        items: The images and labels, read on demand.
        num_classes: Number of classes.
        input_shape: The shape (C, H, W) of one image (every image has it).
        name: Dataset name, for reports.
        workers: Worker processes of the loader (0 reads in the main process).
        augment: Random augmentation of training batches.
        device: Where batches are handed out (the model's device); None: the CPU.
    """

    items: Items
    num_classes: int
    input_shape: tuple[int, int, int]
    name: str = ""
    workers: int = 2
    augment: Augment | None = None
    device: torch.device | None = None

    def __len__(self) -> int:
        return len(self.items)

    def subset(self, n: int | None, start: int = 0) -> StreamData:
        """Examples ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        return replace(self, items=self.items.part(start, None if n is None else start + n))

    def head(self, n: int | None = None) -> TensorData:
        """The first ``n`` examples (all when None), read into memory as floats in [0, 1]."""
        part = self.subset(n)
        if len(part) <= SMALL:  # an example or a parity batch: no worker processes for that
            part = replace(part, workers=0)
        data = part.to_memory()
        return TensorData(as_pixels(data.x), data.y, self.num_classes, self.name)

    def to_memory(self) -> TensorData:
        """Every example read into memory, as stored (``uint8`` stays ``uint8``)."""
        xs, ys = [], []
        for x, y in self._raw_batches(torch.arange(len(self)), 256):
            xs.append(x)
            ys.append(y)
        x, y = torch.cat(xs), torch.cat(ys)
        return TensorData(x, y, self.num_classes, self.name, self.augment, self.device)

    def _raw_batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        loader = DataLoader(
            self.items,
            batch_size=batch_size,
            sampler=order.tolist(),
            num_workers=self.workers,
            collate_fn=collate,
            pin_memory=self.device is not None and self.device.type == "cuda",
        )
        try:
            yield from loader
        except UserError as exc:  # from a worker: its message is wrapped in a traceback
            raise type(exc)(_original_message(exc)) from None


def collate(batch: list[tuple[Tensor, int]]) -> tuple[Tensor, Tensor]:
    """Stack a batch's images and labels; images of different sizes are a clear error."""
    images, labels = zip(*batch, strict=True)
    first = images[0].shape
    for image in images:
        if image.shape != first:
            raise UserError(
                f"the dataset's images differ in size ({tuple(first)} and {tuple(image.shape)}): "
                "give data.transforms a resize and a center_crop that make them one size."
            )
    return torch.stack(images), torch.tensor(labels, dtype=torch.int64, device="cpu")


def _original_message(exc: Exception) -> str:
    """The message of an exception re-raised from a ``DataLoader`` worker, without the traceback."""
    text = str(exc).strip()
    if "Original Traceback" not in text:
        return text
    last = text.splitlines()[-1]
    return last.split(": ", 1)[1] if ": " in last else last
