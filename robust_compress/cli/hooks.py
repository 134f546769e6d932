"""Session hooks that draw rich progress bars (the CLI's only drawing code)."""

from __future__ import annotations

from robust_compress.cli.common import console
from robust_compress.engine.hooks import Hooks


class ProgressHooks(Hooks):
    """One progress bar per stage with ETA; prints each stage's result line."""

    def __init__(self, bars):
        self.bars = bars
        self._task = None
        self._ctx = None

    def on_stage_start(self, stage, epochs, batches_per_epoch):  # noqa: D102
        self._close()
        total = max(1, epochs * batches_per_epoch)
        self._ctx = self.bars.task(f"stage {stage}", total)
        self._task = self._ctx.__enter__()

    def on_batch(self, stage, epoch, batch, loss):  # noqa: D102
        if self._task:
            self._task(f"epoch {epoch + 1} loss {loss:.3f}")

    def on_stage_end(self, stage, record):  # noqa: D102
        self._close()
        console.print(
            f"[bold]{stage}[/]: clean {record['clean']:.1%}, PGD-10 {record['pgd10']:.1%}, "
            f"{record['params']:,} params, {record['macs']:,} MACs, {record['seconds']:.0f} s"
        )

    def on_message(self, text):  # noqa: D102
        style = "bold red" if "FAILED" in text else "yellow"
        console.print(text, style=style, markup=False)

    def _close(self):
        if self._ctx is not None:
            self._ctx.__exit__(None, None, None)
        self._ctx = self._task = None
