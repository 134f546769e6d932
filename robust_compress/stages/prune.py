"""The ``prune`` stage: runs the prune method its config names (see docs/methods.md).

The methods are registered in :data:`~robust_compress.pruning.registry.PRUNE_METHODS`; each
leaves ``session.model`` pruned (and fine-tuned) and writes the ``prune`` report section.
"""

from __future__ import annotations

from robust_compress.errors import UserError
from robust_compress.pruning.registry import PRUNE_METHODS
from robust_compress.stages.contract import StageResult


def run(session, stage, label: str) -> StageResult | None:
    """Prune ``session.model`` by the stage's method; return the ``prune`` report section."""
    if session.quant_config is not None:
        raise UserError(f"stage {label}: cannot prune a quantized model; prune before quantizing.")
    session.snapshot_dense()
    PRUNE_METHODS.get(stage.method)(session, stage, label)
    result = session.results.get("prune")
    return StageResult("prune", result) if result is not None else None
