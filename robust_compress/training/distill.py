"""Robust distillation: the dense robust model teaches its compressed copy (ARD / RSLAD style).

The student is attacked (its own adversarial examples, from the stage's adversary); the
teacher, frozen, gives soft labels on the *clean* inputs. The loss on a batch is::

    (1 - weight) * CE(student(x_adv), y) + weight * T^2 * KL(teacher(x) / T || student(x_adv) / T)

``weight: 0`` is plain adversarial fine-tuning. Goldblum et al. 2020 (ARD) and Zi et al. 2021
(RSLAD) distil a robust teacher this way; the student's examples and the teacher's clean soft
labels are the parts both share.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from pydantic import BaseModel, Field
from torch import Tensor, nn

from robust_compress.config import STRICT


class DistillConfig(BaseModel):
    """``distill:`` of a prune, quantize or search stage.

    Attributes:
        weight: Share of the distillation term in the loss, in [0, 1]; 0 turns it off.
        temperature: Softmax temperature of both models' outputs in the KL term.
    """

    model_config = STRICT
    weight: float = Field(0.5, ge=0, le=1)
    temperature: float = Field(1.0, gt=0)


@dataclass
class Distill:
    """A training loss: the student's adversarial examples, the teacher's clean soft labels.

    It is also an adversary (``perturb`` is the inner adversary's), so pruning criteria that
    attack the model keep working when a stage distils.

    Attributes:
        adversary: Attacks the student: anything with ``perturb(model, x, y)``.
        teacher: The dense robust model (frozen; kept in eval mode).
        weight: Share of the KL term (see the module docstring).
        temperature: Softmax temperature.
    """

    adversary: object
    teacher: nn.Module
    weight: float = 0.5
    temperature: float = 1.0

    def __post_init__(self) -> None:
        self.teacher.eval()
        for p in self.teacher.parameters():
            p.requires_grad_(False)

    def perturb(self, model: nn.Module, x: Tensor, y: Tensor) -> Tensor:
        """The inner adversary's examples for ``model``."""
        return self.adversary.perturb(model, x, y)

    def loss(
        self, model: nn.Module, x: Tensor, y: Tensor, attack_model: nn.Module | None = None
    ) -> Tensor:
        """The distillation loss of ``model`` (in train mode) on the batch ``(x, y)``."""
        x_adv = self.perturb(model if attack_model is None else attack_model, x, y)
        with torch.no_grad():
            soft = F.softmax(self.teacher(x) / self.temperature, dim=1)
        logits = model(x_adv)
        t = self.temperature
        kl = F.kl_div(F.log_softmax(logits / t, dim=1), soft, reduction="batchmean")
        return (1 - self.weight) * F.cross_entropy(logits, y) + self.weight * t * t * kl


def distilled(stage, adversary, teacher: Callable[[], nn.Module]):
    """``adversary`` inside the stage's distillation loss when its ``distill`` asks for one.

    Args:
        stage: A stage config (its ``distill`` block, if it has one).
        adversary: The stage's adversary, or None.
        teacher: Builds the teacher (called only when the stage distils).
    """
    cfg = getattr(stage, "distill", None)
    if adversary is None or cfg is None or cfg.weight == 0:
        return adversary
    return Distill(adversary, teacher(), cfg.weight, cfg.temperature)
