"""Images and labels held in memory, and the epoch order both data paths share.

Images are kept as ``uint8`` (one byte per pixel: CIFAR-10's 60,000 images take 184 MB
instead of 737 MB as floats) or as floats in [0, 1]; every batch is handed out as floats in
[0, 1], so the threat model is in pixel space whatever the storage.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, replace

import torch
from torch import Tensor

from robust_compress.data.augment import Augment
from robust_compress.errors import UserError


def as_pixels(x: Tensor) -> Tensor:
    """``x`` as float32 in [0, 1]: ``uint8`` is divided by 255, floats pass through."""
    if x.dtype == torch.uint8:
        return x.to(torch.float32).div_(255.0)
    return x.to(torch.float32)


def to_device(x: Tensor, y: Tensor, device: torch.device | None) -> tuple[Tensor, Tensor]:
    """``x`` and ``y`` on ``device`` (non-blocking copies); unchanged when ``device`` is None."""
    if device is None or x.device == device:
        return x, y
    return x.to(device, non_blocking=True), y.to(device, non_blocking=True)


def epoch_order(n: int, shuffle: bool, seed: int, rank: int = 0, world: int = 1) -> Tensor:
    """The indices one epoch visits, on rank ``rank`` of ``world``.

    With ``world`` > 1 the epoch's order (the same permutation on every rank) is padded by
    wrapping around to a multiple of ``world`` and rank ``rank`` takes every ``world``-th
    example from position ``rank``, like ``DistributedSampler``: every rank gets the same
    number of batches of the same sizes, and together the ranks see every example once
    (plus at most ``world - 1`` repeats).
    """
    if shuffle:
        order = torch.randperm(n, generator=torch.Generator().manual_seed(seed), device="cpu")
    else:
        order = torch.arange(n, device="cpu")
    if world > 1:
        if not 0 <= rank < world:
            raise UserError(f"rank {rank} is outside 0..{world - 1}.")
        order = order[torch.arange(shard_len(n, world) * world, device="cpu") % n][rank::world]
    return order


def shard_len(n: int, world: int) -> int:
    """Examples per rank when ``n`` examples are shared by ``world`` ranks."""
    return -(-n // world)


class Batching:
    """Batches of a dataset (the in-memory and the streaming one): order, device, augmentation.

    A subclass has ``augment``, ``device`` and ``__len__``, and yields the raw batches of an
    order in ``_raw_batches``.
    """

    augment: Augment | None
    device: torch.device | None

    def batches(
        self,
        batch_size: int,
        shuffle: bool = False,
        seed: int = 0,
        *,
        rank: int = 0,
        world: int = 1,
        augment: bool = False,
    ) -> Iterator[tuple[Tensor, Tensor]]:
        """Yield ``(x, y)`` batches of floats in [0, 1] on ``device``; ``seed`` fixes the order.

        ``augment`` applies the data's random augmentation (when it has one), drawn from
        ``seed`` and the batch's index, so a resumed epoch sees the same images. Sharding over
        ``world`` ranks is :func:`epoch_order`'s.
        """
        order = epoch_order(len(self), shuffle, seed, rank, world)
        for b, (x, y) in enumerate(self._raw_batches(order, batch_size)):
            x, y = to_device(as_pixels(x), y, self.device)
            if augment and self.augment is not None:
                x = self.augment(x, seed * 100_003 + b)
            yield x, y

    def num_batches(self, batch_size: int, world: int = 1) -> int:
        """Number of batches ``batches(batch_size, world=world)`` yields (on each rank)."""
        return -(-shard_len(len(self), world) // batch_size)

    def _raw_batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        raise NotImplementedError


@dataclass
class TensorData(Batching):
    """Images and labels held in memory.

    Attributes:
        x: Images, shape (N, C, H, W): ``uint8`` or floats in [0, 1].
        y: Integer labels, shape (N,).
        num_classes: Number of classes.
        name: Dataset name, for reports.
        augment: Random augmentation of training batches (``batches(augment=True)``).
        device: Where batches are handed out (the model's device); None: where ``x`` is.
    """

    x: Tensor
    y: Tensor
    num_classes: int
    name: str = ""
    augment: Augment | None = None
    device: torch.device | None = None

    def __len__(self) -> int:
        return len(self.y)

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """The shape (C, H, W) of one image."""
        return tuple(self.x.shape[1:])  # type: ignore[return-value]

    def subset(self, n: int | None, start: int = 0) -> TensorData:
        """Return examples ``start`` .. ``start + n`` (all from ``start`` when ``n`` is None)."""
        end = None if n is None else start + n
        return replace(self, x=self.x[start:end], y=self.y[start:end])

    def head(self, n: int | None = None) -> TensorData:
        """The first ``n`` examples (all when None) in memory, as floats in [0, 1]."""
        part = self.subset(n)
        return TensorData(as_pixels(part.x), part.y, self.num_classes, self.name)

    def _raw_batches(self, order: Tensor, batch_size: int) -> Iterator[tuple[Tensor, Tensor]]:
        for i in range(0, len(order), batch_size):
            idx = order[i : i + batch_size]
            yield self.x[idx], self.y[idx]
