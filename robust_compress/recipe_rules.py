"""Rules of a recipe that span several fields, and the resolution of its adversaries.

These run after every field has been validated on its own. Each problem is a (path, message)
pair so that the loader can report it at the offending value's position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from robust_compress.recipe_schema import Recipe

Path = tuple[str | int, ...]
Problem = tuple[Path, str]


def _adversaries(recipe: Recipe) -> list[tuple[Path, Any]]:
    found = []
    for i, stage in enumerate(recipe.stages):
        adversary = getattr(stage, "adversary", None)
        if adversary is not None:
            found.append((("stages", i, stage.kind, "adversary"), adversary))
    return found


def rule_problems(recipe: Recipe) -> list[Problem]:
    """Return the cross-field problems of a recipe whose fields are each valid.

    Args:
        recipe: The recipe.

    Returns:
        (path, message) pairs, empty when the recipe is consistent.
    """
    problems: list[Problem] = []
    linf = recipe.threat.norm == "linf"
    for path, adversary in _adversaries(recipe):
        if linf and adversary.eps is not None and adversary.eps > 1:
            problems.append(((*path, "eps"), "an linf eps must be at most 1 (inputs in [0, 1])"))
    data = recipe.data
    if data.train_subset is not None and data.holdout >= data.train_subset:
        msg = f"holdout ({data.holdout}) must be smaller than train_subset ({data.train_subset})"
        problems.append((("data", "holdout"), msg))
    for i, stage in enumerate(recipe.stages):
        problems.extend(_stage_problems(("stages", i, stage.kind), stage, linf))
    return problems


def _stage_problems(path: Path, stage: Any, linf: bool) -> list[Problem]:
    problems: list[Problem] = []
    if stage.kind == "train" and stage.method == "natural" and stage.adversary is not None:
        msg = "method natural trains on clean data; remove adversary or pick fgsm_rs, pgd, trades"
        problems.append(((*path, "adversary"), msg))
    if stage.kind == "prune" and stage.schedule_epochs > stage.finetune_epochs:
        msg = (
            f"schedule_epochs ({stage.schedule_epochs}) cannot exceed finetune_epochs "
            f"({stage.finetune_epochs}): the pruning steps are spread over fine-tuning epochs"
        )
        problems.append(((*path, "schedule_epochs"), msg))
    if stage.kind == "audit":
        seen: set[str] = set()
        for j, attack in enumerate(stage.attacks):
            if attack in seen:
                problems.append(((*path, "attacks", j), f"attack {attack!r} is listed twice"))
            seen.add(attack)
        for j, eps in enumerate(stage.eps_sweep):
            if linf and eps > 1:
                msg = f"an linf eps must be at most 1 (inputs in [0, 1]), got {eps}"
                problems.append(((*path, "eps_sweep", j), msg))
    return problems


def resolve_adversaries(recipe: Recipe) -> None:
    """Fill in every adversary of ``recipe`` in place (see :class:`Recipe`).

    A train stage without an adversary gets the one its method implies (``fgsm_rs``: FGSM
    with a random start; ``pgd`` and ``trades``: PGD; ``natural``: none). Then every
    adversary's ``eps`` defaults to the threat's ``eps`` and its ``step`` to the attack's
    usual step (fgsm: eps, fgsm_rs: 1.25 * eps, iterative attacks: 2.5 * eps / steps).
    """
    from robust_compress.recipe_schema import AdversaryConfig

    eps = recipe.threat.eps
    for stage in recipe.stages:
        if stage.kind == "train" and stage.adversary is None and stage.method != "natural":
            attack = "fgsm_rs" if stage.method == "fgsm_rs" else "pgd"
            stage.adversary = AdversaryConfig(attack=attack)
        adversary = getattr(stage, "adversary", None)
        if adversary is not None:
            stage.adversary = adversary.resolved(eps)
