"""Records of finished experiment runs, kept in the repository so `make results` spans sittings.

A run folder under ``runs/`` is not tracked by git, and a fresh checkout (another machine, a
clean CI workspace, the next sitting) starts without it: hours of finished runs would be lost.
So when a run finishes, :func:`save` copies what the results page reads from it into
``experiments/records/NAME/``, which is committed:

- ``report.json`` and ``recipe.resolved.yaml`` (the figures, and the recipe they were made
  with: a record of another recipe is not reused);
- ``run.log`` (when each invocation ran: the page's wall time);
- ``stopped.json`` for a run the dead-network guard stopped (that outcome is a result too);
- for a base run, ``checkpoints/last.pt`` holding the model weights only (the runs that start
  from the base load them; the optimiser state is left out).

Before running, :func:`restore` puts a record back into an empty run folder, so the usual
reuse test (``results.is_done``) finds it finished.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

RECORDS = Path(__file__).resolve().parent / "records"
FILES = ("report.json", "recipe.resolved.yaml", "run.log", "stopped.json")
CHECKPOINT = Path("checkpoints") / "last.pt"
#: Written into a run folder that :func:`restore` made: it holds a copy, not a run.
RESTORED = "restored-from-record"


def save(folder: Path, name: str, *, base: bool, records: Path | None = None) -> Path:
    """Copy the finished run in ``folder`` into ``records/name``; return that record.

    Args:
        folder: The run folder (holding ``report.json`` or ``stopped.json``).
        name: The run's name (the record's folder name).
        base: Whether other runs start from this one's last checkpoint (it is kept then).
        records: Where records are kept (default :data:`RECORDS`).

    Returns:
        The record's folder.
    """
    out = (records or RECORDS) / name
    if out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True)
    for file in FILES:
        if (folder / file).is_file():
            shutil.copy2(folder / file, out / file)
    if base and (folder / CHECKPOINT).is_file():
        (out / CHECKPOINT).parent.mkdir(parents=True)
        _save_weights(folder / CHECKPOINT, out / CHECKPOINT)
    return out


def restore(folder: Path, name: str, records: Path | None = None) -> bool:
    """Put the record of ``name`` into ``folder``, marked as a copy (:data:`RESTORED`).

    Only a missing or empty folder gets the record: a folder that holds anything (a run,
    finished or part-way, or files of the user's) wins over it. Returns whether a record was
    restored.
    """
    record = (records or RECORDS) / name
    if not record.is_dir() or (folder.exists() and any(folder.iterdir())):
        return False
    folder.mkdir(parents=True, exist_ok=True)
    (folder / RESTORED).write_text(f"a copy of {record}\n")
    for file in FILES:
        if (record / file).is_file():
            shutil.copy2(record / file, folder / file)
    if (record / CHECKPOINT).is_file():
        (folder / CHECKPOINT).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(record / CHECKPOINT, folder / CHECKPOINT)
    return True


def recorded(name: str, records: Path | None = None) -> bool:
    """Whether ``name`` has a record."""
    return ((records or RECORDS) / name).is_dir()


def stopped(folder: Path) -> dict | None:
    """The guard's stop of the run in ``folder`` (``stopped.json``), or None."""
    path = folder / "stopped.json"
    return json.loads(path.read_text()) if path.is_file() else None


def _save_weights(src: Path, dst: Path) -> None:
    """Write ``src``'s checkpoint with its model weights only (what a ``${base}`` loads)."""
    import torch

    state = torch.load(src, map_location="cpu", weights_only=True)
    keep = {"model": state["model"]} if isinstance(state, dict) and "model" in state else state
    torch.save(keep, dst)
