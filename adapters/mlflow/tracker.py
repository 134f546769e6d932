"""The ``mlflow`` tracker: one MLflow run per robust-compress run, through ``MlflowClient``.

A client bound to one tracking URI (no global ``mlflow.start_run`` state), so two runs in one
process do not share an active run. The default store is a local file store in the run folder
(``RUN_FOLDER/mlruns``): it needs only ``mlflow-skinny``, no database. MLflow 3.x keeps file
stores in maintenance mode and refuses them unless ``MLFLOW_ALLOW_FILE_STORE=true``; this
adapter sets that variable only while it talks to a ``file:`` store of its own. Read the store
with ``MLFLOW_ALLOW_FILE_STORE=true mlflow ui --backend-store-uri RUN_FOLDER/mlruns``, or give
``uri: sqlite:///path/mlflow.db`` (full ``mlflow`` package) or a server's URI instead.
"""

from __future__ import annotations

import contextlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from mlflow.entities import Metric, Param
from mlflow.tracking import MlflowClient

from robust_compress.errors import UserError

MAX_PARAM = 6000  # MLflow's limit on a param value
BATCH = 100


@contextlib.contextmanager
def file_store_allowed(uri: str) -> Iterator[None]:
    """Let MLflow open a ``file:`` store while the block runs (environment restored after)."""
    name = "MLFLOW_ALLOW_FILE_STORE"
    if not uri.startswith("file:") or name in os.environ:
        yield
        return
    os.environ[name] = "true"
    try:
        yield
    finally:
        os.environ.pop(name, None)


class MlflowTracker:
    """Logs to an MLflow tracking store.

    Args:
        config: The recipe's :class:`~robust_compress.tracking.configs.MlflowConfig`.
        context: The run's :class:`~robust_compress.tracking.hooks.TrackingContext`.
    """

    def __init__(self, config: Any, context: Any):
        folder = context.run_folder
        uri = config.uri
        if uri is None:
            if folder is None:
                raise UserError("tracking.mlflow needs a uri when the run has no run folder")
            uri = (Path(folder).resolve() / "mlruns").as_uri()
        self.config = config
        self.uri = uri
        name = config.experiment or context.recipe_name
        run_name = config.run_name or (Path(folder).name if folder else context.recipe_name)
        with file_store_allowed(uri):
            self.client = MlflowClient(tracking_uri=uri)
            experiment = self.client.get_experiment_by_name(name)
            exp_id = experiment.experiment_id if experiment else self.client.create_experiment(name)
            self.run_id = self.client.create_run(exp_id, run_name=run_name).info.run_id

    def _call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        with file_store_allowed(self.uri):
            return getattr(self.client, method)(self.run_id, *args, **kwargs)

    def log_params(self, params: dict[str, Any]) -> None:
        """Log params (values cut to MLflow's limit)."""
        items = [Param(k, str(v)[:MAX_PARAM]) for k, v in params.items()]
        for i in range(0, len(items), BATCH):
            self._call("log_batch", params=items[i : i + BATCH])

    def log_metrics(self, metrics: dict[str, float], step: int) -> None:
        """Log one value per metric at ``step``."""
        now = int(time.time() * 1000)
        items = [Metric(k, v, now, step) for k, v in metrics.items()]
        self._call("log_batch", metrics=items)

    def log_text(self, name: str, text: str) -> None:
        """Store ``text`` as the artifact ``NAME.txt``."""
        self._call("log_text", text, f"{name}.txt")

    def log_artifacts(self, folder: Path) -> None:
        """Copy the run folder's files (not mlruns/, nor checkpoints/ unless asked)."""
        if not self.config.artifacts:
            return
        skip = {"mlruns"} | (set() if self.config.checkpoints else {"checkpoints"})
        for path in sorted(Path(folder).iterdir()):
            if path.name in skip:
                continue
            if path.is_dir():
                self._call("log_artifacts", str(path), path.name)
            elif path.is_file():
                self._call("log_artifact", str(path))

    def close(self, status: str) -> None:
        """End the run with ``status`` (FINISHED, FAILED)."""
        self._call("set_terminated", status)
