"""Recipes: YAML files that say what to compress, how, and how to audit it.

Public API::

    recipe = load_recipe("recipes/fmnist.yaml", overrides=["stages.0.train.epochs=2"])
    recipe = parse_recipe(text, source="fmnist.yaml")
    print(dump_resolved(recipe))         # defaults filled in, ${...} substituted
    schema = recipe_json_schema()

Every problem is reported at once in a :class:`~robust_compress.errors.RecipeError`, one
``file:line:col: field.path: message`` line each (``--set TEXT: message`` for an override).
The YAML is read as data only (``yaml.safe_load``'s rules: no tags that build objects).
The schema classes live in :mod:`robust_compress.recipe.schema` and are re-exported here;
docs/recipes.md is the field-by-field reference.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import ValidationError

from robust_compress.errors import RecipeError
from robust_compress.recipe.errors import Locator
from robust_compress.recipe.overrides import apply_overrides
from robust_compress.recipe.schema import (
    AdversaryConfig,
    AuditStage,
    BaseStage,
    DataConfig,
    ExportStage,
    ModelConfig,
    OptimizerConfig,
    PruneStage,
    QuantizeStage,
    Recipe,
    ThreatConfig,
    TrainStage,
)
from robust_compress.recipe.template import substitute
from robust_compress.recipe.yaml_nodes import RecipeDumper, read_yaml
from robust_compress.stages.registry import stage_types

__all__ = [
    "AdversaryConfig",
    "AuditStage",
    "BaseStage",
    "DataConfig",
    "ExportStage",
    "ModelConfig",
    "OptimizerConfig",
    "PruneStage",
    "QuantizeStage",
    "Recipe",
    "ThreatConfig",
    "TrainStage",
    "dump_resolved",
    "load_recipe",
    "parse_recipe",
    "recipe_json_schema",
]

logger = logging.getLogger(__name__)


def load_recipe(path: str | Path, overrides: Sequence[str] = ()) -> Recipe:
    """Read and validate a recipe file.

    Args:
        path: The YAML file.
        overrides: ``PATH=VALUE`` strings applied before validation (``--set`` in the CLI).

    Returns:
        The validated, resolved recipe.

    Raises:
        RecipeError: The file is missing or unreadable, or the recipe is invalid.
    """
    source = str(path)
    try:
        raw = Path(path).read_bytes()
    except FileNotFoundError:
        raise RecipeError([f"{source}: no such recipe file"]) from None
    except OSError as exc:
        raise RecipeError([f"{source}: cannot read the recipe: {exc.strerror or exc}"]) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw.count(b"\n", 0, exc.start) + 1
        col = exc.start - (raw.rfind(b"\n", 0, exc.start) + 1) + 1
        byte = raw[exc.start]
        msg = f"{source}:{line}:{col}: yaml: the file is not UTF-8 text (byte 0x{byte:02x})"
        raise RecipeError([msg]) from None
    return parse_recipe(text, source=source, overrides=overrides)


def parse_recipe(text: str, source: str = "<string>", overrides: Sequence[str] = ()) -> Recipe:
    """Validate a recipe given as YAML text.

    Args:
        text: The YAML text.
        source: The name used in messages (usually the file's path).
        overrides: ``PATH=VALUE`` strings applied before validation.

    Returns:
        The validated, resolved recipe.

    Raises:
        RecipeError: With one message per problem, each with its position.
    """
    doc = read_yaml(text)
    locator = Locator(source, doc)
    found = [locator.issue(issue) for issue in doc.issues]
    if any(issue.syntax for issue in doc.issues) or () in doc.bad:
        _raise(found)
    data = doc.data
    if not isinstance(data, dict):
        what = "empty" if data is None else f"a {type(data).__name__}, not a mapping"
        text = f"the recipe is {what}; it needs the fields name, model, threat and stages"
        _raise([*found, locator.message((), text)])
    applied, override_errors = apply_overrides(data, overrides)
    locator.overrides = applied
    data, problems = substitute(data)
    for path, message in problems:
        found.append(locator.message(path, message))
        doc.bad.add(path)
    try:
        recipe = Recipe.model_validate(data)
    except ValidationError as exc:
        found.extend(locator.errors(exc.errors(include_url=False)))
        recipe = None
    found.extend(((2, 0, 0), message) for message in override_errors)
    if recipe is None and not found:
        found.append(locator.message((), "the recipe is invalid"))
    if found or recipe is None:
        _raise(found)
    logger.debug("recipe %r from %s is valid", recipe.name, source)
    return recipe


def _raise(found: list[tuple[tuple, str]]) -> None:
    found = sorted(found, key=lambda item: item[0])
    messages = list(dict.fromkeys(message for _, message in found))
    raise RecipeError(messages)


def dump_resolved(recipe: Recipe) -> str:
    """Return the recipe as YAML with every default filled in and ``${...}`` substituted.

    ``parse_recipe(dump_resolved(r))`` gives a recipe equal to ``r``.
    """
    data = recipe.model_dump(mode="python")
    return yaml.dump(
        data, Dumper=RecipeDumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def recipe_json_schema() -> dict[str, Any]:
    """Return the JSON schema of a recipe file (for editors and validators).

    Each stage item is a mapping with one key naming its kind, whose value is the stage's
    fields (or null for all defaults).
    """
    schema = Recipe.model_json_schema()
    items = []
    for kind, cls in stage_types().items():
        ref = {"anyOf": [{"$ref": f"#/$defs/{cls.__name__}"}, {"type": "null"}]}
        items.append(
            {
                "type": "object",
                "properties": {kind: ref},
                "required": [kind],
                "additionalProperties": False,
            }
        )
    schema["properties"]["stages"]["items"] = {"oneOf": items}
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema
