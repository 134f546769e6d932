"""Rules of a recipe that span several fields, and the resolution of its adversaries.

These run after every field has been validated on its own. Each problem is a (path, message)
pair so that the loader can report it at the offending value's position.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from robust_compress.threat import eps_error

if TYPE_CHECKING:
    from robust_compress.recipe.schema import Recipe

Path = tuple[str | int, ...]
Problem = tuple[Path, str]


_MAGNITUDE = ("importance", "steps", "global_pruning", "schedule_epochs", "grad_batches")
_ADMM = ("admm_epochs", "admm_every", "admm_rho", "admm_rho_growth")
#: Prune-stage fields that only some methods read: another method with a value other than the
#: default is an error (a resolved recipe, which lists every field, still loads).
METHOD_FIELDS: dict[str, tuple[str, ...]] = {
    **{f: ("magnitude",) for f in (*_MAGNITUDE, "sparsity_reg", "sparse_epochs")},
    "hydra_form": ("hydra",),
    "score_epochs": ("hydra", "edge_popup"),
    "score_lr": ("hydra", "edge_popup"),
    **{f: ("admm",) for f in _ADMM},
    **{f: ("lottery",) for f in ("rounds", "round_epochs", "rewind_epoch", "reinit")},
    "finetune_epochs": ("magnitude", "hydra", "admm"),
    "ignore": ("magnitude", "hydra", "admm"),
    "round_to": ("magnitude",),
    "optimizer": ("magnitude", "hydra", "admm", "lottery"),
    "lr_schedule": ("magnitude", "hydra", "admm", "lottery"),
}


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
    norm = recipe.threat.norm
    for path, adversary in _adversaries(recipe):
        error = None if adversary.eps is None else eps_error(adversary.eps, norm)
        if error is not None:
            problems.append(((*path, "eps"), error))
    data = recipe.data
    if data.train_subset is not None and data.holdout >= data.train_subset:
        msg = f"holdout ({data.holdout}) must be smaller than train_subset ({data.train_subset})"
        problems.append((("data", "holdout"), msg))
    for i, stage in enumerate(recipe.stages):
        problems.extend(_stage_problems(("stages", i, stage.kind), stage, norm))
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
    if stage.kind == "prune" and stage.schedule_epochs > stage.finetune_epochs:
        msg = (
            f"schedule_epochs ({stage.schedule_epochs}) cannot exceed finetune_epochs "
            f"({stage.finetune_epochs}): the pruning steps are spread over fine-tuning epochs"
        )
        problems.append(((*path, "schedule_epochs"), msg))
    if stage.kind == "prune":
        problems.extend(_prune_problems(path, stage))
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


def _prune_problems(path: Path, stage: Any) -> list[Problem]:
    problems: list[Problem] = []
    for name in sorted(stage.model_fields_set & METHOD_FIELDS.keys()):
        default = type(stage).model_fields[name].get_default(call_default_factory=True)
        if stage.method not in METHOD_FIELDS[name] and getattr(stage, name) != default:
            users = " or ".join(METHOD_FIELDS[name])
            msg = f"used by method {users} only; remove it or set method: {METHOD_FIELDS[name][0]}"
            problems.append(((*path, name), msg))
    if (stage.sparse_epochs > 0) != (stage.sparsity_reg > 0):
        msg = "sparse training needs both sparse_epochs >= 1 and sparsity_reg > 0 (e.g. 1e-4)"
        problems.append(((*path, "sparse_epochs"), msg))
    if stage.method == "hydra" and stage.hydra_form == "unstructured" and stage.ignore:
        msg = "hydra_form unstructured scores every layer but the head; ignore is not supported"
        problems.append(((*path, "ignore"), msg))
    if stage.sparse_epochs > 0 and stage.importance not in ("l1", "l2", "lamp"):
        msg = "sparse training ranks channels by weight magnitude: use l1, l2 or lamp"
        problems.append(((*path, "importance"), msg))
    if stage.method == "admm" and stage.admm_every > stage.admm_epochs:
        msg = f"admm_every ({stage.admm_every}) cannot exceed admm_epochs ({stage.admm_epochs})"
        problems.append(((*path, "admm_every"), msg))
    if stage.method == "lottery" and stage.rewind_epoch >= stage.round_epochs:
        msg = (
            f"rewind_epoch ({stage.rewind_epoch}) must be smaller than round_epochs "
            f"({stage.round_epochs}): it names an epoch of the first round"
        )
        problems.append(((*path, "rewind_epoch"), msg))
    return problems


def resolve_adversaries(recipe: Recipe) -> None:
    """Fill in every adversary of ``recipe`` in place (see :class:`Recipe`).

    A train stage without an adversary gets the one its method implies (``fgsm_rs``: FGSM
    with a random start; ``pgd`` and ``trades``: PGD; ``natural``: none). Then every
    adversary's ``eps`` defaults to the threat's ``eps`` and its ``step`` to the attack's
    usual step (:func:`robust_compress.threat.default_step`).
    """
    from robust_compress.attacks.configs import AdversaryConfig

    eps = recipe.threat.eps
    for stage in recipe.stages:
        if stage.kind == "train" and stage.adversary is None and stage.method != "natural":
            attack = "fgsm_rs" if stage.method == "fgsm_rs" else "pgd"
            stage.adversary = AdversaryConfig(attack=attack)
        adversary = getattr(stage, "adversary", None)
        if adversary is not None:
            stage.adversary = adversary.resolved(eps)
