"""Config classes of the prune stage: a family base, and one member per prune method.

A recipe's ``- prune: {...}`` block validates into the member registered for its ``method``
in :data:`~robust_compress.pruning.registry.PRUNE_METHODS` (:mod:`robust_compress.config`
explains the dispatch), so it accepts only the fields that method reads: a field of another
method is an unknown key. Each member states the rules across its own fields in
:meth:`PruneStage.problems`, which the recipe loader reports at the offending value.
"""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, field_validator

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import (
    BaseStage,
    Dispatching,
    LrSchedule,
    OptimizerConfig,
    Pattern,
    family_base,
    registered,
)
from robust_compress.pruning.registry import IMPORTANCE, PRUNE_METHODS, importance_fact
from robust_compress.registry import Registry
from robust_compress.training.distill import DistillConfig

#: (path inside the stage block, message) pairs; see :meth:`PruneStage.problems`.
Problems = list[tuple[tuple[str | int, ...], str]]


@family_base
class PruneStage(BaseStage, Dispatching):
    """Pruning by one of the methods of docs/methods.md, with (adversarial) fine-tuning.

    ``method`` names the member class that holds the method's own fields (default
    ``magnitude``); the fields here are those every method reads.
    """

    kind: ClassVar[str] = "prune"
    dispatch_key: ClassVar[str] = "method"
    dispatch_default: ClassVar[str | None] = "magnitude"
    method: str = "magnitude"
    ratio: float = Field(gt=0, lt=1)
    adversary: AdversaryConfig | None = None
    distill: DistillConfig | None = None

    @classmethod
    def registry(cls) -> Registry:
        """The prune-method registry."""
        return PRUNE_METHODS

    def problems(self) -> Problems:
        """Problems across this block's fields, as (path in the block, message) pairs.

        Returns:
            Empty when the fields agree; the recipe loader reports each pair at its value.
        """
        return []


def _either(names: list[str]) -> str:
    return names[0] if len(names) == 1 else f"{', '.join(names[:-1])} or {names[-1]}"


class _TrainsWeights(PruneStage):
    """Fields of the methods that train the weights in the stage (not a method itself)."""

    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    lr_schedule: LrSchedule = "cosine"


class _RemovesChannels(_TrainsWeights):
    """Fields of the methods that remove whole channels, then fine-tune (not a method itself)."""

    ignore: list[Pattern] = Field(default_factory=list)
    finetune_epochs: int = Field(0, ge=0)


class MagnitudePrune(_RemovesChannels):
    """``magnitude``: remove the channels an importance criterion ranks lowest (Torch-Pruning).

    One-shot, or in ``steps`` steps spread over ``schedule_epochs`` fine-tuning epochs; with
    ``sparse_epochs`` the model is first trained with a group-norm penalty (sparse training).
    """

    method: Literal["magnitude"] = "magnitude"
    importance: str = "l1"
    steps: int = Field(1, ge=1)
    global_pruning: bool = False
    round_to: int | None = Field(None, ge=1)
    schedule_epochs: int = Field(0, ge=0)
    grad_batches: int = Field(4, ge=1)
    sparsity_reg: float = Field(0.0, ge=0)
    sparse_epochs: int = Field(0, ge=0)

    @field_validator("importance")
    @classmethod
    def _known_importance(cls, name: str) -> str:
        return registered(IMPORTANCE, name)

    def problems(self) -> Problems:
        """The schedule fits the fine-tuning; sparse training has its penalty and criterion."""
        found: Problems = []
        if self.schedule_epochs > self.finetune_epochs:
            msg = (
                f"schedule_epochs ({self.schedule_epochs}) cannot exceed finetune_epochs "
                f"({self.finetune_epochs}): the pruning steps are spread over fine-tuning epochs"
            )
            found.append((("schedule_epochs",), msg))
        if (self.sparse_epochs > 0) != (self.sparsity_reg > 0):
            msg = "sparse training needs both sparse_epochs >= 1 and sparsity_reg > 0 (e.g. 1e-4)"
            found.append((("sparse_epochs",), msg))
        if self.sparse_epochs > 0 and not importance_fact(self.importance, "magnitude"):
            names = [e.name for e in IMPORTANCE.entries() if e.meta.get("magnitude")]
            msg = f"sparse training ranks channels by weight magnitude: use {_either(names)}"
            found.append((("importance",), msg))
        return found


class HydraPrune(_RemovesChannels):
    """``hydra``: learn scores under attack (weights frozen), prune by them, fine-tune.

    ``score_bn`` trains the BatchNorm scales and shifts with the scores, as HYDRA's official
    code does (default); false keeps them frozen too.
    """

    method: Literal["hydra"] = "hydra"
    hydra_form: Literal["structured", "unstructured"] = "structured"
    score_epochs: int = Field(1, ge=0)
    score_lr: float = Field(0.1, gt=0)
    score_bn: bool = True

    def problems(self) -> Problems:
        """The unstructured form scores every layer but the head, so it takes no ``ignore``."""
        if self.hydra_form == "unstructured" and self.ignore:
            msg = "hydra_form unstructured scores every layer but the head; ignore is not supported"
            return [(("ignore",), msg)]
        return []


class AdmmPrune(_RemovesChannels):
    """``admm``: ADMM epochs under attack towards filter sparsity, the prune, retraining."""

    method: Literal["admm"] = "admm"
    admm_epochs: int = Field(2, ge=1)
    admm_every: int = Field(1, ge=1)
    admm_rho: float = Field(0.01, gt=0)
    admm_rho_growth: float = Field(1.5, ge=1)

    def problems(self) -> Problems:
        """The Z/U updates fall inside the ADMM epochs."""
        if self.admm_every > self.admm_epochs:
            msg = f"admm_every ({self.admm_every}) cannot exceed admm_epochs ({self.admm_epochs})"
            return [(("admm_every",), msg)]
        return []


class LotteryPrune(_TrainsWeights):
    """``lottery``: rounds of training under attack, magnitude pruning and rewinding."""

    method: Literal["lottery"] = "lottery"
    rounds: int = Field(2, ge=1)
    round_epochs: int = Field(1, ge=1)
    rewind_epoch: int = Field(0, ge=0)
    reinit: bool = False

    def problems(self) -> Problems:
        """The rewind point is an epoch of the first round."""
        if self.rewind_epoch >= self.round_epochs:
            msg = (
                f"rewind_epoch ({self.rewind_epoch}) must be smaller than round_epochs "
                f"({self.round_epochs}): it names an epoch of the first round"
            )
            return [(("rewind_epoch",), msg)]
        return []


class EdgePopupPrune(PruneStage):
    """``edge_popup``: frozen random weights; only the scores of a subnetwork are learned."""

    method: Literal["edge_popup"] = "edge_popup"
    score_epochs: int = Field(1, ge=0)
    score_lr: float = Field(0.1, gt=0)
