"""Decoding image files with PIL (torchvision 0.29 deprecates its own decoders)."""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor

from robust_compress.errors import UserError


def decode(path: Path, channels: int | None) -> Tensor:
    """Read an image file as a ``uint8`` (C, H, W) tensor.

    Args:
        path: The image file (PNG, JPEG, BMP, GIF, WebP, TIFF: what PIL reads).
        channels: 1 (grey) or 3 (RGB) to convert to; None keeps the file's own channels.

    Raises:
        UserError: The file is not an image PIL can read.
    """
    import numpy as np
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            if channels is not None:
                img = img.convert("L" if channels == 1 else "RGB")
            array = np.array(img, dtype=np.uint8)
    except (UnidentifiedImageError, OSError) as exc:
        raise UserError(f"{path} is not an image that can be read: {exc}.") from None
    image = torch.from_numpy(array)
    return image.unsqueeze(0) if image.ndim == 2 else image.permute(2, 0, 1).contiguous()
