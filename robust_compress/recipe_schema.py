"""The pydantic schema of a recipe (see docs/recipes.md for the reference).

Every model forbids unknown keys and is strict: a YAML string is not silently read as a
number. A stage item in YAML is a mapping with one key naming its kind (``- prune: {...}``);
the stage classes unwrap that key themselves, so an error in a stage is located at
``stages.N.KIND.FIELD``, the path of the offending value in the file.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from robust_compress.errors import suggest
from robust_compress.recipe_rules import resolve_adversaries, rule_problems
from robust_compress.threat import default_step, eps_error

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
MODEL_PREFIXES = ("builtin", "torchvision", "py")
AuditAttack = Literal["fgsm", "pgd", "apgd_ce", "apgd_dlr", "square"]
AttackName = Literal["fgsm", "fgsm_rs", "pgd", "apgd_ce", "apgd_dlr"]
LrSchedule = Literal["onecycle", "cosine", "constant"]


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise PydanticCustomError("scalar_type", "expected a string, number, boolean or null")
    return value


def _int8_mode(value: Any) -> Any:
    if not isinstance(value, bool) and value != "auto":
        raise PydanticCustomError("int8_mode", "expected true, false or 'auto'")
    return value


def _check_pattern(pattern: str) -> str:
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except (re.error, RecursionError, OverflowError) as exc:
            msg = " ".join(f"invalid regular expression {pattern!r}: {exc}".split())
            raise PydanticCustomError("regex", "{message}", {"message": msg}) from None
    return pattern


Pattern = Annotated[str, AfterValidator(_check_pattern)]
Scalar = Annotated[
    Any,
    BeforeValidator(_scalar),
    WithJsonSchema({"type": ["string", "number", "integer", "boolean", "null"]}),
]
Int8Mode = Annotated[
    bool | Literal["auto"],
    BeforeValidator(_int8_mode),
    WithJsonSchema({"enum": [True, False, "auto"]}),
]


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


class OptimizerConfig(BaseModel):
    """An optimizer; ``lr`` defaults to 0.1 for SGD and 0.001 for Adam."""

    model_config = STRICT
    name: Literal["sgd", "adam"] = "sgd"
    lr: float = Field(0.1, gt=0)
    momentum: float = Field(0.9, ge=0, le=1)
    weight_decay: float = Field(5e-4, ge=0)

    @model_validator(mode="before")
    @classmethod
    def _default_lr(cls, data: Any) -> Any:
        if isinstance(data, dict) and "lr" not in data and data.get("name") == "adam":
            return {**data, "lr": 1e-3}
        return data


class ModelConfig(BaseModel):
    """Which model to start from."""

    model_config = STRICT
    spec: str
    weights: str | None = None

    @field_validator("spec")
    @classmethod
    def _check_spec(cls, spec: str) -> str:
        prefix, sep, rest = spec.partition(":")
        if not sep or not rest:
            raise PydanticCustomError(
                "model_spec", "expected builtin:NAME, torchvision:NAME or py:package.module:fn"
            )
        if prefix not in MODEL_PREFIXES:
            msg = f"unknown model spec prefix {prefix!r}." + suggest(prefix, MODEL_PREFIXES)
            raise PydanticCustomError("model_spec", "{message}", {"message": msg})
        if prefix == "py" and rest.count(":") != 1:
            raise PydanticCustomError("model_spec", "expected py:package.module:function")
        if prefix == "builtin":
            from robust_compress.models import BUILTINS

            if rest not in BUILTINS:
                msg = f"unknown builtin model {rest!r}." + suggest(rest, BUILTINS.names())
                raise PydanticCustomError("model_spec", "{message}", {"message": msg})
        return spec


class DataConfig(BaseModel):
    """The dataset and how it is batched."""

    model_config = STRICT
    name: str = "fashion-mnist"
    root: str | None = None
    batch_size: int = Field(128, gt=0)
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    holdout: int = Field(0, ge=0)
    download: bool = False

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        from robust_compress.data import DATASETS

        if name not in DATASETS:
            msg = f"unknown dataset {name!r}." + suggest(name, DATASETS.names())
            raise PydanticCustomError("dataset", "{message}", {"message": msg})
        return name


class ThreatConfig(BaseModel):
    """The threat model every robustness figure refers to (inputs in [0, 1])."""

    model_config = STRICT
    norm: Literal["linf", "l2"] = "linf"
    eps: float = Field(gt=0)

    @field_validator("eps")
    @classmethod
    def _check_linf(cls, eps: float, info: ValidationInfo) -> float:
        error = eps_error(eps, info.data.get("norm", "linf"))
        if error is not None:
            raise PydanticCustomError("eps_range", "{message}", {"message": error})
        return eps


class BaseStage(BaseModel):
    """Base of the stage classes; ``kind`` is the key that names the stage in YAML."""

    model_config = STRICT
    kind: ClassVar[str] = ""

    @model_validator(mode="before")
    @classmethod
    def _unwrap(cls, data: Any) -> Any:
        if isinstance(data, dict) and len(data) == 1 and cls.kind in data:
            inner = data[cls.kind]
            return {} if inner is None else inner
        return data


class TrainStage(BaseStage):
    """(Adversarial) training."""

    kind: ClassVar[str] = "train"
    method: Literal["natural", "fgsm_rs", "pgd", "trades"] = "pgd"
    epochs: int = Field(ge=0)
    adversary: AdversaryConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)
    schedule: LrSchedule = "onecycle"
    trades_beta: float = Field(6.0, gt=0)


class PruneStage(BaseStage):
    """Pruning by one of the methods of docs/methods.md, with (adversarial) fine-tuning.

    Fields that only one method reads are refused with another method (see
    :data:`robust_compress.recipe_rules.METHOD_FIELDS`).
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


