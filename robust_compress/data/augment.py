"""Image transforms on tensors: fixed ones per image, random ones per training batch.

Fixed transforms (``resize``, ``center_crop``) run once per image when it is read, on
``uint8`` (C, H, W) tensors, and give every image the same size. Random augmentations
(``random_crop`` with padding, ``hflip``) run on each training batch of floats, drawn from a
generator seeded by the epoch's seed and the batch index: a resumed or repeated epoch sees
exactly the same images, on the in-memory and the streaming path alike, on any device.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


def size_pair(size: int | Sequence[int]) -> tuple[int, int]:
    """``size`` as ``(height, width)``; an int means a square."""
    if isinstance(size, int):
        return size, size
    return int(size[0]), int(size[1])


def resize(image: Tensor, size: int | Sequence[int]) -> Tensor:
    """Resize a (C, H, W) image (bilinear, antialiased), keeping its dtype.

    An int resizes the shorter side to ``size`` and keeps the aspect ratio (torchvision's
    ``Resize(int)``); a pair ``[h, w]`` gives exactly that size.
    """
    h, w = image.shape[-2:]
    if isinstance(size, int):
        short = min(h, w)
        target = (max(1, round(h * size / short)), max(1, round(w * size / short)))
    else:
        target = size_pair(size)
    if (h, w) == target:
        return image
    out = F.interpolate(
        image.unsqueeze(0).float(), size=target, mode="bilinear", antialias=True
    ).squeeze(0)
    if image.dtype == torch.uint8:
        return out.round_().clamp_(0, 255).to(torch.uint8)
    return out.clamp_(0, 1)


def center_crop(image: Tensor, size: int | Sequence[int]) -> Tensor:
    """The central ``size`` crop of a (C, H, W) image (zero-padded where it is smaller)."""
    th, tw = size_pair(size)
    h, w = image.shape[-2:]
    if h < th or w < tw:
        pad_h, pad_w = max(th - h, 0), max(tw - w, 0)
        padding = (pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2)
        image = F.pad(image, padding)
        h, w = image.shape[-2:]
    top, left = (h - th) // 2, (w - tw) // 2
    return image[..., top : top + th, left : left + tw]


@dataclass(frozen=True)
class Chain:
    """Functions applied in order to one image.

    A dataclass of module-level functions and partials, so it pickles: ``DataLoader`` workers
    started with spawn or forkserver (macOS, Windows, Python 3.14's Linux default) receive it.
    """

    funcs: tuple

    def __call__(self, image):
        """``image`` through every function of the chain."""
        for f in self.funcs:
            image = f(image)
        return image


@dataclass(frozen=True)
class Augment:
    """Random augmentation of a training batch.

    Attributes:
        crop: ``(height, width)`` of a random crop, or None for no crop.
        padding: Zero padding on every side before the random crop.
        flip: Probability of a horizontal flip of each image.
    """

    crop: tuple[int, int] | None = None
    padding: int = 0
    flip: float = 0.0

    def __call__(self, x: Tensor, seed: int) -> Tensor:
        """Augment a (B, C, H, W) batch; ``seed`` fixes every random choice."""
        gen = torch.Generator().manual_seed(seed)
        if self.crop is not None:
            x = self._random_crop(x, gen)
        if self.flip > 0:
            flip = (torch.rand(len(x), generator=gen) < self.flip).to(x.device)
            x = torch.where(flip[:, None, None, None], x.flip(-1), x)
        return x

    def _random_crop(self, x: Tensor, gen: torch.Generator) -> Tensor:
        th, tw = self.crop
        p = self.padding
        padded = F.pad(x, (p, p, p, p)) if p else x
        h, w = padded.shape[-2:]
        tops = torch.randint(0, h - th + 1, (len(x),), generator=gen).tolist()
        lefts = torch.randint(0, w - tw + 1, (len(x),), generator=gen).tolist()
        return torch.stack(
            [img[:, t : t + th, s : s + tw] for img, t, s in zip(padded, tops, lefts, strict=True)]
        )
