"""Common corruptions of images in [0, 1], after Hendrycks & Dietterich (2019), CIFAR-10-C.

Each corruption is one function ``f(x, param, rng) -> Tensor`` and one entry of
:data:`CORRUPTIONS` whose meta holds its five severity parameters (``params``) and what the
parameter means (``param``). ``x`` is a float64 batch (N, C, H, W) in [0, 1] (any number of
channels; JPEG takes 1 or 3), ``param`` the severity's parameter and ``rng`` a NumPy generator;
:func:`corrupt` clips the result to [0, 1] and gives it back in the input's dtype.

The formulas and the parameters are those of the official ``make_cifar_c.py``
(github.com/hendrycks/robustness); docs/audit.md has the table and says what is adapted for
28x28 grey images. Random draws come from NumPy's PCG64 (no CPU-specific code path) and the
arithmetic is elementwise in float64 in a fixed order, so a seed gives the same images on any
CPU. Adding a corruption::

    def invert(x, param, rng):
        return param * (1 - x) + (1 - param) * x

    CORRUPTIONS.add("invert", invert, params=(0.1, 0.2, 0.3, 0.4, 0.5), param="mix")
"""

from __future__ import annotations

import math
import zlib

import numpy as np
import torch
from torch import Tensor

from robust_compress.errors import UserError
from robust_compress.registry import Registry

CORRUPTIONS: Registry = Registry("corruption")
"""Corruptions by name; meta: ``params`` (one per severity 1..5), ``param`` (its meaning)."""

SEVERITIES = (1, 2, 3, 4, 5)


def corrupt(x: Tensor, kind: str, severity: int, seed: int = 0) -> Tensor:
    """``x`` (N, C, H, W) in [0, 1] under corruption ``kind`` at ``severity`` (1..5).

    The draws depend only on ``(seed, kind, severity)`` and come image by image, so the first
    images of a batch get the same corruption whatever follows them.

    Raises:
        UserError: An unknown corruption or severity, or images outside [0, 1].
    """
    entry = CORRUPTIONS.entry(kind)
    params = entry.meta["params"]
    if severity not in range(1, len(params) + 1):
        raise UserError(f"severity must be 1..{len(params)}, got {severity!r}.")
    if x.ndim != 4:
        raise UserError(f"corrupt takes a batch (N, C, H, W), got shape {tuple(x.shape)}.")
    if len(x) and (float(x.min()) < 0 or float(x.max()) > 1):
        raise UserError("corruptions take images in [0, 1] (normalisation lives in the model).")
    rng = np.random.default_rng([seed, zlib.crc32(kind.encode()), severity])
    out = entry.load()(x.detach().cpu().double(), params[severity - 1], rng)
    return out.clamp(0, 1).to(device=x.device, dtype=x.dtype)


def _normal(rng: np.random.Generator, shape) -> Tensor:
    return torch.from_numpy(rng.standard_normal(size=tuple(shape)))


def _shifted_sum(x: Tensor, taps: list[tuple[int, int, float]], pad: int, mode: str) -> Tensor:
    """Correlate ``x`` with the taps ``(dy, dx, weight)``, one elementwise op at a time."""
    padded = torch.nn.functional.pad(x, (pad, pad, pad, pad), mode=mode)
    h, w = x.shape[-2:]
    out = torch.zeros_like(x)
    for dy, dx, weight in taps:
        out = out + weight * padded[..., pad + dy : pad + dy + h, pad + dx : pad + dx + w]
    return out


def _ordered_mean(x: Tensor) -> Tensor:
    """Mean over H and W, summed row by row (a fixed order on every CPU)."""
    rows = x[..., 0, :]
    for i in range(1, x.shape[-2]):
        rows = rows + x[..., i, :]
    total = rows[..., 0]
    for j in range(1, x.shape[-1]):
        total = total + rows[..., j]
    return (total / (x.shape[-2] * x.shape[-1]))[..., None, None]


@CORRUPTIONS.register("gaussian_noise", params=(0.04, 0.06, 0.08, 0.09, 0.10), param="noise std")
def gaussian_noise(x: Tensor, std: float, rng: np.random.Generator) -> Tensor:
    """Additive Gaussian noise: ``x + N(0, std^2)`` per pixel and channel."""
    return x + std * _normal(rng, x.shape)


@CORRUPTIONS.register("shot_noise", params=(500, 250, 100, 75, 50), param="photons at 1.0")
def shot_noise(x: Tensor, photons: float, rng: np.random.Generator) -> Tensor:
    """Poisson (shot) noise: ``Poisson(x * photons) / photons``; fewer photons, more noise."""
    return torch.from_numpy(rng.poisson(x.numpy() * photons) / photons)


@CORRUPTIONS.register(
    "impulse_noise", params=(0.01, 0.02, 0.03, 0.05, 0.07), param="share of pixels flipped"
)
def impulse_noise(x: Tensor, amount: float, rng: np.random.Generator) -> Tensor:
    """Salt-and-pepper noise: a share ``amount`` of the values set to 0 or 1 (half each)."""
    n = len(x)
    u = torch.from_numpy(rng.random(size=(n, 2, *x.shape[1:])))
    flipped, salted = u[:, 0] <= amount, u[:, 1] <= 0.5
    out = x.clone()
    out[flipped & salted] = 1.0
    out[flipped & ~salted] = 0.0
    return out


