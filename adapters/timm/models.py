"""timm models by name: ``timm:NAME`` with the dataset's classes, channels and input size.

timm is an optional extra (``pip install 'robust-compress[timm]'``). A model is created without
pretrained weights (weights come from the recipe's ``model.weights``), with ``num_classes`` and
``in_chans`` from the dataset; models whose constructor takes an ``img_size`` (ViT, DeiT and
other transformers whose position embeddings depend on it) get the dataset's input size.
"""

from __future__ import annotations

import logging

from torch import nn

from robust_compress.errors import ModelSpecError, first_line, suggest

log = logging.getLogger(__name__)
INSTALL = "pip install 'robust-compress[timm]'"


def timm_model(
    name: str,
    num_classes: int,
    in_channels: int,
    input_size: tuple[int, int] | None = None,
) -> nn.Module:
    """Create timm's model ``name`` (no pretrained weights).

    Args:
        name: A name of ``timm.list_models()`` (``resnet18``, ``deit_tiny_patch16_224``).
        num_classes: Number of classes of the dataset.
        in_channels: Channels of the dataset's images (timm's ``in_chans``).
        input_size: (height, width) of the dataset's images; passed as ``img_size`` to models
            that take one. None: the model's default size.

    Returns:
        A freshly initialised model.

    Raises:
        ModelSpecError: timm is not installed, ``name`` is unknown, or timm cannot build it.
    """
    timm = _import_timm()
    if not timm.is_model(name):
        raise ModelSpecError(f"unknown timm model {name!r}." + suggest(name, timm.list_models()))
    kwargs = {"pretrained": False, "num_classes": num_classes, "in_chans": in_channels}
    if input_size is not None:
        try:
            model = timm.create_model(name, img_size=tuple(input_size), **kwargs)
        except TypeError as exc:
            if "img_size" not in str(exc):
                raise _build_error(name, exc) from None
        except Exception as exc:
            raise _build_error(name, exc, input_size) from None
        else:
            log.info("timm:%s: img_size %s from the dataset", name, tuple(input_size))
            return model
    try:
        return timm.create_model(name, **kwargs)
    except Exception as exc:
        raise _build_error(name, exc) from None


def _import_timm():
    try:
        import timm
    except ImportError:
        raise ModelSpecError(
            f"timm: models need the optional package timm; install it with: {INSTALL}"
        ) from None
    return timm


def _build_error(
    name: str, exc: BaseException, input_size: tuple[int, int] | None = None
) -> ModelSpecError:
    size = f" with img_size {tuple(input_size)}" if input_size is not None else ""
    return ModelSpecError(
        f"timm cannot build {name!r}{size}: {first_line(exc)}. Choose another timm model, or "
        "(for a fixed-size transformer) images whose size its patch size divides."
    )
