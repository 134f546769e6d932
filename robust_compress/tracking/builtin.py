"""Registers the built-in tracker backends (imported by the registry on first use).

An entry's item is a class ``Tracker(config, context)`` with ``log_params``, ``log_metrics``,
``log_text``, ``log_artifacts`` and ``close`` (:class:`robust_compress.tracking.hooks.Tracker`);
``meta`` names the module to import (``module``) and the optional extra that installs it.
"""

from __future__ import annotations

from robust_compress.registry import TRACKERS
from robust_compress.tracking.configs import MlflowConfig, TensorBoardConfig

TRACKERS.add(
    "mlflow",
    "robust_compress.adapters.mlflow.tracker:MlflowTracker",
    config=MlflowConfig,
    module="mlflow",
    extra="mlflow",
)
TRACKERS.add(
    "tensorboard",
    "robust_compress.adapters.tensorboard.tracker:TensorBoardTracker",
    config=TensorBoardConfig,
    module="tensorboard",
    extra="tensorboard",
)
