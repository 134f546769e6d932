"""Rules of a recipe that span several fields, and the resolution of its adversaries.

These run after every field has been validated on its own. Each problem is a (path, message)
pair so that the loader can report it at the offending value's position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robust_compress.attacks.registry import ATTACKS
from robust_compress.threat import eps_error

if TYPE_CHECKING:
    from robust_compress.recipe.schema import Recipe

Path = tuple[str | int, ...]
Problem = tuple[Path, str]


def _adversaries(recipe: Recipe) -> list[tuple[Path, Any]]:
    found = []
    for i, stage in enumerate(recipe.stages):
        for name in ("adversary", "val_attack"):
            adversary = getattr(stage, name, None)
            if adversary is not None:
                found.append((("stages", i, stage.kind, name), adversary))
    return found


def rule_problems(recipe: Recipe) -> list[Problem]:
    """Return the cross-field problems of a recipe whose fields are each valid.

    Args:
        recipe: The recipe.

    Returns:
        (path, message) pairs, empty when the recipe is consistent.
    """
    problems: list[Problem] = []
    norm = recipe.threat.norm
    for path, adversary in _adversaries(recipe):
        error = None if adversary.eps is None else eps_error(adversary.eps, norm)
        if error is not None:
            problems.append(((*path, "eps"), error))
        if not ATTACKS.entry(adversary.attack).meta.get("training", True):
            usable = [e.name for e in ATTACKS.entries() if e.meta.get("training", True)]
            msg = f"{adversary.attack} is not a training attack; use one of {', '.join(usable)}"
            problems.append(((*path, "attack"), msg))
    data = recipe.data
    if data.train_subset is not None and data.holdout >= data.train_subset:
        msg = f"holdout ({data.holdout}) must be smaller than train_subset ({data.train_subset})"
        problems.append((("data", "holdout"), msg))
    for i, stage in enumerate(recipe.stages):
        problems.extend(_stage_problems(("stages", i, stage.kind), stage, norm))
        if stage.kind in ("sensitivity", "search") and not data.holdout:
            msg = (
                f"the {stage.kind} stage measures on a validation split held out from the "
                "training data, never the test set: set data.holdout (e.g. 1000)"
            )
            problems.append((("stages", i, stage.kind), msg))
    return problems


def _stage_problems(path: Path, stage: Any, norm: str) -> list[Problem]:
    problems: list[Problem] = []
    linf = norm == "linf"
    if stage.kind == "train" and stage.method == "trades" and not linf:
        msg = "TRADES training attacks in the L-inf ball; use method pgd for an L2 threat"
        problems.append(((*path, "method"), msg))
    if stage.kind == "train" and stage.method == "natural" and stage.adversary is not None:
        msg = "method natural trains on clean data; remove adversary or pick fgsm_rs, pgd, trades"
        problems.append(((*path, "adversary"), msg))
    if hasattr(stage, "problems"):  # a stage's own cross-field rules (e.g. each prune method's)
        problems.extend(((*path, *where), msg) for where, msg in stage.problems())
    if stage.kind == "audit":
        seen: set[str] = set()
        for j, attack in enumerate(stage.attacks):
            if attack in seen:
                problems.append(((*path, "attacks", j), f"attack {attack!r} is listed twice"))
            seen.add(attack)
        for j, eps in enumerate(stage.eps_sweep):
            error = eps_error(eps, norm)
            if error is not None:
                problems.append(((*path, "eps_sweep", j), error))
    return problems


def resolve_adversaries(recipe: Recipe) -> None:
    """Fill in every adversary of ``recipe`` in place (see :class:`Recipe`).

    A train stage without an adversary gets the one its method implies (``fgsm_rs``: FGSM
    with a random start; ``pgd`` and ``trades``: PGD; ``natural``: none); a prune stage whose
    importance criterion takes its gradients on adversarial examples (``needs_adversary``,
    e.g. ``robust_taylor``) and has none gets PGD, which its fine-tuning uses too, and so does
    a search stage without one. Then every
    adversary's ``eps`` defaults to the threat's ``eps`` and its ``step`` to the attack's
    usual step (:func:`robust_compress.threat.default_step`).
    """
    from robust_compress.attacks.configs import AdversaryConfig

    eps = recipe.threat.eps
    for stage in recipe.stages:
        if stage.kind == "train" and stage.adversary is None and stage.method != "natural":
            attack = "fgsm_rs" if stage.method == "fgsm_rs" else "pgd"
            stage.adversary = AdversaryConfig(attack=attack)
        if stage.kind == "prune" and stage.adversary is None and _needs_adversary(stage):
            stage.adversary = AdversaryConfig(attack="pgd")
        if stage.kind == "search" and stage.adversary is None:
            stage.adversary = AdversaryConfig(attack="pgd")
        for name in ("adversary", "val_attack"):
            adversary = getattr(stage, name, None)
            if adversary is not None:
                setattr(stage, name, adversary.resolved(eps))


def _needs_adversary(stage: Any) -> bool:
    """Whether a prune stage's importance criterion takes gradients on adversarial examples."""
    from robust_compress.pruning.registry import IMPORTANCE, importance_fact

    name = getattr(stage, "importance", None)
    return isinstance(name, str) and name in IMPORTANCE and importance_fact(name, "needs_adversary")
