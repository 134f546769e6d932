"""Turning recipe validation errors into ``file:line:col: field.path: message`` lines.

:class:`Locator` knows where every value of a recipe came from (a position in the file, or a
``--set`` override); :func:`describe_error` rewrites one pydantic error into a short, readable
message and says whether it points at the value, at the key, or at the parent's key.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any, Literal

from robust_compress.config import concrete_model
from robust_compress.errors import suggest
from robust_compress.recipe.yaml_nodes import Document, Issue, Path
from robust_compress.stages.registry import stage_types

At = Literal["value", "key", "parent"]
_TYPE_NAMES = {
    "dict": "a mapping",
    "list": "a list",
    "str": "a string",
    "int": "an integer",
    "float": "a number",
    "bool": "a boolean",
    "NoneType": "null",
}
_EXPECTED = {
    "model_type": "a mapping",
    "dict_type": "a mapping",
    "list_type": "a list",
    "string_type": "a string",
    "int_type": "an integer",
    "float_type": "a number",
    "bool_type": "true or false",
}


def display_path(path: Path) -> str:
    """Return ``path`` as dotted text (``recipe`` for the root)."""
    parts = [str(p) if isinstance(p, int) or p.isidentifier() else repr(p) for p in path]
    return ".".join(parts) or "recipe"


def describe_value(value: Any) -> str:
    """Describe a value for a message: its YAML type and a short rendering."""
    kind = _TYPE_NAMES.get(type(value).__name__, type(value).__name__)
    if isinstance(value, dict | list):
        return f"{kind} of {len(value)} item{'s' if len(value) != 1 else ''}"
    if value is None:
        return "null"
    try:
        text = repr(value) if isinstance(value, str) else str(value).lower()
    except ValueError:  # an int too long to print
        text = "(a huge number)"
    if len(text) > 40:
        text = text[:37] + "..."
    return f"{kind} {text}"


def _sanitize(text: str) -> str:
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


@dataclass
class Override:
    """A ``--set PATH=VALUE`` override that was applied."""

    path: Path
    text: str


@dataclass
class Locator:
    """Formats messages at the position of the value they are about."""

    source: str
    doc: Document
    overrides: list[Override] = field(default_factory=list)

    def _position(self, path: Path, at: At) -> tuple[int, int]:
        table = self.doc.keys if at == "key" else self.doc.values
        if at == "parent":
            path, table = path[:-1], self.doc.keys
        if path in table:
            return table[path]
        while path and path not in self.doc.values:
            path = path[:-1]
        return self.doc.values.get(path, (1, 1))

    def _override(self, path: Path) -> Override | None:
        for override in reversed(self.overrides):
            if path[: len(override.path)] == override.path:
                return override
        return None

    def message(self, path: Path, text: str, at: At = "value") -> tuple[tuple, str]:
        """Return (sort key, formatted line) for a problem at ``path``."""
        override = self._override(path)
        if override is not None:
            where = "" if path == override.path else display_path(path) + ": "
            return (1, 0, 0), _sanitize(f"--set {override.text}: {where}{text}")
        line, col = self._position(path, at)
        body = _sanitize(f"{display_path(path)}: {text}")
        return (0, line, col), f"{self.source}:{line}:{col}: {body}"

    def issue(self, issue: Issue) -> tuple[tuple, str]:
        """Format a YAML :class:`Issue` at its own position."""
        field_name = "yaml" if issue.syntax else display_path(issue.path)
        body = _sanitize(f"{field_name}: {issue.message}")
        return (0, issue.line, issue.col), f"{self.source}:{issue.line}:{issue.col}: {body}"

    def errors(self, errors: list[dict[str, Any]]) -> list[tuple[tuple, str]]:
        """Format pydantic errors, dropping those under values already reported as bad."""
        out = []
        for error in errors:
            for path, text, at in describe_error(error, self.doc.data):
                if not any(path[: len(bad)] == bad for bad in self.doc.bad):
                    out.append(self.message(path, text, at))
        return out


def _name_of(path: Path) -> str:
    last = path[-1] if path else "value"
    if isinstance(last, int):
        parent = path[-2] if len(path) > 1 else "value"
        return str(parent).removesuffix("s")
    if last == "name" and len(path) > 1:
        return f"{path[-2]} name"
    return str(last)


def _stage_shape(value: Any) -> str:
    example = "e.g. `- train: {epochs: 1}`"
    kinds = ", ".join(stage_types())
    if isinstance(value, str) and value in stage_types():
        return f"write `- {value}: {{}}` (a stage is a mapping with one key naming its kind)"
    if isinstance(value, dict) and len(value) > 1:
        keys = ", ".join(map(str, value))
        return (
            f"a stage needs exactly one key naming its kind ({kinds}); found {len(value)}: "
            f"{keys} (indent the stage's fields under its kind)"
        )
    return f"a stage must be a mapping with one key naming its kind ({kinds}), {example}; got " + (
        describe_value(value)
    )


def _literal(path: Path, value: Any, expected: str) -> str:
    choices = re.findall(r"'([^']*)'", expected)
    if isinstance(value, str):
        return f"unknown {_name_of(path)} {value!r}." + suggest(value, choices)
    return f"expected one of {', '.join(choices)}; got {describe_value(value)}"


def _bound(error: dict[str, Any]) -> str:
    text = error["msg"].replace("Input should be", "must be")
    return f"{text}, got {describe_value(error['input'])}"


def describe_error(error: dict[str, Any], data: Any = None) -> list[tuple[Path, str, At]]:
    """Rewrite one pydantic error as (path, message, where-to-point) triples.

    ``data`` (the recipe's plain data) tells which member of a config family a block is.
    """
    path: Path = tuple(error["loc"])
    kind, value, ctx = error["type"], error.get("input"), error.get("ctx") or {}
    if kind == "recipe_rules":
        return [(tuple(p), m, "value") for p, m in ctx["problems"]]
    if kind == "missing":
        return [(path, f"missing required field {path[-1]!r}", "parent")]
    if kind == "extra_forbidden":
        known = fields_at(path[:-1], data)
        return [(path, f"unknown key {path[-1]!r}." + suggest(str(path[-1]), known), "key")]
    if kind == "union_tag_invalid":
        tag = ctx.get("tag", "")
        return [((*path, tag), f"unknown stage kind {tag!r}." + suggest(tag, stage_types()), "key")]
    if kind == "union_tag_not_found":
        return [(path, _stage_shape(value), "value")]
    if kind == "literal_error":
        return [(path, _literal(path, value, ctx.get("expected", "")), "value")]
    if kind == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        return [(path, "number too large", "value")]
    if kind in _EXPECTED:
        return [(path, f"expected {_EXPECTED[kind]}, got {describe_value(value)}", "value")]
    if kind == "too_short" and path == ("stages",):
        return [(path, "a recipe needs at least one stage, e.g. `- train: {epochs: 1}`", "value")]
    if kind in ("too_short", "string_too_short"):
        return [(path, "must not be empty", "value")]
    if kind in ("greater_than", "greater_than_equal", "less_than", "less_than_equal"):
        return [(path, _bound(error), "value")]
    if kind == "finite_number":
        return [(path, f"expected a finite number, got {describe_value(value)}", "value")]
    text = error["msg"].removeprefix("Value error, ").replace("Input should be", "must be")
    return [(path, text, "value")]


def fields_at(path: Path, data: Any = None) -> list[str]:
    """Return the field names of the schema model at ``path`` (empty if there is none)."""
    model = model_at(path, data)
    return list(model.model_fields) if model is not None else []


def model_at(path: Path, data: Any = None) -> Any:
    """Return the pydantic model class at ``path`` of a recipe (``data``), or None."""
    from robust_compress.recipe.schema import Recipe

    model: Any = Recipe
    i = 0
    while i < len(path) and model is not None:
        model = concrete_model(model, _node(data, path[:i]))
        part = path[i]
        if model is Recipe and part == "stages":
            kind = path[i + 2] if len(path) > i + 2 else None
            model, i = stage_types().get(kind) if isinstance(kind, str) else None, i + 3
            continue
        info = model.model_fields.get(part) if isinstance(part, str) else None
        model = model_in(info.annotation) if info is not None else None
        i += 1
    return concrete_model(model, _node(data, path))


def _node(data: Any, path: Path) -> Any:
    for part in path:
        if isinstance(data, dict):
            data = data.get(part)
        elif isinstance(data, list) and isinstance(part, int) and 0 <= part < len(data):
            data = data[part]
        else:
            return None
    return data


def model_in(annotation: Any) -> Any:
    """Return the first pydantic model class inside a type annotation, or None."""
    from typing import get_args

    from pydantic import BaseModel

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = model_in(arg)
        if found is not None:
            return found
    return None
