"""The typed contract between the engine and its stages.

A stage is ``run(session, config, label) -> StageResult | None`` (registered in
:data:`~robust_compress.stages.registry.STAGES`). It reads and changes ``session.model``, keeps
what must survive a crash in ``session.progress`` (saved in every checkpoint), and returns its
section of the run report as a :class:`StageResult`. Nothing passes between stages under
string keys of a free-form dict.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class StageResult:
    """A stage's section of ``report.json`` (plain data), e.g. ``prune``, ``onnx``, ``audit``."""

    section: str
    data: dict[str, Any]


@dataclass
class Progress:
    """Where the stage in progress has got to; checkpointed, and restored by ``--resume``.

    Attributes:
        seconds: Time the stage spent before the last checkpoint (its report time adds it).
        optimizer_state: The optimizer's state at the last checkpoint, until the stage's
            epoch loop takes it back.
        prune_steps: Pruning steps taken, by stage index (a spread-out schedule resumes them).
        method_state: A prune method's own resumable state as plain data, by method name
            (ADMM's Z, U and rho; the lottery's masks and rewind point).
    """

    seconds: float = 0.0
    optimizer_state: dict | None = None
    prune_steps: dict[int, int] = field(default_factory=dict)
    method_state: dict[str, Any] = field(default_factory=dict)

    def to_plain(self) -> dict[str, Any]:
        """Plain data for a checkpoint."""
        return asdict(self)

    @classmethod
    def from_plain(cls, data: dict[str, Any]) -> Progress:
        """The progress a checkpoint saved."""
        return cls(**{k: v for k, v in data.items() if k in cls.__dataclass_fields__})


_OLD_RESULTS = {"prune_report": "prune", "onnx": "onnx", "audit": "audit"}
_OLD_METHODS = ("admm", "lottery")


def from_old_extra(extra: dict[str, Any]) -> tuple[Progress, dict[str, dict]]:
    """Progress and results of a checkpoint written before the typed contract (``extra``)."""
    progress = Progress(
        seconds=float(extra.get("partial_seconds", 0.0)),
        prune_steps=dict(extra.get("prune_steps_taken") or {}),
        method_state={name: extra[name] for name in _OLD_METHODS if name in extra},
    )
    results = {new: extra[old] for old, new in _OLD_RESULTS.items() if extra.get(old)}
    return progress, results
