"""Model checkpoints: plain data (spec, shapes, state dict) saved atomically, loaded safely."""

from __future__ import annotations

import io
from pathlib import Path

import torch
from torch import nn

from robust_compress.errors import CheckpointError, UserError
from robust_compress.files import atomic_write_bytes
from robust_compress.models.specs import build_model
from robust_compress.safe_load import safe_torch_load

FORMAT = "robust-compress/1"


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` ``obj`` atomically: temporary file beside ``path``, fsync, rename."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return atomic_write_bytes(Path(path), buffer.getvalue())


def save_model(
    model: nn.Module,
    path: str | Path,
    spec: str,
    num_classes: int,
    in_channels: int,
    force: bool = False,
    extra: dict | None = None,
) -> Path:
    """Save ``model`` with what is needed to rebuild it from its spec.

    Raises:
        UserError: ``path`` exists and ``force`` is False.
    """
    path = Path(path)
    if path.exists() and not force:
        raise UserError(f"{path} exists; pass --force to overwrite it or choose another path.")
    payload = {
        "format": FORMAT,
        "model_spec": spec,
        "num_classes": num_classes,
        "in_channels": in_channels,
        "state_dict": model.state_dict(),
        **(extra or {}),
    }
    return atomic_save(payload, path)


def load_checkpoint(path: str | Path) -> dict:
    """Load a robust-compress checkpoint dict safely (``weights_only=True``).

    Raises:
        CheckpointError: Missing, unsafe, or not a robust-compress checkpoint.
    """
    path = Path(path)
    obj = safe_torch_load(path)
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a robust-compress checkpoint (one made by `robust-compress train "
            "--save`)."
        )
    return obj


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint made by :func:`save_model`; return it and the dict."""
    ckpt = load_checkpoint(path)
    shape = ckpt.get("input_shape")  # (C, H, W), saved by `robust-compress train --save`
    size = tuple(shape[1:]) if shape else None
    model = build_model(
        ckpt["model_spec"], ckpt["num_classes"], ckpt["in_channels"], input_size=size
    )
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {ckpt['model_spec']}: {exc}") from None
    return model.eval(), ckpt
