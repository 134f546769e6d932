"""The optional settings of the structured pruner (``StructuredPruner(..., **options)``)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from torch import Tensor, nn

from robust_compress.errors import UserError, suggest


@dataclass
class PrunerOptions:
    """Keyword options of the structured pruner (see its docstring for each one)."""

    global_pruning: bool = False
    ignore: Sequence[str] = ()
    round_to: int | None = None
    adversary: Any = None
    batches: Callable[[], Iterable[tuple[Tensor, Tensor]]] | None = None
    grad_batches: int = 4
    seed: int = 0
    scores: Mapping[nn.Module, Tensor] | None = None
    sparsity_reg: float = 0.0

    @classmethod
    def from_keywords(cls, options: dict[str, Any]) -> PrunerOptions:
        """Build from keywords; an unknown one is a :class:`UserError` with close names."""
        known = [f.name for f in fields(cls)]
        for name in options:
            if name not in known:
                raise UserError(f"unknown pruner option {name!r}." + suggest(name, known))
        return cls(**options)
