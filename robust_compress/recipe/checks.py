"""Checks of a valid recipe that go beyond its schema: stage order, and fit to a model.

:func:`check_order` needs only the recipe; :func:`check_against_model` also needs the model
the recipe will run on (it looks at module names only, so it never runs the model). Both
return ``(errors, warnings)``: lists of one-line messages that start with the field path.
"""

from __future__ import annotations

import difflib
import re
from typing import TYPE_CHECKING

from robust_compress.threat import eps_error
from robust_compress.tracking.configs import missing_extras

if TYPE_CHECKING:
    from torch import nn

    from robust_compress.recipe.schema import Recipe

Messages = tuple[list[str], list[str]]


def match_modules(names: list[str], pattern: str) -> list[str]:
    r"""Return the module names a prune stage's ``ignore`` pattern selects.

    A plain pattern is a module name (``features.0``); ``re:REGEX`` selects the module names
    the regular expression fully matches (``re:features\.[0-2]``).

    Args:
        names: Module names, as from ``model.named_modules()``.
        pattern: One ``ignore`` entry.

    Returns:
        The selected names, in the order given.
    """
    if pattern.startswith("re:"):
        regex = re.compile(pattern[3:])
        return [name for name in names if regex.fullmatch(name)]
    return [name for name in names if name == pattern]


def check_order(recipe: Recipe) -> Messages:
    """Check the order of a recipe's stages.

    Rules: a prune stage may not follow a quantize stage (pruning a quantized Brevitas
    model is unsupported; prune before quantizing), and an export with ``int8: true``
    needs a quantize stage before it. Each ``tracking`` backend's library must be installed.

    Args:
        recipe: A validated recipe.

    Returns:
        (errors, warnings).
    """
    errors: list[str] = []
    quantized_at: int | None = None
    for i, stage in enumerate(recipe.stages):
        path = f"stages.{i}.{stage.kind}"
        if stage.kind == "quantize" and quantized_at is None:
            quantized_at = i
        elif stage.kind == "prune" and quantized_at is not None:
            errors.append(
                f"{path}: a prune stage cannot follow the quantize stage stages.{quantized_at}: "
                "pruning a quantized (Brevitas) model is unsupported; prune before quantizing"
            )
        elif stage.kind == "export" and stage.int8 is True and quantized_at is None:
            errors.append(
                f"{path}.int8: int8 export needs a quantize stage before it; add one or "
                "set int8: auto"
            )
    errors += missing_extras(recipe.tracking)
    return errors, []


def check_against_model(recipe: Recipe, model: nn.Module) -> Messages:
    """Check a recipe against the model it will compress, without running the model.

    On top of :func:`check_order`: every prune ``ignore`` pattern must select at least one
    module of the model; ``weight_bits`` below 4 draws a warning; the audit's ``eps_sweep``
    values are checked again with :func:`robust_compress.threat.eps_error` (a recipe object
    may have been changed in Python after it was validated).

    Args:
        recipe: A validated recipe.
        model: The model the recipe will run on.

    Returns:
        (errors, warnings).
    """
    errors, warnings = check_order(recipe)
    names = [name for name, _ in model.named_modules() if name]
    for i, stage in enumerate(recipe.stages):
        path = f"stages.{i}.{stage.kind}"
        if stage.kind == "prune":
            errors.extend(_ignore_errors(path, getattr(stage, "ignore", []), names))
        elif stage.kind == "quantize" and getattr(stage, "weight_bits", 8) < 4:
            warnings.append(
                f"{path}.weight_bits: {stage.weight_bits}-bit weights may make robust "
                "accuracy collapse (in our experience it holds up at 4 bits and above)"
            )
        elif stage.kind == "audit":
            for j, eps in enumerate(stage.eps_sweep):
                if (error := eps_error(eps, recipe.threat.norm)) is not None:
                    errors.append(f"{path}.eps_sweep.{j}: {error}")
    return errors, warnings


def _ignore_errors(path: str, patterns: list[str], names: list[str]) -> list[str]:
    errors = []
    for j, pattern in enumerate(patterns):
        try:
            matched = match_modules(names, pattern)
        except re.error as exc:
            errors.append(f"{path}.ignore.{j}: invalid regular expression {pattern!r}: {exc}")
            continue
        if not matched:
            close = difflib.get_close_matches(pattern.removeprefix("re:"), names, n=3)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            errors.append(
                f"{path}.ignore.{j}: {pattern!r} matches no module of the model "
                f"(write a module name, or re:REGEX for a full-match regex).{hint}"
            )
    return errors
