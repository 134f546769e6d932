"""Building blocks shared by every config class: strictness, the optimizer, dispatch by name.

A config class is a pydantic model validated on construction (torchao's config objects,
validated like the recipe). An extension point whose items each have their own config class
(attacks by ``attack``, prune methods by ``method``, quantizer backends by ``backend``) has a
*dispatching base*: validating the base picks the registered class named by one key of the
data, so a recipe can only use the fields of the item it names, and an item registered by a
plugin is accepted like a built-in one. Errors keep the position of the offending value.

A stage item in YAML is a mapping with one key naming its kind (``- prune: {...}``).
Validating :class:`BaseStage` (as the recipe's ``stages`` list does) looks the kind up in
:data:`~robust_compress.stages.registry.STAGES` and validates the block with that kind's config
class, so an error is located at ``stages.N.KIND.FIELD``.
"""

from __future__ import annotations

import re
from functools import cache
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    create_model,
    model_validator,
)
from pydantic_core import PydanticCustomError

from robust_compress.errors import suggest
from robust_compress.registry import STAGES

if TYPE_CHECKING:
    from robust_compress.registry import Registry

STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)
LrSchedule = Literal["onecycle", "cosine", "constant"]


def _check_pattern(pattern: str) -> str:
    if pattern.startswith("re:"):
        try:
            re.compile(pattern[3:])
        except (re.error, RecursionError, OverflowError) as exc:
            msg = " ".join(f"invalid regular expression {pattern!r}: {exc}".split())
            raise PydanticCustomError("regex", "{message}", {"message": msg}) from None
    return pattern


Pattern = Annotated[str, AfterValidator(_check_pattern)]
"""A module name, or ``re:PATTERN`` matching whole names (see models/layer_names.py)."""


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


class Dispatching(BaseModel):
    """Base of a config family whose members are chosen by one key, from a registry.

    Subclasses set :attr:`dispatch_key`, :attr:`dispatch_default` and :meth:`registry`. Validating
    the base itself (as a recipe field does) validates the data with the class registered under
    ``data[dispatch_key]``; validating a member validates that member.
    """

    model_config = STRICT
    dispatch_key: ClassVar[str] = ""
    dispatch_default: ClassVar[str | None] = None

    def __new__(cls, *args: Any, **data: Any) -> Any:
        """``Base(attack="pgd", ...)`` builds the member the data names (``PgdConfig``)."""
        if getattr(cls, "__family_base__", None) is cls and data:
            return cls.model_validate(data)
        return super().__new__(cls)

    @classmethod
    def registry(cls) -> Registry:
        """The registry whose entries' ``config`` classes are the members."""
        raise NotImplementedError

    @classmethod
    def member_for(cls, data: Any) -> type[BaseModel] | None:
        """The member class ``data`` names, or None when it names none."""
        name = data.get(cls.dispatch_key, cls.dispatch_default) if isinstance(data, dict) else None
        if not isinstance(name, str) or name not in cls.registry():
            return None
        return cls.registry().entry(name).config

    @model_validator(mode="wrap")
    @classmethod
    def _family_dispatch(cls, data: Any, handler: Any) -> Any:
        if getattr(cls, "__family_base__", None) is not cls or not isinstance(data, dict):
            return handler(data)
        member = cls.member_for(data)
        if member is None:
            raise _unknown_member(cls, data.get(cls.dispatch_key, cls.dispatch_default))
        return member.model_validate(data)


def _unknown_member(cls: type[Dispatching], name: Any) -> ValidationError:
    """An error located at the dispatch key, naming the registered choices."""
    names, what = cls.registry().names(), cls.registry().kind
    msg = f"unknown {what} {name!r}." + suggest(str(name), names)
    if not isinstance(name, str):
        msg = f"expected the name of a {what} ({', '.join(names)}); got {name!r}"
    error = PydanticCustomError("unknown_name", "{message}", {"message": msg})
    return ValidationError.from_exception_data(
        cls.__name__, [{"type": error, "loc": (cls.dispatch_key,), "input": name}]
    )


class BaseStage(BaseModel):
    """Base of the stage config classes; ``kind`` is the key that names the stage in YAML."""

    model_config = STRICT
    kind: ClassVar[str] = ""

    @model_validator(mode="wrap")
    @classmethod
    def _stage_dispatch(cls, data: Any, handler: Any) -> Any:
        if cls is not BaseStage:
            if isinstance(data, dict) and len(data) == 1 and cls.kind in data:
                inner = data[cls.kind]  # a block given with its kind key: unwrap it
                data = {} if inner is None else inner
            return handler(data)
        if isinstance(data, BaseStage):
            return data
        return _validate_stage(data)


def _stage_tag(value: Any) -> str | None:
    if isinstance(value, dict) and len(value) == 1:
        key = next(iter(value))
        return key if isinstance(key, str) else None
    return None


def _validate_stage(data: Any) -> BaseStage:
    kind = _stage_tag(data)
    if kind is None:
        raise PydanticCustomError("union_tag_not_found", "a stage names its kind", {})
    if kind not in STAGES:
        raise PydanticCustomError(
            "union_tag_invalid", "unknown stage kind {tag}", {"tag": kind, "expected": ""}
        )
    holder = _holder(kind, STAGES.entry(kind).config)
    return getattr(holder.model_validate(data), kind)


@cache
def _holder(kind: str, config: type[BaseStage]) -> type[BaseModel]:
    """A model with one field named ``kind``, so errors are located under the kind's key."""
    field = Annotated[config, BeforeValidator(lambda v: {} if v is None else v)]
    return create_model(f"{config.__name__}Item", __config__=STRICT, **{kind: (field, ...)})


def registered(registry: Registry, name: str) -> str:
    """``name`` when ``registry`` holds it; else a validation error that lists close names."""
    if name not in registry:
        msg = f"unknown {registry.kind} {name!r}." + suggest(name, registry.names())
        raise PydanticCustomError("unknown_name", "{message}", {"message": msg})
    return name


def family_base(cls: type[Dispatching]) -> type[Dispatching]:
    """Class decorator: mark ``cls`` as the base whose validation dispatches to members."""
    cls.__family_base__ = cls
    return cls


def concrete_model(model: Any, data: Any) -> Any:
    """The class that validates ``data`` where the schema says ``model`` (members of families)."""
    if isinstance(model, type) and issubclass(model, Dispatching):
        if getattr(model, "__family_base__", None) is model:
            return model.member_for(data) or model
    return model
