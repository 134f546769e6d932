"""Counting, saving and restoring structurally pruned models (Torch-Pruning adapter).

A pruned model is stored as plain data: the pruning history (module name, output-or-input
flag, channel indices per pruning operation), the shape of the example input used to trace it,
and its state dict. Restoring builds Torch-Pruning's dependency graph on a fresh, unpruned
instance of the same architecture, replays the history and loads the state dict, so no module
is ever unpickled and files load with ``torch.load(weights_only=True)``.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch
import torch_pruning as tp
from torch import Tensor, nn

from robust_compress.adapters.torch_pruning.graph import sync_attention
from robust_compress.errors import CheckpointError
from robust_compress.models.state import preserved_state
from robust_compress.safe_load import safe_torch_load

log = logging.getLogger(__name__)

FORMAT = "robust_compress.pruned/1"
ATTR = "_rc_pruning"  # model attribute: {"history": [...], "input_shape": [...]}


def count_macs_params(model: nn.Module, example_inputs: Tensor) -> tuple[int, int]:
    """Return ``(MACs, parameters)`` of one forward pass on ``example_inputs``.

    Uses ``torch_pruning.utils.count_ops_and_params`` on a copy of the model, so ``model`` is
    left as found. Count the fp32 model: quantized (Brevitas) layers count as zero.
    """
    with torch.no_grad():
        macs, params = tp.utils.count_ops_and_params(model, example_inputs)
    return int(macs), int(params)


def pruning_record(model: nn.Module) -> dict[str, Any]:
    """Return the pruning record attached to ``model`` (empty history if never pruned)."""
    record = getattr(model, ATTR, None)
    if record is None:
        return {"history": [], "input_shape": None}
    return {"history": [list(op) for op in record["history"]], "input_shape": record["input_shape"]}


def set_pruning_record(model: nn.Module, history: list, input_shape: list[int]) -> None:
    """Attach the plain-data pruning ``history`` and tracing ``input_shape`` to ``model``."""
    clean = [[str(name), bool(out), [int(i) for i in idxs]] for name, out, idxs in history]
    object.__setattr__(model, ATTR, {"history": clean, "input_shape": list(input_shape)})


def pruned_state(model: nn.Module) -> dict[str, Any]:
    """Return a pruned model's history and state dict as plain data (for checkpoints).

    The state dict's tensors are copies, so training on afterwards does not change them.
    """
    record = pruning_record(model)
    return {
        "format": FORMAT,
        "history": record["history"],
        "input_shape": record["input_shape"],
        "state_dict": {k: v.detach().clone() for k, v in model.state_dict().items()},
    }


def restore_pruned(model: nn.Module, state: dict[str, Any]) -> nn.Module:
    """Prune a fresh ``model`` as recorded in ``state`` and load its weights.

    Args:
        model: A FRESH, unpruned instance of the architecture that was pruned.
        state: What :func:`pruned_state` returned.

    Returns:
        ``model``, pruned and loaded, its train/eval mode as given.

    Raises:
        CheckpointError: ``state`` is not a pruned-model state or does not fit ``model``.
    """
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"not a pruned-model state (expected format {FORMAT!r}).")
    history, shape = state["history"], state["input_shape"]
    if history:
        _replay(model, history, shape)
        set_pruning_record(model, history, shape)
    try:
        model.load_state_dict(state["state_dict"], strict=True)
    except RuntimeError as exc:
        detail = " ".join(str(exc).split())[:300]
        raise CheckpointError(f"the pruned state does not fit the model: {detail}") from None
    return model


@contextlib.contextmanager
def traceable(model: nn.Module) -> Iterator[None]:
    """Let Torch-Pruning trace and prune ``model``, then put back what it disturbs.

    Tracing follows autograd's graph, so a layer whose parameters do not require grad at the
    start of the network would be invisible to it: every parameter requires grad inside. On
    exit each module's train/eval mode (tracing sets eval) and each parameter's
    ``requires_grad`` (pruning makes new parameters that require grad) are restored by name.
    """
    with preserved_state(model, requires_grad=True):
        yield


def _replay(model: nn.Module, history: list, input_shape: list[int]) -> None:
    example = torch.zeros(input_shape, device=_device(model))
    try:
        with traceable(model):
            graph = tp.DependencyGraph().build_dependency(model, example_inputs=example)
            graph.load_pruning_history([list(op) for op in history])
        sync_attention(model)
    except (AttributeError, ValueError, IndexError, RuntimeError) as exc:
        raise CheckpointError(
            f"the pruning history does not fit {type(model).__name__}: {exc}. Pass a fresh, "
            "unpruned instance of the architecture that was pruned."
        ) from None
    log.debug("replayed %d pruning operations", len(history))


def _device(model: nn.Module) -> torch.device:
    param = next(model.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def save_pruned(model: nn.Module, path: Path) -> None:
    """Save a pruned model's history and state dict to ``path`` (plain data, torch.save)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(pruned_state(model), path)


def load_pruned(model: nn.Module, path: Path) -> nn.Module:
    """Load a model saved with :func:`save_pruned` into a FRESH, unpruned ``model``.

    Raises:
        CheckpointError: The file is missing, cannot be loaded safely, or does not fit.
    """
    path = Path(path)
    state = safe_torch_load(path, "pruned model file")
    try:
        return restore_pruned(model, state)
    except CheckpointError as exc:
        raise CheckpointError(f"{path}: {exc}") from None
