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

from robust_compress.attacks.registry import ATTACKS, AttackContext, audit_order, meta
from robust_compress.devices import model_device
from robust_compress.errors import UserError, suggest

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AttackBudget:
    """Threat model and budgets shared by every attack of one audit (every default resolved).

    ``strength`` names the profile the budgets came from (``default`` or ``autoattack``).
    """

    eps: float
    norm: str
    pgd_steps: int
    pgd_restarts: int
    apgd_steps: int
    apgd_targets: int
    square_queries: int
    batch_size: int
    seed: int
    num_classes: int
    strength: str


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
        out = torch.zeros(len(y), dtype=torch.bool, device="cpu")
        with torch.no_grad():
            for i in range(0, len(y), batch_size):
                logits = self.predict(x[i : i + batch_size])
                out[i : i + batch_size] = logits.argmax(1) == y[i : i + batch_size]
        return out

    def source(self, attack: str) -> str | None:
        """Where ``attack``'s figure comes from, or None when it cannot run on this target."""
        black_box = not meta(attack, "gradient", True)
        if self.kind == "torch":
            return "black-box torch" if black_box else "white-box torch"
        if black_box:
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
    device = model_device(model)

    def predict(x: Tensor) -> Tensor:  # images on the CPU in, logits on the CPU out
        return model(x.to(device)).cpu()

    return Target("torch", predict, model)


def ordered_attacks(attacks) -> list[str]:
    """Validate attack names; return them once each, in the order the audit runs them.

    Raises:
        UserError: An unknown attack name or an empty list.
    """
    names = [attacks] if isinstance(attacks, str) else list(attacks)
    if not names:
        raise UserError("the audit needs at least one attack; e.g. --attacks pgd,square.")
    order = audit_order()
    for name in names:
        if name not in order:
            raise UserError(f"unknown audit attack {name!r}." + suggest(str(name), order))
    return [name for name in order if name in names]


def attack_seed(seed: int, name: str, salt: int = 0) -> int:
    """A seed for one attack run, fixed by the audit seed, the attack and a salt."""
    state = np.random.SeedSequence([seed, audit_order().index(name), salt]).generate_state(1)
    return int(state[0] % 2**31)


def audit_config(name: str, budget: AttackBudget, eps: float | None = None, **override):
    """The config attack ``name`` runs with in this audit (``override``: steps, queries)."""
    eps = budget.eps if eps is None else eps
    return ATTACKS.entry(name).config.for_audit(name, budget, eps, **override)


def settings(name: str, budget: AttackBudget) -> dict:
    """The budget one attack runs with, as plain data (for reports)."""
    return audit_config(name, budget).report_settings()


def craft(
    target: Target,
    cfg,
    x: Tensor,
    y: Tensor,
    budget: AttackBudget,
    salt: int = 0,
    on_chunk: Callable[[int], None] | None = None,
) -> Tensor:
    """Adversarial examples of the attack ``cfg`` describes against ``target``.

    Runs in chunks of ``budget.batch_size``. Gradient attacks run on ``target.twin``;
    score-based ones query ``target.predict`` for an ONNX target (the session itself) and the
    twin otherwise. ``cfg`` comes from :func:`audit_config`.
    """
    name = cfg.attack
    if meta(name, "gradient", True) and target.twin is None:  # pragma: no cover - skipped
        raise UserError(f"{name} needs a torch model to take gradients from.")
    context = AttackContext(
        norm=budget.norm,
        seed=attack_seed(budget.seed, name, salt),
        num_classes=budget.num_classes,
        batch_size=budget.batch_size,
    )
    adversary = ATTACKS.get(name)(cfg, context)
    black_box = not meta(name, "gradient", True)
    scored = target.predict if black_box and target.kind == "onnx" else target.twin
    out = torch.empty_like(x)
    for i in range(0, len(x), budget.batch_size):
        chunk = slice(i, i + budget.batch_size)
        xs, ys = x[chunk], y[chunk]
        if isinstance(scored, nn.Module):  # the audit keeps its images on the CPU
            device = model_device(scored)
            xs, ys = xs.to(device), ys.to(device)
        try:
            out[chunk] = adversary.perturb(scored, xs, ys).to(out.device)
        except ValueError as exc:  # ART rejects some models, e.g. probability outputs
            raise UserError(f"the {name} attack cannot run on this model: {exc}") from None
        if on_chunk:
            on_chunk(min(i + budget.batch_size, len(x)))
    return out


def max_perturbation(x_adv: Tensor, x: Tensor, norm: str) -> float:
    """Largest distance of an adversarial example from its original under ``norm``."""
    if len(x) == 0:
        return 0.0
    delta = (x_adv - x).flatten(1)
    sizes = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1)
    return float(sizes.max())
