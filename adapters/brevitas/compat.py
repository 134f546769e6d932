"""Where Brevitas 0.13.4 trips on real architectures, and what this adapter does about it.

- **Tensor methods on quantized tensors.** Brevitas' layers pass ``QuantTensor`` objects
  between them; those lack many tensor methods and attributes (``x.mul(...)`` in timm's
  ConvNeXt, ``x.ndim`` in timm's BatchNormAct2d, ``x.mean(...)``, ``x.unbind(...)``).
  :func:`plain_tensor_methods` rewrites the traced graph so such a call gets the plain
  (dequantized) tensor, which is what the float code computed on anyway; so does indexing
  (``x[:, 0]``, the class token of a ViT), which a ``QuantTensor``, a named tuple, gets
  wrong. torch *functions* already unpack a ``QuantTensor`` by themselves.
- **Residual alignment through ``x.transpose``.** Brevitas' residual handler walks through
  ``x.transpose(...)`` when it aligns the inputs of an add or concatenation, but its check of
  the result does not, so a ``torch.cat`` fed through ``x.transpose`` (the class token and
  patches of timm's ViT and DeiT) never converges. :func:`function_transposes` writes those
  calls as ``torch.transpose``, which both follow.
- **Optional forward() arguments.** Brevitas quantizes every input of the traced graph, so an
  optional argument such as timm's ``forward(x, attn_mask=None)`` gets a quantizer fed with
  None. The model is only ever called with its images: :func:`images_only` fixes every other
  argument to its default.
- **Bias correction of a Linear on channels-last inputs.** Brevitas takes dimension 1 as the
  channel dimension of every input that is not 3-D, so a Linear applied to an (N, H, W, C)
  tensor (torchvision's ConvNeXt blocks) gets a correction of the wrong length.
  :func:`bias_correction` corrects a Linear along its input's last dimension, as it computes.
"""

from __future__ import annotations

import builtins
import logging
import operator
import warnings
from typing import Any

import torch
from torch import nn

from robust_compress.errors import UserError, first_line

__all__ = ["bias_correction", "calibration_mode", "quantized_graph"]

# Importing Brevitas prints a CUDA notice through torch's logger and three library warnings
# (deprecations, an optional package) that say nothing to our users: keep them out.
logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from brevitas.graph.calibrate import _BiasCorrection, bias_correction_mode, calibration_mode
    from brevitas.graph.quantize import preprocess_for_quantize, quantize
    from brevitas.quant_tensor import IntQuantTensor, QuantTensor


def plain(x):
    """``x`` as a plain tensor: the dequantized value of a ``QuantTensor``, else ``x``."""
    return x.value if isinstance(x, QuantTensor) else x


def _needs_plain(node: Any) -> bool:
    """True when ``node`` calls a method or reads an attribute a QuantTensor lacks, or indexes.

    A QuantTensor is a named tuple without its own ``__getitem__``: ``x[:, 0]`` raises and
    ``x[0]`` silently returns its value instead of the first row.
    """
    if node.op == "call_function" and node.target is operator.getitem:
        return bool(node.args) and isinstance(node.args[0], type(node))
    if node.op == "call_method":
        name = node.target
    elif node.op == "call_function" and node.target is builtins.getattr:
        name = node.args[1] if len(node.args) > 1 else None
    else:
        return False
    return (
        isinstance(name, str)
        and bool(node.args)
        and isinstance(node.args[0], type(node))
        and not hasattr(IntQuantTensor, name)
    )


def plain_tensor_methods(model: Any) -> int:
    """Give tensor methods that a QuantTensor lacks the plain tensor; return how many.

    Args:
        model: A traced, quantized model: a GraphModule of Brevitas' fx backport (changed in
            place and recompiled).
    """
    graph = model.graph
    changed = 0
    for node in list(graph.nodes):
        if not _needs_plain(node):
            continue
        with graph.inserting_before(node):
            unpacked = graph.call_function(plain, (node.args[0],))
        node.args = (unpacked, *node.args[1:])
        changed += 1
    if changed:
        graph.lint()
        model.recompile()
    return changed


def function_transposes(model: Any) -> int:
    """Rewrite ``x.transpose(a, b)`` calls as ``torch.transpose(x, a, b)``; return how many.

    Args:
        model: A traced model: a GraphModule of Brevitas' fx backport (changed in place).
    """
    graph = model.graph
    changed = 0
    for node in list(graph.nodes):
        if node.op == "call_method" and node.target == "transpose" and not node.kwargs:
            with graph.inserting_before(node):
                function = graph.call_function(torch.transpose, node.args)
            node.replace_all_uses_with(function)
            graph.erase_node(node)
            changed += 1
    if changed:
        graph.lint()
        model.recompile()
    return changed


def images_only(model: Any) -> list[str]:
    """Fix every graph input but the first to its default value; return their names.

    Args:
        model: A traced model: a GraphModule of Brevitas' fx backport (changed in place).

    Raises:
        UserError: An argument after the first has no default.
    """
    graph = model.graph
    inputs = [n for n in graph.nodes if n.op == "placeholder"][1:]
    for node in inputs:
        if not node.args:
            raise UserError(
                f"{type(model).__name__}.forward() takes an argument {node.target!r} without "
                "a default; the quantizer calls the model with its images alone. Give it a "
                "default, or wrap the model in a module whose forward(x) takes only images."
            )
        default = node.args[0]
        for user in list(node.users):
            user.args = tuple(default if a is node else a for a in user.args)
            user.kwargs = {k: default if v is node else v for k, v in user.kwargs.items()}
        if not node.users:
            graph.erase_node(node)
    if inputs:
        graph.lint()
        model.recompile()
    return [str(n.target) for n in inputs]


class _LinearLastDim(_BiasCorrection):
    """Brevitas' bias correction, with a Linear's channels on its input's last dimension."""

    def channel_dim(self, inp, module):  # noqa: D102
        if isinstance(module, nn.Linear):
            return inp.dim() - 1
        return super().channel_dim(inp, module)


def bias_correction(model: nn.Module) -> bias_correction_mode:
    """Brevitas' ``bias_correction_mode`` for ``model``, Linear layers corrected per feature."""
    mode = bias_correction_mode(model)
    mode.bias_correction = _LinearLastDim(skip_if_no_bias=mode.bias_correction.skip_if_no_bias)
    return mode


def quantized_graph(model: nn.Module, maps: dict[str, dict]) -> Any:
    """Trace ``model`` (a copy the caller gives up), fold BatchNorm, swap in quantized layers.

    Args:
        model: A float model in eval mode; it is changed.
        maps: Brevitas' layer maps (``compute_layer_map``, ``quant_act_map``, ...).

    Returns:
        The fake-quant GraphModule, with the fixes of this module applied.

    Raises:
        UserError: torch.fx cannot trace the model, or Brevitas cannot quantize its graph.
    """
    name = type(model).__name__
    try:
        graph = preprocess_for_quantize(model)
    except Exception as exc:  # fx raises many types on untraceable code
        raise UserError(
            f"Brevitas cannot trace {name} with torch.fx ({first_line(exc)}). Remove "
            "data-dependent control flow from forward(), or quantize a traceable submodule."
        ) from None
    images_only(graph)
    function_transposes(graph)
    try:
        qmodel = quantize(graph, **maps)
    except Exception as exc:
        raise UserError(
            f"Brevitas cannot quantize the graph of {name} ({type(exc).__name__}: "
            f"{first_line(exc)}); choose another model, or quantize a submodule Brevitas "
            "supports."
        ) from None
    plain_tensor_methods(qmodel)
    return qmodel
