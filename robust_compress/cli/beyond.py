"""The ``robust-compress beyond`` command: corruptions and randomized smoothing of a run folder.

The audit stage's two optional sections (docs/audit.md), run after the fact on a finished run:
on its dense snapshot (torch) and on ``model.int8.onnx`` through ONNX Runtime (else the final
torch model). Results go to ``<run>/audit/beyond/beyond.json`` and ``beyond.md``.
"""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace
from typing import Annotated

import typer

from robust_compress.cli.common import console, guarded, setup_logging
from robust_compress.cli.common import out as stdout
from robust_compress.errors import UserError

Opt = typer.Option


def open_run(path: Path, read_only: bool = False):
    """A session restored from run folder ``path`` (its last checkpoint).

    Args:
        path: A folder made by ``robust-compress run``.
        read_only: Open it without claiming it (nothing can be written into it).

    Raises:
        UserError: Not a run folder, or no checkpoint yet.
    """
    from robust_compress.engine import state as session_state
    from robust_compress.engine.loading import RESOLVED
    from robust_compress.engine.runfolder import ReadOnlyFolder, RunFolder
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import load_run_recipe

    if not (path / RESOLVED).is_file():
        raise UserError(f"{path} is not a robust-compress run folder (no {RESOLVED}).")
    folder = ReadOnlyFolder(path) if read_only else RunFolder(path, resume=True)
    session = Session(load_run_recipe(path / RESOLVED), folder)
    session.setup()
    if not session_state.restore_latest(session):
        raise UserError(f"run folder {path} has no checkpoint yet.")
    return session


def _floats(text: str) -> list[float]:
    try:
        return [float(v) for v in text.replace(" ", "").split(",") if v]
    except ValueError:
        msg = f"--radii takes comma-separated numbers, e.g. 0,0.25,0.5; got {text!r}."
        raise UserError(msg) from None


def register(app) -> None:
    """Add the ``beyond`` command to ``app``."""

    @app.command()
    @guarded
    def beyond(
        run: Annotated[Path, typer.Argument(help="A run folder.")],
        corruptions: Annotated[bool, Opt(help="Run the corruption audit.")] = True,
        smoothing: Annotated[bool, Opt(help="Run randomized smoothing.")] = True,
        samples: Annotated[int, Opt(min=1, help="Test images corrupted.")] = 1000,
        smooth_samples: Annotated[int, Opt(min=1, help="Test images certified.")] = 100,
        sigma: Annotated[float, Opt(min=0, help="Noise of the smoothing.")] = 0.25,
        n0: Annotated[int, Opt(min=1, help="Noisy copies that pick the class.")] = 100,
        n: Annotated[int, Opt(min=1, help="Noisy copies that bound its probability.")] = 1000,
        alpha: Annotated[float, Opt(help="Failure probability.")] = 0.001,
        radii: Annotated[str, Opt(help="L2 radii of the table.")] = "0,0.25,0.5,0.75,1.0",
        seed: Annotated[int, Opt(min=0)] = 0,
    ) -> None:
        """Corruption accuracy and certified L2 accuracy of a run's dense and deployed models."""
        from pydantic import ValidationError

        from robust_compress.audit.corruption_audit import CorruptionConfig
        from robust_compress.audit.smoothing import SmoothingConfig
        from robust_compress.stages.audit_beyond import beyond_the_ball
        from robust_compress.stages.contract import StageResult

        setup_logging(quiet=True)
        if not (corruptions or smoothing):
            raise UserError("nothing to run: drop --no-corruptions or --no-smoothing.")
        try:
            stage = SimpleNamespace(
                onnx=True,
                dense=True,
                corruptions=CorruptionConfig(samples=samples, seed=seed) if corruptions else None,
                smoothing=SmoothingConfig(
                    sigma=sigma,
                    n0=n0,
                    n=n,
                    alpha=alpha,
                    radii=_floats(radii),
                    samples=smooth_samples,
                    seed=seed,
                )
                if smoothing
                else None,
            )
        except ValidationError as exc:
            raise UserError(f"bad option: {exc.errors()[0]['msg']}") from None
        session = open_run(run)
        with console.status("corruptions and smoothing"):
            result = beyond_the_ball(session, stage, StageResult("audit", {}))
        _write(session.out, result.data)
        stdout.print(result.data["markdown"], markup=False, highlight=False)


def _write(folder, data: dict) -> None:
    """Write ``audit/beyond/beyond.json`` and ``beyond.md`` into the run folder, recorded."""
    found = {k: v for k, v in data.items() if k != "markdown"}
    folder.write_text("audit/beyond/beyond.json", json.dumps(found, indent=1))
    folder.write_text("audit/beyond/beyond.md", data["markdown"] + "\n")
    stdout.print(f"written: {folder.path / 'audit' / 'beyond'}/beyond.json, beyond.md")
