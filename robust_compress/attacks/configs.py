"""Config classes of the attacks a recipe names (the adversary blocks of its stages)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from robust_compress.config import STRICT
from robust_compress.threat import default_step

AttackName = Literal["fgsm", "fgsm_rs", "pgd", "apgd_ce", "apgd_dlr"]


class AdversaryConfig(BaseModel):
    """The attack that makes adversarial examples during training or fine-tuning."""

    model_config = STRICT
    attack: AttackName = "pgd"
    steps: int = Field(7, ge=1)
    step: float | None = Field(None, gt=0)
    restarts: int = Field(1, ge=1)
    eps: float | None = Field(None, gt=0)
    backend: Literal["torch", "art"] = "torch"

    def resolved(self, eps: float) -> AdversaryConfig:
        """Return a copy with ``eps`` and ``step`` filled in from the threat's ``eps``."""
        eps = self.eps if self.eps is not None else eps
        steps = self.steps
        if self.attack in ("fgsm", "fgsm_rs") and "steps" not in self.model_fields_set:
            steps = 1
        step = self.step if self.step is not None else default_step(self.attack, eps, steps)
        return self.model_copy(update={"eps": eps, "step": step, "steps": steps})
