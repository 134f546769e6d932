"""Readers of the standard on-disk formats that torchvision's dataset classes read.

Each returns ``uint8`` images (N, C, H, W) and ``int64`` labels. They read the files
themselves rather than through torchvision's classes, whose checksum test refuses any file
but the published one (a sliced or regenerated copy included), and they read CIFAR's pickled
batches with an unpickler that builds only dicts, lists, strings, numbers and NumPy arrays:
a pickle naming anything else is refused, so a doctored file cannot run code.
"""

from __future__ import annotations

import gzip
import importlib
import pickle
import struct
from pathlib import Path

import torch
from torch import Tensor

from robust_compress.errors import UserError

# The only globals a CIFAR pickle may name: NumPy's array and dtype rebuilders.
SAFE_GLOBALS = {
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.numeric", "_frombuffer"),
    ("numpy._core.numeric", "_frombuffer"),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
}


class _ArraysOnly(pickle.Unpickler):
    def find_class(self, module: str, name: str):
        if (module, name) not in SAFE_GLOBALS:
            raise pickle.UnpicklingError(f"refused global {module}.{name}")
        return getattr(importlib.import_module(module), name)


def read_pickle(path: Path) -> dict:
    """Load a CIFAR-style pickle (a dict of arrays and lists), refusing any other object."""
    try:
        with open(path, "rb") as f:
            obj = _ArraysOnly(f, encoding="latin1").load()
    except (pickle.UnpicklingError, EOFError, ValueError) as exc:
        raise UserError(f"{path} is not a CIFAR batch file: {exc}.") from None
    if not isinstance(obj, dict):
        raise UserError(f"{path} holds a {type(obj).__name__}, not a CIFAR batch (a dict).")
    return {k.decode() if isinstance(k, bytes) else k: v for k, v in obj.items()}


def read_cifar(files: list[Path], label_key: str) -> tuple[Tensor, Tensor]:
    """Images and labels of CIFAR batch files (``data``: N x 3072 bytes, labels under a key)."""
    xs, ys = [], []
    for path in files:
        batch = read_pickle(path)
        if "data" not in batch or label_key not in batch:
            raise UserError(f"{path} has no 'data' and {label_key!r} entries.")
        data = torch.as_tensor(batch["data"], dtype=torch.uint8)
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
            raise UserError(f"{path}: data has shape {tuple(data.shape)}, expected (N, 3072).")
        xs.append(data.reshape(-1, 3, 32, 32))
        ys.append(torch.as_tensor(list(batch[label_key]), dtype=torch.int64))
    return _checked(torch.cat(xs), torch.cat(ys), files[0])


def read_idx(path: Path) -> Tensor:
    """An IDX file of unsigned bytes (``.gz`` or plain) as a uint8 tensor."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UserError(f"{path} is not an IDX file of unsigned bytes.")
    ndim = raw[3]
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    body = bytearray(raw[4 + 4 * ndim :])
    expected = 1
    for d in dims:
        expected *= d
    if len(body) != expected:
        raise UserError(f"{path} is truncated: {len(body)} bytes, expected {expected}.")
    if expected == 0:  # torch.frombuffer refuses an empty buffer
        return torch.zeros(dims, dtype=torch.uint8)
    return torch.frombuffer(body, dtype=torch.uint8).reshape(dims)


def read_stl10(images: Path, labels: Path) -> tuple[Tensor, Tensor]:
    """STL-10's binary files: 3x96x96 images stored column-major, labels 1..10."""
    raw = torch.frombuffer(bytearray(images.read_bytes()), dtype=torch.uint8)
    if raw.numel() % (3 * 96 * 96):
        raise UserError(f"{images} is not a whole number of 3x96x96 images.")
    x = raw.reshape(-1, 3, 96, 96).transpose(2, 3).contiguous()
    y = torch.frombuffer(bytearray(labels.read_bytes()), dtype=torch.uint8).long() - 1
    return _checked(x, y, images)


def _checked(x: Tensor, y: Tensor, where: Path) -> tuple[Tensor, Tensor]:
    if len(x) != len(y):
        raise UserError(f"{where}: {len(x)} images but {len(y)} labels.")
    return x, y
