"""Config classes of the prune stage's methods."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import BaseStage, LrSchedule, OptimizerConfig, Pattern


class PruneStage(BaseStage):
    """Pruning by one of the methods of docs/methods.md, with (adversarial) fine-tuning.

    Fields that only one method reads are refused with another method (see
    :data:`robust_compress.recipe.rules.METHOD_FIELDS`).
    """

    kind: ClassVar[str] = "prune"
    method: Literal["magnitude", "hydra", "admm", "lottery", "edge_popup"] = "magnitude"
    importance: Literal["l1", "l2", "taylor", "robust_taylor", "bn_scale", "lamp", "random"] = "l1"
    ratio: float = Field(gt=0, lt=1)
    steps: int = Field(1, ge=1)
    global_pruning: bool = False
    ignore: list[Pattern] = Field(default_factory=list)
    round_to: int | None = Field(None, ge=1)
    schedule_epochs: int = Field(0, ge=0)
    finetune_epochs: int = Field(0, ge=0)
    adversary: AdversaryConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: LrSchedule = "cosine"
    grad_batches: int = Field(4, ge=1)
    hydra_form: Literal["structured", "unstructured"] = "structured"
    score_epochs: int = Field(1, ge=0)
    score_lr: float = Field(0.1, gt=0)
    sparsity_reg: float = Field(0.0, ge=0)
    sparse_epochs: int = Field(0, ge=0)
    admm_epochs: int = Field(2, ge=1)
    admm_every: int = Field(1, ge=1)
    admm_rho: float = Field(0.01, gt=0)
    admm_rho_growth: float = Field(1.5, ge=1)
    rounds: int = Field(2, ge=1)
    round_epochs: int = Field(1, ge=1)
    rewind_epoch: int = Field(0, ge=0)
    reinit: bool = False
