"""From what a dataset returns to what the engine trains on: transforms, memory or streaming."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from robust_compress.data.augment import Chain
from robust_compress.data.configs import augmentation, fixed_transform
from robust_compress.data.datasets import Streamable, as_items
from robust_compress.data.stream import StreamData
from robust_compress.data.tensors import TensorData
from robust_compress.errors import UserError

log = logging.getLogger(__name__)
MB = 2**20


def prepared(
    raw: TensorData | Streamable, config: Any, split: str, subset: int | None
) -> TensorData | StreamData:
    """``raw`` with the split's transforms, in memory or streamed (see ``open_data``)."""
    steps = config.transforms.steps(split)
    fixed, augment = fixed_transform(steps), augmentation(steps)
    if isinstance(raw, TensorData):
        data = raw.subset(subset) if subset else raw
        if fixed is not None:
            data = TensorData(_stack(fixed, data.x), data.y, data.num_classes, data.name)
        data.augment = augment
        _check_crop(data.input_shape, augment)
        return data
    items = as_items(raw)
    items.transform = Chain((to_chw,) if fixed is None else (to_chw, *fixed.funcs))
    if subset:
        items = items.part(0, subset)
    shape = tuple(items[0][0].shape)
    stream = StreamData(items, raw.num_classes, shape, raw.name, config.workers, augment)
    _check_crop(shape, augment)
    return stream if _streams(stream, config, split) else stream.to_memory()


def _streams(data: StreamData, config: Any, split: str) -> bool:
    if config.stream != "auto":
        return config.stream == "stream"
    c, h, w = data.input_shape
    size = len(data) * c * h * w  # bytes as uint8
    streams = size > config.memory_mb * MB
    how = "streamed from disk" if streams else "read into memory"
    log.info(
        "%s %s: %d images of %dx%dx%d, %.0f MB decoded: %s",
        data.name,
        split,
        len(data),
        c,
        h,
        w,
        size / MB,
        how,
    )
    return streams


def _stack(fixed: Callable, x: Tensor) -> Tensor:
    images = [fixed(image) for image in x]
    shapes = {tuple(i.shape) for i in images}
    if len(shapes) > 1:
        raise UserError(
            f"data.transforms give images of sizes {sorted(shapes)}; end with a center_crop."
        )
    return torch.stack(images)


def _check_crop(shape: tuple[int, ...], augment: Any) -> None:
    if augment is None or augment.crop is None:
        return
    h, w = shape[-2:]
    th, tw = augment.crop
    p = augment.padding
    if th > h + 2 * p or tw > w + 2 * p:
        raise UserError(
            f"random_crop size {th}x{tw} is larger than the images ({h}x{w}) plus padding {p}; "
            "lower its size or add a resize before it."
        )


def to_chw(image: Any) -> Tensor:
    """An image as a (C, H, W) tensor: ``uint8`` stays, floats must be pixels in [0, 1].

    Accepts a tensor (C, H, W) or (H, W), a PIL image, or an (H, W[, C]) array.

    Raises:
        UserError: Floats outside [0, 1] (normalised inputs: give pixels and ``model.normalize``)
            or an object that is not an image.
    """
    if not isinstance(image, Tensor):
        if not hasattr(image, "__array_interface__") and not hasattr(image, "__array__"):
            raise UserError(f"a dataset item's image is a {type(image).__name__}, not an image.")
        image = _from_array(image)
    if image.ndim == 2:
        image = image.unsqueeze(0)
    if image.ndim != 3:
        raise UserError(f"a dataset image has shape {tuple(image.shape)}; expected (C, H, W).")
    if image.dtype != torch.uint8:
        image = image.float()
        if image.numel() and (image.min() < 0 or image.max() > 1):
            raise UserError(
                "the dataset's images are floats outside [0, 1] (normalised?): return pixels "
                "in [0, 1] and put the mean and std in model.normalize."
            )
    return image


def _from_array(image: Any) -> Tensor:
    import numpy as np

    array = np.array(image)
    tensor = torch.from_numpy(array)
    return tensor.permute(2, 0, 1).contiguous() if tensor.ndim == 3 else tensor
