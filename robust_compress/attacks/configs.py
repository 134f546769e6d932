"""Config classes of the attacks: one per attack, chosen by its ``attack`` field.

A recipe's adversary block (``adversary: {attack: pgd, steps: 3}``) validates into the
member registered for its ``attack`` (:data:`~robust_compress.attacks.registry.ATTACKS`), so it
accepts only that attack's fields. ``eps`` (and the step) default to the threat's; the recipe
loader fills them in (:meth:`AdversaryConfig.resolved`).
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field

from robust_compress.config import Dispatching, family_base
from robust_compress.registry import Registry
from robust_compress.threat import default_step

Backend = Literal["torch", "art"]


@family_base
class AdversaryConfig(Dispatching):
    """An attack and its settings; ``attack`` names it (default ``pgd``)."""

    dispatch_key: ClassVar[str] = "attack"
    dispatch_default: ClassVar[str | None] = "pgd"
    attack: str = "pgd"
    eps: float | None = Field(None, gt=0)

    @classmethod
    def registry(cls) -> Registry:
        """The attack registry."""
        from robust_compress.attacks.registry import ATTACKS

        return ATTACKS

    def resolved(self, eps: float) -> AdversaryConfig:
        """A copy with ``eps`` (the threat's unless set) and the attack's default step."""
        eps = self.eps if self.eps is not None else eps
        return self.model_copy(update={"eps": eps, **self._filled(eps)})

    def _filled(self, eps: float) -> dict[str, Any]:
        step = getattr(self, "step", "absent")
        if step is None:
            return {"step": default_step(self.attack, eps, getattr(self, "steps", 1))}
        return {}

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """The settings the audit runs this attack with (from its :class:`AttackBudget`).

        ``override`` may set ``steps`` or ``queries`` (the audit's sanity checks do).
        """
        return cls.model_validate({"attack": name, "eps": eps})

    def report_settings(self) -> dict[str, Any]:
        """The budget this attack ran with, for reports."""
        return {}


class FgsmConfig(AdversaryConfig):
    """FGSM: one signed-gradient step of size eps from the clean input."""

    attack: Literal["fgsm"] = "fgsm"
    backend: Backend = "torch"

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """FGSM through ART."""
        return cls(eps=eps, backend="art")


class FgsmRsConfig(AdversaryConfig):
    """FGSM with a random start and one step (1.25 eps by default; Wong et al. 2020)."""

    attack: Literal["fgsm_rs"] = "fgsm_rs"
    step: float | None = Field(None, gt=0)
    restarts: int = Field(1, ge=1)
    backend: Backend = "torch"

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """FGSM-RS with the audit's ``pgd_restarts``, through ART."""
        return cls(eps=eps, restarts=budget.pgd_restarts, backend="art")


class PgdConfig(AdversaryConfig):
    """PGD: random start, ``steps`` signed steps of ``step`` (2.5 eps / steps by default)."""

    attack: Literal["pgd"] = "pgd"
    steps: int = Field(7, ge=1)
    step: float | None = Field(None, gt=0)
    restarts: int = Field(1, ge=1)
    backend: Backend = "torch"

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """PGD with the audit's ``pgd_steps`` and ``pgd_restarts``, through ART."""
        steps = override.get("steps") or budget.pgd_steps
        return cls(eps=eps, steps=steps, restarts=budget.pgd_restarts, backend="art")

    def report_settings(self) -> dict[str, Any]:
        """Steps, restarts and step size."""
        step = self.step if self.step is not None else default_step("pgd", self.eps, self.steps)
        return {"steps": self.steps, "restarts": self.restarts, "step": step}


class ApgdConfig(AdversaryConfig):
    """Auto-PGD (Croce & Hein 2020) on the CE or the DLR loss, through ART."""

    attack: Literal["apgd_ce", "apgd_dlr"] = "apgd_ce"
    steps: int = Field(7, ge=1)
    step: float | None = Field(None, gt=0)
    restarts: int = Field(1, ge=1)
    backend: Literal["art"] = "art"

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """APGD with the audit's ``apgd_steps`` and ``pgd_restarts``."""
        steps = override.get("steps") or budget.apgd_steps
        return cls(attack=name, eps=eps, steps=steps, restarts=budget.pgd_restarts)

    def report_settings(self) -> dict[str, Any]:
        """Steps and restarts."""
        return {"steps": self.steps, "restarts": self.restarts}


class ApgdTargetedConfig(AdversaryConfig):
    """Targeted APGD on the targeted DLR loss against the top ``targets`` classes (APGD-T).

    AutoAttack's APGD-T (Croce & Hein 2020) in plain PyTorch: one run of ``steps`` iterations
    per target class and restart, the targets being the classes with the highest clean logits
    other than the true one. The defaults are AutoAttack's standard budget.
    """

    attack: Literal["apgd_t"] = "apgd_t"
    steps: int = Field(100, ge=1)
    restarts: int = Field(1, ge=1)
    targets: int = Field(9, ge=1)

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """APGD-T with the audit's ``apgd_steps``, ``apgd_targets`` and ``pgd_restarts``."""
        steps = override.get("steps") or budget.apgd_steps
        return cls(eps=eps, steps=steps, restarts=budget.pgd_restarts, targets=budget.apgd_targets)

    def report_settings(self) -> dict[str, Any]:
        """Steps, restarts and target classes."""
        return {"steps": self.steps, "restarts": self.restarts, "targets": self.targets}


class SquareConfig(AdversaryConfig):
    """Square (Andriushchenko et al. 2020): score-based, no gradients, ``queries`` per example."""

    attack: Literal["square"] = "square"
    queries: int = Field(1000, ge=1)
    restarts: int = Field(1, ge=1)
    backend: Literal["art"] = "art"

    @classmethod
    def for_audit(cls, name: str, budget: Any, eps: float, **override: Any) -> AdversaryConfig:
        """Square with the audit's ``square_queries``."""
        return cls(eps=eps, queries=override.get("queries") or budget.square_queries)

    def report_settings(self) -> dict[str, Any]:
        """Queries per example."""
        return {"queries": self.queries}
