"""Config classes of the ``sensitivity`` and ``search`` stages.

Both measure robust accuracy on the validation split (``data.holdout``: images held out from
the training data, never the test set) with ``val_attack`` (default PGD-10 at the threat's eps).
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

from pydantic import Field, field_validator
from pydantic_core import PydanticCustomError

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import BaseStage, LrSchedule, OptimizerConfig, Pattern, registered
from robust_compress.training.distill import DistillConfig

Ratio = Annotated[float, Field(gt=0, lt=1)]
Bits = Annotated[int, Field(ge=2, le=8)]
Objective = Literal["macs", "params", "onnx_bytes", "latency"]


def _default_val_attack() -> AdversaryConfig:
    return AdversaryConfig.model_validate({"attack": "pgd", "steps": 10})


class _Measures(BaseStage):
    """What the sensitivity and search stages share: the validation attack and the layers.

    ``bn_batches`` training batches, attacked with ``val_attack``, re-estimate a pruned copy's
    BatchNorm statistics before it is measured (0: measure it as pruned).
    """

    val_attack: AdversaryConfig = Field(default_factory=_default_val_attack)
    val_samples: int = Field(1000, ge=1)
    ratios: list[Ratio] = Field(default_factory=lambda: [0.25, 0.5, 0.75, 0.9], min_length=1)
    bits: list[Bits] = Field(default_factory=lambda: [8, 4, 2])
    importance: str = "l1"
    ignore: list[Pattern] = Field(default_factory=list)
    bn_batches: int = Field(10, ge=0)

    @field_validator("importance")
    @classmethod
    def _known_importance(cls, name: str) -> str:
        from robust_compress.pruning.registry import IMPORTANCE

        name = registered(IMPORTANCE, name)
        if IMPORTANCE.entry(name).meta.get("gradients"):
            plain = [e.name for e in IMPORTANCE.entries() if not e.meta.get("gradients")]
            msg = f"the search ranks channels without gradients: use one of {', '.join(plain)}"
            raise PydanticCustomError("importance", "{message}", {"message": msg})
        return name


class SensitivityStage(_Measures):
    """Robust sensitivity: the robust-accuracy drop when only one layer is compressed."""

    kind: ClassVar[str] = "sensitivity"


class SearchStage(_Measures):
    """The smallest model within a robust-accuracy budget: per-layer ratios and bit widths.

    Attributes:
        max_robust_drop: Budget, in points of validation robust accuracy against the model
            the stage starts from.
        objective: What the search makes small (``latency`` is ONNX Runtime's median at
            ``latency_batch``).
        target: The objective's fraction of the start that the last step aims at (the
            largest compression allowed).
        steps: Pruning steps from the start to ``target`` (geometric in the objective).
        max_layer_ratio: No group loses a larger fraction of its channels.
        finetune_epochs: Adversarial fine-tuning epochs after each step.
        retries: Steps over budget retried with a smaller step (halfway, geometrically,
            between the last accepted figure and the failed aim) before the search stops.
        max_bits_drop: A layer gets the fewest bits of ``bits`` whose drop, alone, is at most
            this many points (the following quantize stage uses them); ``bits: []`` keeps the
            quantize stage's own.
    """

    kind: ClassVar[str] = "search"
    max_robust_drop: float = Field(ge=0)
    objective: Objective = "macs"
    latency_batch: int = Field(1, ge=1)
    target: float = Field(0.1, gt=0, lt=1)
    steps: int = Field(4, ge=1)
    max_layer_ratio: float = Field(0.95, gt=0, lt=1)
    finetune_epochs: int = Field(1, ge=0)
    retries: int = Field(2, ge=0)
    max_bits_drop: float = Field(0.5, ge=0)
    adversary: AdversaryConfig | None = None
    distill: DistillConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=lambda: OptimizerConfig(lr=0.05))
    lr_schedule: LrSchedule = "cosine"
