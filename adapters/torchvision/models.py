"""torchvision classification models by name, at their native architecture.

``torchvision:NAME`` builds torchvision's model ``NAME`` without weights, with the dataset's
number of classes. The architecture is torchvision's own (no layer is resized for small
inputs); only when the dataset's images do not have 3 channels is the first convolution
replaced by one that takes them, and the log says so at INFO.
"""

from __future__ import annotations

import logging

from torch import nn

from robust_compress.errors import ModelSpecError, suggest

log = logging.getLogger(__name__)


def torchvision_model(name: str, num_classes: int, in_channels: int) -> nn.Module:
    """Build torchvision's classification model ``name`` (no weights).

    Args:
        name: A name of ``torchvision.models.list_models(module=torchvision.models)``.
        num_classes: Number of classes of the dataset (the size of the model's head).
        in_channels: Channels of the dataset's images; the first conv is replaced if not 3.

    Returns:
        A freshly initialised model.

    Raises:
        ModelSpecError: ``name`` is not a torchvision classification model.
    """
    from torchvision import models as tvm

    names = tvm.list_models(module=tvm)
    if name not in names:
        raise ModelSpecError(f"unknown torchvision model {name!r}." + suggest(name, names))
    model = tvm.get_model(name, weights=None, num_classes=num_classes)
    if in_channels != 3:
        layer = replace_first_conv(model, in_channels)
        s = "" if in_channels == 1 else "s"
        log.info(
            "torchvision:%s: first conv %s takes %d channel%s instead of 3",
            name,
            layer,
            in_channels,
            s,
        )
    return model


def replace_first_conv(model: nn.Module, in_channels: int) -> str:
    """Swap the model's first ``Conv2d`` for a fresh one that takes ``in_channels`` channels.

    Args:
        model: The model, changed in place.
        in_channels: Input channels of the new convolution.

    Returns:
        The replaced layer's name, as in ``model.named_modules()`` (``conv1``, ``features.0.0``).

    Raises:
        ModelSpecError: The model has no ``Conv2d`` or its first one is grouped.
    """
    for name, conv in model.named_modules():
        if isinstance(conv, nn.Conv2d):
            if conv.groups != 1:
                raise ModelSpecError(
                    f"the first conv {name} is grouped ({conv.groups} groups); it cannot be "
                    f"adapted to {in_channels} input channels: give 3-channel images."
                )
            parent_name, _, child = name.rpartition(".")
            parent = model.get_submodule(parent_name)
            new = nn.Conv2d(
                in_channels,
                conv.out_channels,
                conv.kernel_size,
                conv.stride,
                conv.padding,
                conv.dilation,
                bias=conv.bias is not None,
                padding_mode=conv.padding_mode,
            )
            setattr(parent, child, new)
            return name
    raise ModelSpecError(
        f"the model has no Conv2d to adapt to {in_channels} input channels; give 3-channel images."
    )
