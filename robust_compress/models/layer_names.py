r"""Which layers the structured pruner leaves alone: the classifier head and the user's list.

Used by the Torch-Pruning adapter (:mod:`robust_compress.adapters.torch_pruning.pruner`) and
by the learned-mask methods. It resolves names from YAML into modules, in plain PyTorch.

Ignored layers are given by module name (``features.0``, as in ``model.named_modules()``) or by a
regular pattern written ``re:PATTERN`` that must match the whole name (``re:layer1\..*``).
Ignoring a module ignores its submodules too.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from robust_compress.errors import UserError

REGEX_PREFIX = "re:"


def find_head(model: nn.Module, example_inputs: Tensor | None = None) -> str:
    """Return the name of the classifier head: the last ``nn.Linear`` producing the output.

    With ``example_inputs`` the model is run once (eval mode, no grad, modes restored) and the
    head is the Linear (or, in a model without one, the convolution) whose output is the
    model's output, else the last one called. Without inputs it is the last ``nn.Linear`` in
    registration order, else the last convolution.

    Raises:
        UserError: The model has neither a Linear nor a convolution layer.
    """
    kinds = (nn.Linear, nn.modules.conv._ConvNd)
    names = {m: n for n, m in model.named_modules() if isinstance(m, kinds)}
    if example_inputs is not None:
        calls = _called_layers(model, example_inputs, tuple(names))
        output = calls.pop()[1] if calls and calls[-1][0] is None else None
        for kind in kinds:
            called = [(m, out) for m, out in calls if isinstance(m, kind)]
            for m, out in reversed(called):
                if out is output:
                    return names[m]
            if called:
                return names[called[-1][0]]
    for kind in kinds:
        found = [n for m, n in names.items() if isinstance(m, kind)]
        if found:
            return found[-1]
    raise UserError(
        f"{type(model).__name__} has no nn.Linear or convolution layer: nothing to prune."
    )


def _called_layers(
    model: nn.Module, example_inputs: Tensor, layers: tuple[nn.Module, ...]
) -> list[tuple[nn.Module | None, object]]:
    """Run ``model`` once; return ``(layer, output)`` per call, then ``(None, model output)``."""
    calls: list[tuple[nn.Module | None, object]] = []
    hooks = [
        m.register_forward_hook(lambda mod, _inp, out: calls.append((mod, out))) for m in layers
    ]
    modes = {m: m.training for m in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            out = model(example_inputs)
    finally:
        for h in hooks:
            h.remove()
        for m, mode in modes.items():
            m.training = mode
    calls.append((None, out))
    return calls


def resolve_names(model: nn.Module, patterns: Sequence[str]) -> list[str]:
    """Return the module names that ``patterns`` select, in the model's order.

    Args:
        model: The model whose ``named_modules()`` are searched.
        patterns: Module names or ``re:PATTERN`` regular expressions (full match).

    Raises:
        UserError: A pattern is not a valid regular expression or matches no module; the
            message names the pattern and lists close module names.
    """
    names = [n for n, _ in model.named_modules() if n]
    chosen: set[str] = set()
    for pattern in patterns:
        matched = _match(pattern, names)
        if not matched:
            raise UserError(
                f"ignore pattern {pattern!r} matches no module of {type(model).__name__}."
                + _close_names(pattern, names)
            )
        chosen.update(matched)
    return [n for n in names if n in chosen]


def _match(pattern: str, names: list[str]) -> list[str]:
    if not pattern.startswith(REGEX_PREFIX):
        return [pattern] if pattern in names else []
    try:
        regex = re.compile(pattern[len(REGEX_PREFIX) :])
    except re.error as exc:
        raise UserError(
            f"ignore pattern {pattern!r} is not a valid regular expression: {exc}."
        ) from None
    return [n for n in names if regex.fullmatch(n)]


def _close_names(pattern: str, names: list[str], limit: int = 12) -> str:
    text = pattern.removeprefix(REGEX_PREFIX)
    hint = " A re: pattern must match the whole name." if pattern.startswith(REGEX_PREFIX) else ""
    close = difflib.get_close_matches(text, names, n=5, cutoff=0.4)
    if close:
        return hint + " Close module names: " + ", ".join(close) + "."
    shown = ", ".join(names[:limit]) + (", ..." if len(names) > limit else "")
    return f"{hint} Module names: {shown}."
