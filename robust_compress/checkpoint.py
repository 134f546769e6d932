"""Model checkpoints: plain data (spec, shapes, state dict) saved atomically, loaded safely."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import torch
from torch import nn

from robust_compress.errors import CheckpointError, UserError
from robust_compress.models import build_model

FORMAT = "robust-compress/1"


def atomic_save(obj: object, path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same folder, fsync, then rename over ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


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
    if not path.is_file():
        raise CheckpointError(f"checkpoint {path} does not exist.")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        msg = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        raise CheckpointError(
            f"{path} cannot be loaded safely (weights_only=True): {msg}"
        ) from None
    if not isinstance(obj, dict) or obj.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a robust-compress checkpoint; for a plain state dict give the model "
            "spec too (--model SPEC --weights FILE)."
        )
    return obj


def load_model(path: str | Path) -> tuple[nn.Module, dict]:
    """Rebuild a model from a checkpoint made by :func:`save_model`; return it and the dict."""
    ckpt = load_checkpoint(path)
    model = build_model(ckpt["model_spec"], ckpt["num_classes"], ckpt["in_channels"])
    try:
        model.load_state_dict(ckpt["state_dict"])
    except RuntimeError as exc:
        raise CheckpointError(f"{path} does not fit {ckpt['model_spec']}: {exc}") from None
    return model.eval(), ckpt
