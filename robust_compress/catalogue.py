"""Everything a recipe can name, read from the registries (``robust-compress list``, the docs).

One place enumerates the extension points; ``robust-compress list``, ``robust-compress schema``
and the generated table of docs/recipes.md read them from here, so a registered item (a
plugin's too) shows up in all three.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from robust_compress.registry import Entry, Registry


@dataclass(frozen=True)
class ExtensionPoint:
    """One registry as the user sees it.

    Attributes:
        title: The heading in listings.
        registry: ``"module:NAME"`` of the registry.
        prefix: Put before each name where a recipe writes one (``builtin:`` for models).
        recipe_key: Where a recipe names an item (for the docs).
    """

    title: str
    registry: str
    prefix: str = ""
    recipe_key: str = ""

    def load(self) -> Registry:
        """The registry itself."""
        from robust_compress.registry import import_target

        return import_target(self.registry)


EXTENSION_POINTS: tuple[ExtensionPoint, ...] = (
    ExtensionPoint("models", "robust_compress.models.specs:BUILTINS", "builtin:", "model.spec"),
    ExtensionPoint("datasets", "robust_compress.data.datasets:DATASETS", "", "data.name"),
    ExtensionPoint(
        "attacks", "robust_compress.attacks.registry:ATTACKS", "", "adversary.attack, attacks"
    ),
    ExtensionPoint(
        "importance criteria", "robust_compress.pruning.registry:IMPORTANCE", "", "importance"
    ),
    ExtensionPoint(
        "prune methods", "robust_compress.pruning.registry:PRUNE_METHODS", "", "prune.method"
    ),
    ExtensionPoint(
        "quantizer backends",
        "robust_compress.quantization.registry:QUANTIZERS",
        "",
        "quantize.backend",
    ),
    ExtensionPoint("stages", "robust_compress.stages.registry:STAGES", "", "stages[].KIND"),
    ExtensionPoint("trackers", "robust_compress.registry:TRACKERS", "", "tracking.NAME"),
    ExtensionPoint(
        "corruptions",
        "robust_compress.audit.corruptions:CORRUPTIONS",
        "",
        "audit.corruptions.kinds",
    ),
)


def catalogue() -> dict[str, list[Entry]]:
    """Every registered entry, by extension point title."""
    return {point.title: point.load().entries() for point in EXTENSION_POINTS}


def config_classes() -> list[type]:
    """Every config class the registries hold (each once, in order)."""
    found: list[type] = []
    for entries in catalogue().values():
        for entry in entries:
            if entry.config is not None and entry.config not in found:
                found.append(entry.config)
    return found


def _fields(entry: Entry) -> str:
    if entry.config is None:
        params = entry.meta.get("params")  # a corruption's parameter by severity
        return f"{entry.meta.get('param')} by severity: {_yaml(params)}" if params else ""
    parts = []
    for name, value in entry.defaults().items():
        if name not in ("kind", "attack", "method", "backend"):
            parts.append(f"`{name}: {_yaml(value)}`")
    required = [n for n, f in entry.config.model_fields.items() if f.is_required()]
    return ", ".join([f"`{n}` (required)" for n in required] + parts)


def _yaml(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return str(value).lower()
    if hasattr(value, "model_dump"):
        return "{...}"
    return str(value)


def markdown() -> str:
    """The registries as the Markdown tables of docs/recipes.md (generated; do not edit)."""
    lines: list[str] = []
    for point in EXTENSION_POINTS:
        where = f" (`{point.recipe_key}`)" if point.recipe_key else ""
        lines += ["", f"### {point.title.capitalize()}{where}", ""]
        lines += ["| name | what it is | fields (defaults) |", "|---|---|---|"]
        for entry in point.load().entries():
            text = entry.description.replace("|", "\\|")
            name = f"{point.prefix}{entry.name}"
            lines.append(f"| `{name}` | {text} | {_fields(entry)} |")
    return "\n".join(lines[1:]) + "\n"


BEGIN, END = "<!-- registries:begin -->", "<!-- registries:end -->"


def with_tables(text: str) -> str:
    """``text`` (docs/recipes.md) with its generated block replaced by :func:`markdown`."""
    head, _, rest = text.partition(BEGIN)
    _, _, tail = rest.partition(END)
    return f"{head}{BEGIN}\n{markdown()}{END}{tail}"


if __name__ == "__main__":  # python -m robust_compress.catalogue docs/recipes.md
    import sys
    from pathlib import Path

    for name in sys.argv[1:]:
        Path(name).write_text(with_tables(Path(name).read_text()))
