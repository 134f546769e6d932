"""The ``tensorboard`` tracker: scalars and text in TensorBoard event files.

Written with ``torch.utils.tensorboard.SummaryWriter`` (which needs the ``tensorboard``
package); the default folder is ``RUN_FOLDER/tensorboard`` (``tensorboard --logdir`` it).
TensorBoard keeps no files, so the run folder's files stay where they are; the resolved
recipe, the params and the audit's Markdown are logged as text.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch.utils.tensorboard import SummaryWriter

from robust_compress.errors import UserError


class TensorBoardTracker:
    """Logs to TensorBoard event files.

    Args:
        config: The recipe's :class:`~robust_compress.tracking.configs.TensorBoardConfig`.
        context: The run's :class:`~robust_compress.tracking.hooks.TrackingContext`.
    """

    def __init__(self, config: Any, context: Any):
        log_dir = config.log_dir
        if log_dir is None:
            if context.run_folder is None:
                raise UserError("tracking.tensorboard needs a log_dir when there is no run folder")
            log_dir = Path(context.run_folder) / "tensorboard"
        self.log_dir = Path(log_dir)
        self.writer = SummaryWriter(log_dir=str(self.log_dir))

    def log_params(self, params: dict[str, Any]) -> None:
        """Log the params as one Markdown table of text."""
        rows = ["| param | value |", "|---|---|"]
        rows += [f"| {k} | {v} |" for k, v in params.items()]
        self.writer.add_text("params", "\n".join(rows), 0)

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """One scalar per metric at ``step``."""
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)

    def log_text(self, name: str, text: str) -> None:
        """Log ``text`` (shown as Markdown in TensorBoard's text tab)."""
        self.writer.add_text(name, text, 0)

    def log_artifacts(self, folder: Path) -> None:
        """TensorBoard keeps no files: flush so every event is on disk."""
        self.writer.flush()

    def close(self, status: str) -> None:
        """Flush and close the event file."""
        self.writer.close()
