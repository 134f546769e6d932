"""Session hooks that send a run to its trackers: params, metrics, audit figures, files.

The names logged (the same in every backend):

- params: the resolved recipe, flattened (``stages.0.train.epochs``);
- ``stageN_KIND/loss`` per epoch (step: the epoch) and ``train/loss`` (step: epochs so far);
- ``stage/clean``, ``stage/pgd10``, ``stage/params``, ``stage/macs``, ``stage/seconds`` per
  stage (step: the stage's index), and the same under ``stageN_KIND/`` (step 0);
- at the end: ``final/*`` and ``dense/*`` (clean, robust, params, MACs, ONNX bytes),
  ``audit/MODEL/robust``, ``audit/MODEL/clean``, ``audit/MODEL/ATTACK`` and
  ``audit/MODEL/accuracy_vs_eps`` (step: the index in the sweep, whose radii are logged as
  ``audit/MODEL/eps``), and the run folder's files as artifacts where the backend keeps files.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from robust_compress.registry import TRACKERS

log = logging.getLogger(__name__)
STAGE_FIGURES = ("clean", "pgd10", "params", "macs", "seconds")


@dataclass(frozen=True)
class TrackingContext:
    """What a tracker needs to know about the run it follows."""

    recipe_name: str
    run_folder: Path | None


class Tracker(Protocol):
    """A tracker backend (an adapter around MLflow, TensorBoard, ...)."""

    def log_params(self, params: dict[str, Any]) -> None: ...  # noqa: D102
    def log_metrics(self, metrics: dict[str, float], step: int) -> None: ...  # noqa: D102
    def log_text(self, name: str, text: str) -> None: ...  # noqa: D102
    def log_artifacts(self, folder: Path) -> None: ...  # noqa: D102
    def close(self, status: str) -> None: ...  # noqa: D102


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": [1]}}`` as ``{"a.b.0": 1}``."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list | tuple):
        items = enumerate(value)
    else:
        return {prefix: value}
    out: dict[str, Any] = {}
    for key, inner in items:
        out.update(flatten(inner, f"{prefix}.{key}" if prefix else str(key)))
    return out


def _numbers(metrics: dict[str, Any]) -> dict[str, float]:
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool)
    }


def stage_key(label: str) -> str:
    """``"2:prune"`` as ``"stage2_prune"`` (metric names allow no colon)."""
    index, _, kind = label.partition(":")
    return f"stage{index}_{kind}" if kind else label


class TrackingHooks:
    """Session hooks (the methods of :class:`robust_compress.engine.hooks.Hooks`) for trackers."""

    def __init__(self, trackers: list[Tracker], run_folder: Path | None = None):
        self.trackers = trackers
        self.run_folder = run_folder
        self._epochs = 0

    def _metrics(self, metrics: dict[str, Any], step: int) -> None:
        numbers = _numbers(metrics)
        if numbers:
            for tracker in self.trackers:
                tracker.log_metrics(numbers, step)

    def log_recipe(self, recipe: Any) -> None:
        """Log the resolved recipe as params (and as text)."""
        import yaml

        data = recipe.model_dump(mode="json", serialize_as_any=True)
        params = {k: ("null" if v is None else v) for k, v in flatten(data).items()}
        for tracker in self.trackers:
            tracker.log_params(params)
            tracker.log_text("recipe", yaml.safe_dump(data, sort_keys=False))

    def on_stage_start(self, stage: str, epochs: int, batches_per_epoch: int) -> None:  # noqa: D102
        pass

    def on_batch(self, stage: str, epoch: int, batch: int, loss: float) -> None:  # noqa: D102
        pass

    def on_epoch(self, stage: str, epoch: int, metrics: dict) -> None:  # noqa: D102
        key = stage_key(stage)
        self._metrics({f"{key}/{k}": v for k, v in metrics.items()}, epoch)
        self._epochs += 1
        self._metrics({f"train/{k}": v for k, v in metrics.items()}, self._epochs)

    def on_stage_end(self, stage: str, record: dict) -> None:  # noqa: D102
        figures = {k: record.get(k) for k in STAGE_FIGURES}
        index = stage.partition(":")[0]
        self._metrics({f"stage/{k}": v for k, v in figures.items()}, int(index or 0))
        self._metrics({f"{stage_key(stage)}/{k}": v for k, v in figures.items()}, 0)

    def on_message(self, text: str) -> None:  # noqa: D102
        pass

    def on_run_end(self, report: dict) -> None:
        """Log the report's figures and the run folder's files."""
        for model in ("dense", "final"):
            figures = {**report["metrics"][model], **report["models"][model]}
            self._metrics({f"{model}/{k}": v for k, v in figures.items()}, 0)
        for name, audit in (report.get("audit") or {}).items():
            if isinstance(audit, dict):
                self._audit(name, audit)
        for tracker in self.trackers:
            if report.get("audit", {}).get("markdown"):
                tracker.log_text("audit", report["audit"]["markdown"])
            if self.run_folder is not None:
                tracker.log_artifacts(self.run_folder)

    def _audit(self, name: str, audit: dict) -> None:
        figures = {"robust": audit.get("robust"), "clean": audit.get("clean")}
        for attack, row in (audit.get("per_attack") or {}).items():
            figures[attack] = row.get("accuracy")
        self._metrics({f"audit/{name}/{k}": v for k, v in figures.items()}, 0)
        for i, point in enumerate(audit.get("eps_sweep") or []):
            row = {"accuracy_vs_eps": point.get("accuracy"), "eps": point.get("eps")}
            self._metrics({f"audit/{name}/{k}": v for k, v in row.items()}, i)

    def close(self, status: str) -> None:
        """End every tracker's run (``FINISHED`` or ``FAILED``)."""
        for tracker in self.trackers:
            try:
                tracker.close(status)
            except Exception as exc:  # noqa: BLE001 - closing must not hide the run's own error
                log.warning("closing a tracker failed: %s", exc)


def open_trackers(tracking: dict, context: TrackingContext) -> list[Tracker]:
    """One tracker per configured backend (their extras were checked when the recipe loaded)."""
    return [TRACKERS.get(name)(config, context) for name, config in tracking.items()]


@contextlib.contextmanager
def tracking(session: Any, enabled: bool = True) -> Iterator[TrackingHooks | None]:
    """Follow ``session``'s run with its recipe's trackers while the block runs."""
    configs = getattr(session.recipe, "tracking", None) or {}
    if not configs or not enabled:
        yield None
        return
    folder = session.out.path if session.out is not None else None
    context = TrackingContext(session.recipe.name, folder)
    hooks = TrackingHooks(open_trackers(configs, context), folder)
    session.hooks.hooks.append(hooks)
    status = "FAILED"
    try:
        hooks.log_recipe(session.recipe)
        yield hooks
        status = "FINISHED"
    finally:
        session.hooks.hooks.remove(hooks)
        hooks.close(status)
