"""Config classes of the train, export and audit stages (the base is :class:`BaseStage`)."""

from __future__ import annotations

from typing import Annotated, Any, ClassVar, Literal

from pydantic import AfterValidator, BeforeValidator, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.audit.corruption_audit import CorruptionConfig
from robust_compress.audit.profiles import DEFAULT_ATTACKS
from robust_compress.audit.smoothing import SmoothingConfig
from robust_compress.config import BaseStage, LrSchedule, OptimizerConfig
from robust_compress.errors import suggest


def _int8_mode(value: Any) -> Any:
    if not isinstance(value, bool) and value != "auto":
        raise PydanticCustomError("int8_mode", "expected true, false or 'auto'")
    return value


def _audit_attack(name: str) -> str:
    from robust_compress.attacks.registry import audit_order

    if name not in audit_order():
        msg = f"unknown audit attack {name!r}." + suggest(name, audit_order())
        raise PydanticCustomError("unknown_name", "{message}", {"message": msg})
    return name


AuditAttack = Annotated[str, AfterValidator(_audit_attack)]
"""An attack the audit can run (registered in :data:`~robust_compress.attacks.registry.ATTACKS`)."""

Int8Mode = Annotated[
    bool | Literal["auto"],
    BeforeValidator(_int8_mode),
    WithJsonSchema({"enum": [True, False, "auto"]}),
]


class TrainStage(BaseStage):
    """(Adversarial) training: natural, FGSM-RS, PGD or TRADES."""

    kind: ClassVar[str] = "train"
    method: Literal["natural", "fgsm_rs", "pgd", "trades"] = "pgd"
    epochs: int = Field(ge=0)
    adversary: AdversaryConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: LrSchedule = "onecycle"
    trades_beta: float = Field(6.0, gt=0)


class ExportStage(BaseStage):
    """ONNX export of the fp32 (pruned) model and/or the int8 model."""

    kind: ClassVar[str] = "export"
    fp32: bool = True
    int8: Int8Mode = "auto"


class AuditStage(BaseStage):
    """The adversarial audit: an attack ensemble with sanity checks.

    ``strength`` (``default`` or ``autoattack``) fills the budgets left null: ``pgd_restarts``,
    ``apgd_steps``, ``apgd_targets`` and ``square_queries`` (see docs/audit.md).
    """

    kind: ClassVar[str] = "audit"
    attacks: list[AuditAttack] = Field(default_factory=lambda: list(DEFAULT_ATTACKS), min_length=1)
    strength: Literal["default", "autoattack"] = "default"
    samples: int = Field(1000, gt=0)
    pgd_steps: int = Field(20, ge=1)
    pgd_restarts: int | None = Field(None, ge=1)
    apgd_steps: int | None = Field(None, ge=1)
    apgd_targets: int | None = Field(None, ge=1)
    square_queries: int | None = Field(None, ge=1)
    onnx: bool = True
    eps_sweep: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    sanity_checks: bool = True
    batch_size: int = Field(500, ge=1)
    dense: bool = True
    corruptions: CorruptionConfig | None = None
    smoothing: SmoothingConfig | None = None
