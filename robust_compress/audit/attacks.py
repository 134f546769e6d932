"""The audit's targets and attack runs: what is attacked, with what, and where gradients come from.

A :class:`Target` is the model as audited: a live torch model (white-box), or an ONNX file run
by ONNX Runtime, optionally with a torch twin (the model it was exported from) to craft
transfer attacks on. Gradients are only ever taken from torch; ONNX Runtime is queried for
scores only (Square) and to evaluate adversarial examples crafted on the twin.

Attacks come from the ART adapter (:mod:`robust_compress.adapters.art.adversary`), imported
lazily so that the core imports nothing heavy.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn

from robust_compress.errors import UserError, suggest
from robust_compress.threat import default_step

log = logging.getLogger(__name__)

ORDER: tuple[str, ...] = ("fgsm", "fgsm_rs", "pgd", "apgd_ce", "apgd_dlr", "square")
"""Every attack the audit knows, in the order it runs them (cheap first)."""
ALONE: frozenset[str] = frozenset({"fgsm", "fgsm_rs", "pgd"})
"""Cheap attacks, run on every clean-correct example (their own figure is 'alone')."""
GRADIENT: frozenset[str] = frozenset(ORDER) - {"square"}
LABELS = {
    "fgsm": "FGSM",
    "fgsm_rs": "FGSM-RS",
    "pgd": "PGD",
    "apgd_ce": "APGD-CE",
    "apgd_dlr": "APGD-DLR",
    "square": "Square",
}


@dataclass(frozen=True)
class AttackBudget:
    """Threat model and budgets shared by every attack of one audit."""

    eps: float
    norm: str
    pgd_steps: int
    pgd_restarts: int
    apgd_steps: int
    square_queries: int
    batch_size: int
    seed: int
    num_classes: int


@dataclass
class Target:
    """The model under audit.

    Attributes:
        kind: ``torch`` (a live model, attacked white-box) or ``onnx`` (an ONNX file).
        predict: Images in [0, 1] -> logits, without autograd.
        twin: The torch model gradient attacks are crafted on (the model itself for
            ``torch``; the exported-from model for ``onnx``; None for an ONNX file alone).
        onnx_path: The ONNX file, for ``onnx``.
    """

    kind: str
    predict: Callable[[Tensor], Tensor]
    twin: nn.Module | None = None
    onnx_path: Path | None = None

    def correct(self, x: Tensor, y: Tensor, batch_size: int) -> Tensor:
        """Boolean tensor: which examples the target classifies correctly."""
        out = torch.zeros(len(y), dtype=torch.bool)
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                logits = self.predict(x[i : i + batch_size])
                out[i : i + batch_size] = logits.argmax(1) == y[i : i + batch_size]
        return out

    def source(self, attack: str) -> str | None:
        """Where ``attack``'s figure comes from, or None when it cannot run on this target."""
        if self.kind == "torch":
            return "black-box torch" if attack == "square" else "white-box torch"
        if attack == "square":
            return "black-box onnx"
        return "transfer torch->onnx" if self.twin is not None else None

    def describe(self) -> str:
        """One line naming the target, for reports."""
        if self.kind == "torch":
            return f"torch model {type(self.twin).__name__} (white-box)"
        twin = (
            f"torch twin {type(self.twin).__name__} for transfer attacks"
            if self.twin is not None
            else "no torch twin: black-box attacks only"
        )
        return f"ONNX file {self.onnx_path.name} run by ONNX Runtime (as deployed); {twin}"


def make_target(model: nn.Module | None, onnx_path: Path | None) -> Target:
    """The target of an audit: the ONNX file when given (``model`` is then its twin).

    Raises:
        UserError: Neither a model nor an ONNX file, or a model that is not an ``nn.Module``.
    """
    if model is not None and not isinstance(model, nn.Module):
        raise UserError(f"model must be a torch nn.Module, got {type(model).__name__}.")
    if onnx_path is not None:
        from robust_compress.adapters.onnxruntime.runtime import OrtPredictor

        threads = max(1, min(2, torch.get_num_threads()))
        return Target(
            "onnx", OrtPredictor(Path(onnx_path), threads=threads), model, Path(onnx_path)
        )
    if model is None:
        raise UserError("nothing to audit: give a torch model or an ONNX file (onnx_path).")
    model.eval()

    def predict(x: Tensor) -> Tensor:
        return model(x)

    return Target("torch", predict, model)


