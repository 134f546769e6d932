"""Lifecycle hooks of a :class:`~robust_compress.engine.session.Session`.

Start, batch, epoch, end, and the end of the run (trackers log the report there).
"""

from __future__ import annotations


class Hooks:
    """Override any of these to follow a run; the base class does nothing.

    ``stage`` is the stage's label (``"2:prune"``); ``total`` the number of batches a stage
    (or an epoch) will run, for progress bars.
    """

    def on_stage_start(self, stage: str, epochs: int, batches_per_epoch: int) -> None:
        """A stage starts (``epochs`` may be 0 for stages without training)."""

    def on_batch(self, stage: str, epoch: int, batch: int, loss: float) -> None:
        """A training step ended."""

    def on_epoch(self, stage: str, epoch: int, metrics: dict) -> None:
        """An epoch ended; ``metrics`` holds at least ``loss``."""

    def on_stage_end(self, stage: str, record: dict) -> None:
        """A stage ended; ``record`` is its row of the report."""

    def on_message(self, text: str) -> None:
        """A one-line note for the user (a warning or a stage's result)."""

    def on_run_end(self, report: dict) -> None:
        """The run ended and wrote its report (``report`` is report.json's content)."""


class HookList(Hooks):
    """Calls every hook in a list, in order."""

    def __init__(self, hooks: list[Hooks] | None = None):
        self.hooks = list(hooks or [])

    def on_stage_start(self, stage, epochs, batches_per_epoch):  # noqa: D102
        for h in self.hooks:
            h.on_stage_start(stage, epochs, batches_per_epoch)

    def on_batch(self, stage, epoch, batch, loss):  # noqa: D102
        for h in self.hooks:
            h.on_batch(stage, epoch, batch, loss)

    def on_epoch(self, stage, epoch, metrics):  # noqa: D102
        for h in self.hooks:
            h.on_epoch(stage, epoch, metrics)

    def on_stage_end(self, stage, record):  # noqa: D102
        for h in self.hooks:
            h.on_stage_end(stage, record)

    def on_message(self, text):  # noqa: D102
        for h in self.hooks:
            h.on_message(text)

    def on_run_end(self, report):  # noqa: D102
        for h in self.hooks:
            h.on_run_end(report)
