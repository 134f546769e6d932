"""The pydantic schema of a recipe (see docs/recipes.md for the reference).

Every model forbids unknown keys and is strict: a YAML string is not silently read as a
number. The stage blocks, adversary blocks, prune methods and quantizer backends are config
classes found through their registries (:mod:`robust_compress.config` explains the dispatch),
so a plugin's items are accepted like built-in ones.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    Field,
    SerializeAsAny,
    ValidationInfo,
    WithJsonSchema,
    field_serializer,
    field_validator,
    model_validator,
)
from pydantic_core import PydanticCustomError

from robust_compress.config import STRICT, BaseStage, registered
from robust_compress.data.configs import DataConfig
from robust_compress.devices import ComputeConfig, check_device_name
from robust_compress.errors import suggest
from robust_compress.recipe.rules import resolve_adversaries, rule_problems
from robust_compress.threat import eps_error
from robust_compress.tracking.configs import Tracking

MODEL_PREFIXES = ("builtin", "torchvision", "timm", "py")


def _scalar(value: Any) -> Any:
    if value is not None and not isinstance(value, str | int | float | bool):
        raise PydanticCustomError("scalar_type", "expected a string, number, boolean or null")
    return value


Scalar = Annotated[
    Any,
    BeforeValidator(_scalar),
    WithJsonSchema({"type": ["string", "number", "integer", "boolean", "null"]}),
]


class NormalizeConfig(BaseModel):
    """Per-channel mean and std the model's first layer normalises pixels with."""

    model_config = STRICT
    mean: list[float] = Field(min_length=1)
    std: list[Annotated[float, Field(gt=0)]] = Field(min_length=1)

    @model_validator(mode="after")
    def _same_length(self) -> NormalizeConfig:
        if len(self.mean) != len(self.std):
            raise ValueError(f"{len(self.mean)} means but {len(self.std)} stds; one per channel")
        return self


class ModelConfig(BaseModel):
    """Which model to start from."""

    model_config = STRICT
    spec: str
    weights: str | None = None
    normalize: NormalizeConfig | None = None

    @field_validator("spec")
    @classmethod
    def _check_spec(cls, spec: str) -> str:
        prefix, sep, rest = spec.partition(":")
        if not sep or not rest:
            raise PydanticCustomError(
                "model_spec",
                "expected builtin:NAME, torchvision:NAME, timm:NAME or py:package.module:fn",
            )
        if prefix not in MODEL_PREFIXES:
            msg = f"unknown model spec prefix {prefix!r}." + suggest(prefix, MODEL_PREFIXES)
            raise PydanticCustomError("model_spec", "{message}", {"message": msg})
        if prefix == "py" and rest.count(":") != 1:
            raise PydanticCustomError("model_spec", "expected py:package.module:function")
        if prefix == "builtin":
            from robust_compress.models.specs import BUILTINS

            registered(BUILTINS, rest)
        return spec


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
    device: Annotated[str, AfterValidator(check_device_name)] = "auto"
    compute: ComputeConfig = Field(default_factory=ComputeConfig)
    stages: list[SerializeAsAny[BaseStage]] = Field(min_length=1)
    tracking: Annotated[
        dict[str, SerializeAsAny[BaseModel]], Tracking, WithJsonSchema({"type": "object"})
    ] = Field(default_factory=dict)

    @field_serializer("stages")
    def _wrap_stages(self, stages: list[BaseStage], info: Any) -> list[dict[str, Any]]:
        return [{s.kind: s.model_dump(mode=info.mode, serialize_as_any=True)} for s in stages]

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
