"""The recipe's ``data.transforms`` block: transforms per split, checked when the recipe loads.

A split's transforms are a list of one-key steps, applied in order::

    transforms:
      train: [{resize: 36}, {random_crop: {size: 32, padding: 4}}, {hflip: 0.5}]
      eval: [{resize: 36}, {center_crop: 32}]

``resize`` and ``center_crop`` are fixed (run once per image as it is read); ``random_crop``
and ``hflip`` are random augmentations of training batches and may appear only in ``train``,
after every fixed step. Without ``train`` the training images get ``eval``'s fixed steps; the
test set, the holdout and every figure of the report use ``eval``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field, ValidationError, field_validator, model_validator

from robust_compress.config import STRICT, registered
from robust_compress.data.augment import Augment, Chain, center_crop, resize, size_pair

Size = (
    Annotated[int, Field(gt=0)]
    | Annotated[list[Annotated[int, Field(gt=0)]], Field(min_length=2, max_length=2)]
)
FIXED = ("resize", "center_crop")
RANDOM = ("random_crop", "hflip")


class RandomCrop(BaseModel):
    """A random crop of ``size`` after zero ``padding`` on every side (CIFAR's 32 + 4)."""

    model_config = STRICT
    size: Size
    padding: int = Field(0, ge=0)


class TransformStep(BaseModel):
    """One transform: exactly one of its keys."""

    model_config = STRICT
    resize: Size | None = Field(None, description="shorter side to N, or exactly [h, w]")
    center_crop: Size | None = Field(None, description="the central N x N (or [h, w]) crop")
    random_crop: RandomCrop | None = Field(None, description="{size, padding}; train only")
    hflip: float | None = Field(None, ge=0, le=1, description="flip probability; train only")

    @model_validator(mode="after")
    def _one_key(self) -> TransformStep:
        keys = self.keys()
        if len(keys) != 1:
            names = ", ".join(FIXED + RANDOM)
            raise ValueError(f"a transform step has exactly one of {names}; got {keys or 'none'}")
        return self

    def keys(self) -> list[str]:
        """The keys this step sets."""
        return [k for k in FIXED + RANDOM if getattr(self, k) is not None]

    @property
    def kind(self) -> str:
        """The step's key."""
        return self.keys()[0]


class TransformsConfig(BaseModel):
    """Transforms per split (see the module docstring)."""

    model_config = STRICT
    train: list[TransformStep] | None = None
    eval: list[TransformStep] = Field(default_factory=list)

    @model_validator(mode="after")
    def _check_order(self) -> TransformsConfig:
        if any(step.kind in RANDOM for step in self.eval):
            raise ValueError("random_crop and hflip are training augmentations; put them in train")
        seen_random = False
        for step in self.train or []:
            if step.kind in RANDOM:
                seen_random = True
            elif seen_random:
                raise ValueError(f"{step.kind} comes after a random augmentation; put it first")
        return self

    def steps(self, split: str) -> list[TransformStep]:
        """The steps of ``split`` (``train``; anything else reads ``eval``)."""
        if split == "train" and self.train is not None:
            return self.train
        return self.eval


def fixed_transform(steps: list[TransformStep]) -> Chain | None:
    """The fixed steps as one function of a (C, H, W) image, or None when there are none."""
    funcs = tuple(_fixed_step(s) for s in steps if s.kind in FIXED)
    return Chain(funcs) if funcs else None


def _fixed_step(step: TransformStep) -> Callable:
    if step.kind == "resize":
        return partial(resize, size=step.resize)
    return partial(center_crop, size=step.center_crop)


def augmentation(steps: list[TransformStep]) -> Augment | None:
    """The random augmentation of ``steps``, or None when they have none."""
    crop = next((s.random_crop for s in steps if s.kind == "random_crop"), None)
    flip = next((s.hflip for s in steps if s.kind == "hflip"), 0.0)
    if crop is None and not flip:
        return None
    return Augment(
        crop=size_pair(crop.size) if crop else None,
        padding=crop.padding if crop else 0,
        flip=flip,
    )


class DataConfig(BaseModel):
    """The dataset, its transforms, and how it is batched and read."""

    model_config = STRICT
    name: str = Field(
        "fashion-mnist", description="a registered dataset, or py:package.module:fn (your own)"
    )
    root: str | None = Field(None, description="the folder holding the dataset's files")
    options: dict[str, Any] = Field(
        default_factory=dict, description="the dataset's own options (see Datasets)"
    )
    batch_size: int = Field(128, gt=0)
    train_subset: int | None = Field(None, gt=0)
    test_subset: int | None = Field(None, gt=0)
    holdout: int = Field(0, ge=0)
    download: bool = False
    transforms: TransformsConfig = Field(default_factory=TransformsConfig)
    stream: Literal["auto", "memory", "stream"] = Field(
        "auto", description="auto: in memory when the decoded uint8 images fit in memory_mb"
    )
    workers: int = Field(2, ge=0, description="DataLoader worker processes when streaming")
    memory_mb: int = Field(1024, gt=0, description="largest decoded split held in memory")

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        from robust_compress.data.datasets import DATASETS, PY_PREFIX

        if name.startswith(PY_PREFIX):
            if ":" not in name[len(PY_PREFIX) :]:
                raise ValueError("a py: dataset is py:package.module:fn")
            return name
        return registered(DATASETS, name)

    @model_validator(mode="after")
    def _check_options(self) -> DataConfig:
        from robust_compress.data.datasets import DATASETS, PY_PREFIX

        if self.name.startswith(PY_PREFIX) or self.name not in DATASETS:
            return self
        config = DATASETS.entry(self.name).config
        if config is not None:
            try:
                config.model_validate(self.options)
            except ValidationError as exc:
                raise ValueError(_options_problems(self.name, exc)) from None
        elif self.options:
            raise ValueError(f"dataset {self.name!r} takes no options; got {sorted(self.options)}")
        return self


def _options_problems(name: str, exc: ValidationError) -> str:
    problems = [
        f"options.{'.'.join(map(str, e['loc']))}: {e['msg']}" if e["loc"] else e["msg"]
        for e in exc.errors()
    ]
    return f"dataset {name!r}: " + "; ".join(problems)
