"""The stage registry: each stage kind's config class and the function that runs it.

An entry's item is ``run(session, config, label) -> StageResult`` (or ``"module:function"``
naming it); its config class is what the recipe's ``- KIND: {...}`` block validates into.
"""

from __future__ import annotations

from robust_compress.registry import STAGES

__all__ = ["STAGES", "stage_types"]


def stage_types() -> dict[str, type]:
    """Each registered stage kind's config class, in registration order."""
    return {entry.name: entry.config for entry in STAGES.entries()}
