"""JPEG compression of image batches with Pillow (the encoder ``make_cifar_c.py`` uses)."""

from __future__ import annotations

import io

import numpy as np
import torch
from torch import Tensor

from robust_compress.errors import UserError


def jpeg_roundtrip(x: Tensor, quality: int) -> Tensor:
    """Encode each image of ``x`` (N, C, H, W) in [0, 1] as JPEG at ``quality`` and decode it.

    Pixels are rounded to 8 bits first; 1 channel is coded as a grey JPEG, 3 as RGB (Pillow's
    defaults: 4:2:0 chroma subsampling, the integer DCT). Returns float64 in [0, 1].

    Raises:
        UserError: Images with other than 1 or 3 channels.
    """
    from PIL import Image

    channels = x.shape[1]
    if channels not in (1, 3):
        raise UserError(f"JPEG takes 1 or 3 channels, got {channels}.")
    pixels = (x.double() * 255).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
    out = []
    for image in pixels.numpy():
        buffer = io.BytesIO()
        array = image[..., 0] if channels == 1 else image
        Image.fromarray(array, mode="L" if channels == 1 else "RGB").save(
            buffer, format="JPEG", quality=int(quality)
        )
        buffer.seek(0)
        with Image.open(buffer) as decoded:
            out.append(np.array(decoded.convert("L" if channels == 1 else "RGB")))
    stacked = torch.from_numpy(np.stack(out)).double() / 255
    return stacked.unsqueeze(1) if channels == 1 else stacked.permute(0, 3, 1, 2)
