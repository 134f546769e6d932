"""``${name}`` substitution from a recipe's ``args``: the only templating a recipe has.

A string value that is exactly ``${name}`` takes the argument's value with its type (so
``epochs: ${epochs}`` gives an integer); inside a longer string the argument is written as
text (``name: run-${eps}``). Keys and the ``args`` themselves are never substituted.
"""

from __future__ import annotations

import re
from typing import Any

from robust_compress.errors import suggest

Path = tuple[str | int, ...]
Problem = tuple[Path, str]

_REF = re.compile(r"\$\{([^{}]*)\}")
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return "null" if value is None else str(value)


def collect_args(data: dict[str, Any]) -> tuple[dict[str, Any], set[str], list[Problem]]:
    """Read the usable arguments of a recipe's ``args`` mapping.

    Returns:
        (usable values, names of unusable ones, problems). Values that are not scalars are
        left for the schema to report; references to them are not reported again.
    """
    args = data.get("args")
    values: dict[str, Any] = {}
    unusable: set[str] = set()
    problems: list[Problem] = []
    if not isinstance(args, dict):
        return values, unusable, problems
    for name, value in args.items():
        if not _NAME.fullmatch(name):
            msg = "an argument name must be an identifier (letters, digits and _)"
            problems.append((("args", name), msg))
            unusable.add(name)
        elif value is not None and not isinstance(value, str | int | float | bool):
            unusable.add(name)
        elif isinstance(value, str) and "${" in value:
            problems.append((("args", name), "an argument's value cannot contain ${...}"))
            unusable.add(name)
        else:
            values[name] = value
    return values, unusable, problems


def substitute(data: dict[str, Any]) -> tuple[dict[str, Any], list[Problem]]:
    """Return a copy of ``data`` with every ``${name}`` replaced from its ``args``.

    Args:
        data: The recipe as plain data (a mapping).

    Returns:
        (new data, problems); a value with a problem is left as it was.
    """
    values, unusable, problems = collect_args(data)
    out = {}
    for key, value in data.items():
        if key == "args":
            out[key] = value
        else:
            out[key] = _walk(value, (key,), values, unusable, problems)
    return out, problems


def _walk(value: Any, path: Path, values: dict, unusable: set, problems: list) -> Any:
    if isinstance(value, dict):
        return {k: _walk(v, (*path, k), values, unusable, problems) for k, v in value.items()}
    if isinstance(value, list):
        return [_walk(v, (*path, i), values, unusable, problems) for i, v in enumerate(value)]
    if not isinstance(value, str) or "${" not in value:
        return value
    names = _REF.findall(value)
    for name in names:
        if not _NAME.fullmatch(name):
            problems.append((path, f"invalid reference ${{{name}}}: expected ${{name}}"))
            return value
        if name not in values:
            if name not in unusable:
                problems.append((path, _unknown(name, values)))
            return value
    whole = _REF.fullmatch(value)
    if whole is not None:
        return values[whole.group(1)]
    return _REF.sub(lambda m: _as_text(values[m.group(1)]), value)


def _unknown(name: str, values: dict[str, Any]) -> str:
    if not values:
        return f"unknown variable ${{{name}}}: define it under args (the recipe has none)"
    return f"unknown variable ${{{name}}}: define it under args." + suggest(name, values)
