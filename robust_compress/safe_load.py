"""Loading files a user hands us: ``torch.load`` with ``weights_only=True``, errors made plain."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch

from robust_compress.errors import CheckpointError, first_line


def safe_torch_load(path: str | Path, what: str = "checkpoint") -> object:
    """Load ``path`` with ``torch.load(..., weights_only=True)`` on the CPU.

    Only tensors and plain Python data are accepted, so a file that would run code when
    unpickled (or holds whole pickled modules) is refused.

    Args:
        path: The file.
        what: What the file is, for messages ("checkpoint", "pruned model file").

    Raises:
        CheckpointError: The file is missing or cannot be loaded safely.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{what} {path} does not exist.")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # torch warns about pickle protocols, not to users
            return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        first = first_line(exc)
        if "Weights only load failed" in first:
            first = (
                "it holds objects other than tensors and plain data (refused: unpickling them "
                "could run code)"
            )
        raise CheckpointError(
            f"{path} cannot be loaded safely (weights_only=True): {first}. Save plain weights "
            "with torch.save(model.state_dict(), path)."
        ) from None
