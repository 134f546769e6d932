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

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.errors import RecipeError
from robust_compress.recipe.errors import Locator
from robust_compress.recipe.overrides import apply_overrides
from robust_compress.recipe.schema import Recipe
from robust_compress.recipe.template import substitute
from robust_compress.recipe.yaml_nodes import RecipeDumper, read_yaml
from robust_compress.stages.registry import stage_types

__all__ = [
    "dump_resolved",
    "load_recipe",
    "load_run_recipe",
    "migrate_resolved",
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


def load_run_recipe(path: str | Path) -> Recipe:
    """Read a run folder's ``recipe.resolved.yaml``, written by this version or an older one.

    Older versions listed every field of one shared prune-stage class and of one adversary
    class; their recipes were valid, so the fields that do not belong to the named method or
    attack held inert values. Those are dropped (with a log line) when the file does not
    validate as it is.

    Raises:
        RecipeError: The file is not valid even so (the errors of the file as it is).
    """
    try:
        return load_recipe(path)
    except RecipeError as first:
        data = yaml.safe_load(Path(path).read_text())
        migrated, dropped = migrate_resolved(data)
        if not dropped:
            raise
        try:
            recipe = parse_recipe(yaml.safe_dump(migrated, sort_keys=False), source=str(path))
        except RecipeError:
            raise first from None
        logger.info("%s: read as written by an older version (ignored %s)", path, dropped)
        return recipe


def migrate_resolved(data: Any) -> tuple[Any, list[str]]:
    """Drop the fields of a resolved recipe that its stages' method or attack does not have."""
    from robust_compress.config import concrete_model

    dropped: list[str] = []

    def keep(block: Any, model: Any, where: str) -> Any:
        member = concrete_model(model, block)
        if not isinstance(block, dict) or member is model:
            return block
        for key in [k for k in block if k not in member.model_fields]:
            dropped.append(f"{where}.{key}")
        return {k: v for k, v in block.items() if k in member.model_fields}

    stages = data.get("stages") if isinstance(data, dict) else None
    for i, item in enumerate(stages if isinstance(stages, list) else []):
        if not (isinstance(item, dict) and len(item) == 1):
            continue
        kind, block = next(iter(item.items()))
        where = f"stages.{i}.{kind}"
        block = keep(block, stage_types().get(kind), where)
        if isinstance(block, dict) and isinstance(block.get("adversary"), dict):
            block["adversary"] = keep(block["adversary"], AdversaryConfig, f"{where}.adversary")
        item[kind] = block
    return data, dropped


def _raise(found: list[tuple[tuple, str]]) -> None:
    found = sorted(found, key=lambda item: item[0])
    messages = list(dict.fromkeys(message for _, message in found))
    raise RecipeError(messages)


def dump_resolved(recipe: Recipe) -> str:
    """Return the recipe as YAML with every default filled in and ``${...}`` substituted.

    ``parse_recipe(dump_resolved(r))`` gives a recipe equal to ``r``.
    """
    data = recipe.model_dump(mode="python", serialize_as_any=True)
    return yaml.dump(
        data, Dumper=RecipeDumper, sort_keys=False, allow_unicode=True, default_flow_style=False
    )


def recipe_json_schema() -> dict[str, Any]:
    """Return the JSON schema of a recipe file (for editors and validators).

    Each stage item is a mapping with one key naming its kind, whose value is the stage's
    fields (or null for all defaults). A config family (attacks, prune methods, quantizer
    backends) is any one of its registered members, plugins' included.
    """
    from pydantic.json_schema import models_json_schema

    from robust_compress.catalogue import config_classes
    from robust_compress.config import Dispatching

    classes = [Recipe, *config_classes()]
    _, top = models_json_schema([(c, "validation") for c in classes])
    defs = top["$defs"]
    schema = defs.pop("Recipe")
    for cls in _family_bases(Dispatching):
        members = [e.config for e in cls.registry().entries() if e.config is not None]
        refs = [{"$ref": f"#/$defs/{m.__name__}"} for m in dict.fromkeys(members)]
        defs[cls.__name__] = {"description": cls.__doc__.splitlines()[0], "anyOf": refs}
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
    schema["$defs"] = defs
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    return schema


def _family_bases(root: type) -> list[type]:
    """Every dispatching base class below ``root`` (their members are found by registry)."""
    found, todo = [], list(root.__subclasses__())
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if getattr(cls, "__family_base__", None) is cls:
            found.append(cls)
    return found
