"""The ``train`` stage: natural, FGSM-RS, PGD or TRADES training."""

from __future__ import annotations

from robust_compress.training.fit import fit


def run(session, stage, label: str) -> None:
    """Train ``session.model`` as the stage says."""
    adversary = session.adversary_for(session.stage_index)
    fit(session, label, stage.epochs, stage.optimizer, stage.schedule, adversary)
