"""Config classes of the tracker backends and the ``tracking:`` section of a recipe.

A recipe names each backend as a key (``tracking: {mlflow: {}, tensorboard: {}}``); several
may be on at once. The keys are the entries of :data:`~robust_compress.registry.TRACKERS`, so a
plugin's tracker is accepted like a built-in one.
"""

from __future__ import annotations

import importlib.util
from functools import cache
from typing import Any

from pydantic import BaseModel, BeforeValidator, Field, create_model

from robust_compress.config import STRICT
from robust_compress.registry import TRACKERS


class MlflowConfig(BaseModel):
    """MLflow: params, metrics and the run folder's files in a tracking store."""

    model_config = STRICT
    uri: str | None = Field(
        None, description="Tracking URI; default: a local file store, RUN_FOLDER/mlruns."
    )
    experiment: str | None = Field(None, description="Experiment name; default: the recipe's.")
    run_name: str | None = Field(None, description="Run name; default: the run folder's name.")
    artifacts: bool = Field(True, description="Log the run folder's files as artifacts.")
    checkpoints: bool = Field(False, description="Include checkpoints/ in the artifacts.")


class TensorBoardConfig(BaseModel):
    """TensorBoard: scalars and text in event files."""

    model_config = STRICT
    log_dir: str | None = Field(None, description="Default: RUN_FOLDER/tensorboard.")


def _holder_fields() -> dict[str, Any]:
    return {e.name: (e.config | None, None) for e in TRACKERS.entries() if e.config is not None}


@cache
def _holder(names: tuple[str, ...]) -> type[BaseModel]:
    """A model with one optional field per tracker, so errors sit at ``tracking.NAME.FIELD``."""
    return create_model("TrackingConfig", __config__=STRICT, **_holder_fields())


def validate_tracking(data: Any) -> dict[str, BaseModel]:
    """``{backend: config}`` from a recipe's ``tracking:`` block (None or {} for none)."""
    if data is None:
        return {}
    if isinstance(data, dict) and all(isinstance(v, BaseModel) for v in data.values()):
        return data
    if isinstance(data, dict):  # a backend written with no value (``mlflow:``) takes defaults
        data = {k: ({} if v is None else v) for k, v in data.items()}
    holder = _holder(tuple(TRACKERS.names())).model_validate(data)
    return {name: getattr(holder, name) for name in holder.model_fields_set}


Tracking = BeforeValidator(validate_tracking)


def tracking_json_schema() -> dict[str, Any]:
    """The JSON schema of the ``tracking:`` section (one optional object per backend)."""
    return _holder(tuple(TRACKERS.names())).model_json_schema()


def missing_extras(tracking: dict[str, BaseModel]) -> list[str]:
    """One message per configured backend whose library is not installed."""
    problems = []
    for name in tracking:
        meta = TRACKERS.entry(name).meta
        module, extra = meta.get("module"), meta.get("extra", name)
        if module and importlib.util.find_spec(module) is None:
            problems.append(
                f"tracking.{name}: the {module} package is not installed; install it with "
                f"pip install 'robust-compress[{extra}]'"
            )
    return problems