class QuantizeStage(BaseStage):
    """Quantization: calibration, then optional quantization-aware (adversarial) training."""

    kind: ClassVar[str] = "quantize"
    weight_bits: int = Field(8, ge=2, le=8)
    act_bits: int = Field(8, ge=4, le=8)
    per_channel: bool = True
    calib_batches: int = Field(8, ge=1)
    bias_correction: bool = True
    vnni_only_full_range: bool = False
    pack_low_bits: bool = True
    qat_epochs: int = Field(0, ge=0)
    adversary: AdversaryConfig | None = None
    optimizer: OptimizerConfig = Field(default_factory=OptimizerConfig)


class ExportStage(BaseStage):
    """ONNX export of the fp32 (pruned) model and/or the int8 model."""

    kind: ClassVar[str] = "export"
    fp32: bool = True
    int8: Int8Mode = "auto"


class AuditStage(BaseStage):
    """The adversarial audit: an attack ensemble with sanity checks."""

    kind: ClassVar[str] = "audit"
    attacks: list[AuditAttack] = Field(
        default_factory=lambda: ["fgsm", "pgd", "apgd_ce", "apgd_dlr", "square"], min_length=1
    )
    samples: int = Field(1000, gt=0)
    pgd_steps: int = Field(20, ge=1)
    pgd_restarts: int = Field(1, ge=1)
    apgd_steps: int | None = Field(None, ge=1)
    square_queries: int = Field(300, ge=1)
    onnx: bool = False
    eps_sweep: list[Annotated[float, Field(gt=0)]] = Field(default_factory=list)
    sanity_checks: bool = True
    batch_size: int = Field(500, ge=1)
    dense: bool = True


STAGE_TYPES: dict[str, type[BaseStage]] = {
    cls.kind: cls for cls in (TrainStage, PruneStage, QuantizeStage, ExportStage, AuditStage)
}


def _stage_tag(value: Any) -> str | None:
    if isinstance(value, BaseStage):
        return value.kind
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if isinstance(key, str) else None
    return None


Stage = Annotated[
    Annotated[TrainStage, Tag("train")]
    | Annotated[PruneStage, Tag("prune")]
    | Annotated[QuantizeStage, Tag("quantize")]
    | Annotated[ExportStage, Tag("export")]
    | Annotated[AuditStage, Tag("audit")],
    Discriminator(_stage_tag),
]


class Recipe(BaseModel):
    """A whole recipe: what to compress, on which data, under which threat, in which stages.

    After validation, every adversary is resolved: a train stage without one gets the one its
    ``method`` implies, and each adversary's ``eps`` and ``step`` are filled in.
    """

    model_config = STRICT
    name: str = Field(min_length=1)
    seed: int = Field(0, ge=0, le=2**32 - 1)
    args: dict[str, Scalar] = Field(default_factory=dict)
    model: ModelConfig
    data: DataConfig = Field(default_factory=DataConfig)
    threat: ThreatConfig
    stages: list[Stage] = Field(min_length=1)

    @field_serializer("stages")
    def _wrap_stages(self, stages: list[BaseStage], info: Any) -> list[dict[str, Any]]:
        return [{s.kind: s.model_dump(mode=info.mode)} for s in stages]

    @model_validator(mode="after")
    def _check_and_resolve(self) -> Recipe:
        problems = rule_problems(self)
        if problems:
            text = "; ".join(f"{'.'.join(map(str, p))}: {m}" for p, m in problems)
            raise PydanticCustomError(
                "recipe_rules", "{text}", {"text": text, "problems": problems}
            )
        resolve_adversaries(self)
        return self