def ordered_attacks(attacks) -> list[str]:
    """Validate attack names; return them once each, in the order the audit runs them.

    Raises:
        UserError: An unknown attack name or an empty list.
    """
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    if not names:
        raise UserError("the audit needs at least one attack; e.g. --attacks pgd,square.")
    for name in names:
        if name not in ORDER:
            raise UserError(f"unknown audit attack {name!r}." + suggest(str(name), ORDER))
    return [name for name in ORDER if name in names]


def attack_seed(seed: int, name: str, salt: int = 0) -> int:
    """A seed for one attack run, fixed by the audit seed, the attack and a salt."""
    state = np.random.SeedSequence([seed, ORDER.index(name), salt]).generate_state(1)
    return int(state[0] % 2**31)


def settings(name: str, budget: AttackBudget, steps: int | None = None) -> dict:
    """The budget one attack runs with, as plain data (for reports)."""
    if name == "square":
        return {"queries": budget.square_queries}
    if name in ("fgsm", "fgsm_rs"):
        return {}
    if name == "pgd":
        steps = steps or budget.pgd_steps
        step = default_step("pgd", budget.eps, steps)
        return {"steps": steps, "restarts": budget.pgd_restarts, "step": step}
    return {"steps": budget.apgd_steps, "restarts": budget.pgd_restarts}


def craft(
    target: Target,
    name: str,
    x: Tensor,
    y: Tensor,
    budget: AttackBudget,
    *,
    eps: float | None = None,
    steps: int | None = None,
    queries: int | None = None,
    salt: int = 0,
    on_chunk: Callable[[int], None] | None = None,
) -> Tensor:
    """Adversarial examples of attack ``name`` against ``target`` (chunks of ``batch_size``).

    Gradient attacks run on ``target.twin``; Square queries ``target.predict`` (the ONNX
    session itself for an ONNX target). ``eps``, ``steps`` and ``queries`` override the budget.
    """
    eps = budget.eps if eps is None else eps
    seed = attack_seed(budget.seed, name, salt)
    run = _runner(target, name, budget, eps, steps, queries, seed)
    out = torch.empty_like(x)
    for k, i in enumerate(range(0, len(x), budget.batch_size)):
        try:
            out[i : i + budget.batch_size] = run(
                x[i : i + budget.batch_size], y[i : i + budget.batch_size], k
            )
        except ValueError as exc:  # ART rejects some models, e.g. probability outputs
            raise UserError(f"the {name} attack cannot run on this model: {exc}") from None
        if on_chunk:
            on_chunk(min(i + budget.batch_size, len(x)))
    return out


def _runner(target, name, budget, eps, steps, queries, seed) -> Callable:
    from robust_compress.adapters.art.adversary import ArtAdversary, black_box_attack

    queries = queries or budget.square_queries
    if name == "square" and budget.norm == "linf":
        from robust_compress.adapters.art.square import square_linf

        scored = target.predict if target.kind == "onnx" else target.twin

        def run_square(x: Tensor, y: Tensor, chunk: int) -> Tensor:
            return square_linf(
                scored, x, y, eps, queries, seed + chunk, budget.num_classes, budget.batch_size
            )

        return run_square
    if name == "square" and target.kind == "onnx":

        def run_blackbox(x: Tensor, y: Tensor, chunk: int) -> Tensor:
            return black_box_attack(
                target.predict, x, y, eps, budget.norm, queries, seed + chunk, budget.num_classes
            )

        return run_blackbox
    if target.twin is None:  # pragma: no cover - callers skip these
        raise UserError(f"{name} needs a torch model to take gradients from.")
    default_steps = budget.pgd_steps if name == "pgd" else budget.apgd_steps
    adversary = ArtAdversary(
        name,
        eps,
        norm=budget.norm,
        steps=steps or default_steps,
        restarts=1 if name in ("fgsm", "square") else budget.pgd_restarts,
        seed=seed,
        queries=queries,
        batch_size=budget.batch_size,
    )
    return lambda x, y, chunk: adversary.perturb(target.twin, x, y)


def max_perturbation(x_adv: Tensor, x: Tensor, norm: str) -> float:
    """Largest distance of an adversarial example from its original under ``norm``."""
    if len(x) == 0:
        return 0.0
    delta = (x_adv - x).flatten(1)
    sizes = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    return float(sizes.max())