def disk_kernel(radius: float, alias_blur: float) -> Tensor:
    """The defocus kernel of ``make_cifar_c.py``: a disk, anti-aliased by a 3x3 Gaussian.

    (The official code switches to a 5x5 anti-alias blur for radii above 8, unused here.)
    """
    half = max(8, math.ceil(radius) + 1)
    grid = torch.arange(-half, half + 1, dtype=torch.float64)
    yy, xx = torch.meshgrid(grid, grid, indexing="ij")
    disk = (xx**2 + yy**2 <= radius**2).double()
    disk = disk / disk.sum()
    g = torch.exp(-torch.tensor([1.0, 0.0, 1.0], dtype=torch.float64) / (2 * alias_blur**2))
    g = g / g.sum()
    taps = [(dy, dx, float(g[dy + 1] * g[dx + 1])) for dy in (-1, 0, 1) for dx in (-1, 0, 1)]
    kernel = _shifted_sum(disk[None, None], taps, 1, "reflect")[0, 0]
    keep = kernel.abs().sum(0) > 0  # the kernel is symmetric: trim its empty border
    return kernel[keep][:, keep]


@CORRUPTIONS.register(
    "defocus_blur",
    params=((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1)),
    param="(disk radius, anti-alias sigma) in pixels",
)
def defocus_blur(x: Tensor, param: tuple[float, float], rng: np.random.Generator) -> Tensor:
    """Defocus: correlation with an anti-aliased disk (borders reflected, as OpenCV does)."""
    kernel = disk_kernel(*param)
    r = kernel.shape[0] // 2
    taps = [
        (dy - r, dx - r, float(kernel[dy, dx]))
        for dy in range(kernel.shape[0])
        for dx in range(kernel.shape[1])
        if kernel[dy, dx] != 0
    ]
    return _shifted_sum(x, taps, r, "reflect")


@CORRUPTIONS.register("gaussian_blur", params=(0.4, 0.6, 0.7, 0.8, 1.0), param="blur sigma")
def gaussian_blur(x: Tensor, sigma: float, rng: np.random.Generator) -> Tensor:
    """Gaussian blur, separable, truncated at 4 sigma, borders repeated (scikit-image's)."""
    r = int(4.0 * sigma + 0.5)
    g = [math.exp(-0.5 * (i / sigma) ** 2) for i in range(-r, r + 1)]
    g = [v / sum(g) for v in g]
    rows = _shifted_sum(x, [(i - r, 0, g[i]) for i in range(2 * r + 1)], r, "replicate")
    return _shifted_sum(rows, [(0, i - r, g[i]) for i in range(2 * r + 1)], r, "replicate")


@CORRUPTIONS.register("contrast", params=(0.75, 0.5, 0.4, 0.3, 0.15), param="contrast factor")
def contrast(x: Tensor, factor: float, rng: np.random.Generator) -> Tensor:
    """Lower contrast: ``(x - mean) * factor + mean``, the mean per image and channel."""
    mean = _ordered_mean(x)
    return (x - mean) * factor + mean


@CORRUPTIONS.register("brightness", params=(0.05, 0.1, 0.15, 0.2, 0.3), param="added to HSV value")
def brightness(x: Tensor, shift: float, rng: np.random.Generator) -> Tensor:
    """Brighter: the HSV value (max over channels) raised by ``shift``, hue and saturation kept.

    With hue and saturation fixed every channel scales with the value, so no HSV round trip
    is needed; a grey image becomes ``x + shift``.
    """
    value = x.amax(dim=1, keepdim=True)
    raised = (value + shift).clamp(max=1.0)
    return torch.where(value > 0, x * (raised / value.clamp(min=1e-12)), raised)


@CORRUPTIONS.register("jpeg", params=(80, 65, 58, 50, 40), param="JPEG quality")
def jpeg(x: Tensor, quality: int, rng: np.random.Generator) -> Tensor:
    """JPEG compression at ``quality`` (Pillow's encoder, through the torchvision adapter)."""
    from robust_compress.adapters.torchvision.jpeg import jpeg_roundtrip

    return jpeg_roundtrip(x, quality)


def parameter_rows() -> list[str]:
    """The Markdown table of every corruption's parameters by severity (for the docs)."""
    rows = [
        "| corruption | parameter | " + " | ".join(f"s{s}" for s in SEVERITIES) + " |",
        "|---|---|" + "---|" * len(SEVERITIES),
    ]
    for entry in CORRUPTIONS.entries():
        values = " | ".join(_text(p) for p in entry.meta["params"])
        rows.append(f"| `{entry.name}` | {entry.meta.get('param', '')} | {values} |")
    return rows


def _text(value) -> str:
    if isinstance(value, tuple):
        return "(" + ", ".join(f"{v:g}" for v in value) + ")"
    return f"{value:g}"
