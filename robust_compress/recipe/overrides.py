"""``--set PATH=VALUE`` overrides of a recipe, applied to its plain data before validation.

``PATH`` is dotted (``stages.0.train.epochs``, ``threat.eps``, ``args.lr``) and must exist in
the schema; a stage is addressed by its index and its kind. ``VALUE`` is read as YAML
(``2`` is an integer, ``[pgd, square]`` a list, an empty value is null).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from robust_compress.config import concrete_model
from robust_compress.errors import suggest
from robust_compress.recipe.errors import Override, describe_value, display_path, model_in
from robust_compress.recipe.schema import Recipe
from robust_compress.recipe.yaml_nodes import Path, read_yaml
from robust_compress.stages.registry import stage_types


def parse_path(text: str) -> Path:
    """Split a dotted path; integer parts become list indices.

    Raises:
        ValueError: The path has an empty part.
    """
    parts = text.split(".")
    if any(not p for p in parts):
        raise ValueError(f"bad path {text!r}: expected dotted names like stages.0.train.epochs")
    return tuple(int(p) if p.isdigit() else p for p in parts)


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str]
) -> tuple[list[Override], list[str]]:
    """Apply overrides to ``data`` in place.

    Returns:
        (applied overrides, error messages of the form ``--set TEXT: message``).
    """
    applied, errors = [], []
    for text in overrides:
        try:
            path, value = _parse(text)
            problem = check_path(path, data)
            if problem:
                raise ValueError(problem)
        except ValueError as exc:
            errors.append(f"--set {text}: {exc}")
            continue
        _assign(data, path, value)
        applied.append(Override(path, text))
    return applied, errors


def _parse(text: str) -> tuple[Path, Any]:
    name, sep, raw = text.partition("=")
    if not sep:
        raise ValueError("expected PATH=VALUE, e.g. stages.0.train.epochs=2")
    path = parse_path(name.strip())
    doc = read_yaml(raw)
    if doc.issues:
        issue = doc.issues[0]
        raise ValueError(("yaml: " if issue.syntax else "") + issue.message)
    return path, doc.data


def check_path(path: Path, data: Any) -> str | None:
    """Return why ``path`` names nothing in a recipe's schema, or None if it does."""
    model: Any = Recipe
    node: Any = data
    i = 0
    while i < len(path):
        model = concrete_model(model, node)
        part, prefix = path[i], display_path(path[:i])
        if model is Recipe and part == "args":
            ok = len(path) <= i + 2 and all(isinstance(p, str) for p in path[i:])
            return None if ok else "args are set one by one: args.NAME=VALUE"
        if model is Recipe and part == "stages" and len(path) > i + 1:
            stages = node.get("stages") if isinstance(node, dict) else None
            problem, kind = _check_stage(path[i + 1 : i + 3], stages)
            if problem or len(path) <= i + 3:
                return problem
            model, node, i = stage_types()[kind], stages[path[i + 1]][kind], i + 3
            continue
        if model is None:
            if isinstance(node, list) and isinstance(part, int) and part < len(node):
                node, i = node[part], i + 1
                continue
            return f"{prefix} is {describe_value(node)}, it has no item {part!r}"
        if not isinstance(part, str) or part not in model.model_fields:
            return f"unknown field {part!r} in {prefix}." + suggest(str(part), model.model_fields)
        model = model_in(model.model_fields[part].annotation)
        node = node.get(part) if isinstance(node, dict) else None
        i += 1
    return None


def _check_stage(parts: Path, stages: Any) -> tuple[str | None, str]:
    """Check the ``INDEX[.KIND]`` part of a stage path; return (problem, kind)."""
    index = parts[0]
    count = len(stages) if isinstance(stages, list) else 0
    if not isinstance(index, int) or index >= count:
        return f"no stage {index!r}: the recipe has {count} stage(s), numbered from 0", ""
    item = stages[index]
    kind = next(iter(item)) if isinstance(item, dict) and len(item) == 1 else ""
    if len(parts) == 1:
        return None, kind
    if kind not in stage_types():
        return f"stage {index} is not a valid stage (a mapping with one key naming its kind)", ""
    if parts[1] != kind:
        return f"stage {index} is a {kind} stage, not {parts[1]!r}", kind
    return None, kind


def _assign(data: dict[str, Any], path: Path, value: Any) -> None:
    node: Any = data
    for part, following in zip(path[:-1], path[1:], strict=True):
        child = node[part] if isinstance(node, list) else node.get(part)
        if isinstance(following, str) and not isinstance(child, dict):
            child = {}  # check_path allowed it, so a mapping belongs here
            node[part] = child
        node = child
    node[path[-1]] = value
