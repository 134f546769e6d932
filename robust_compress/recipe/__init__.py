"""Recipes: the YAML front end (schema, positions, errors, ``${var}``, ``--set``, checks).

The public API in one import::

    from robust_compress.recipe import load_recipe, parse_recipe, dump_resolved, Recipe
"""

from robust_compress.attacks.configs import AdversaryConfig
from robust_compress.config import BaseStage, OptimizerConfig
from robust_compress.pruning.configs import PruneStage
from robust_compress.quantization.configs import QuantizeStage
from robust_compress.recipe.loader import (
    dump_resolved,
    load_recipe,
    load_run_recipe,
    parse_recipe,
    recipe_json_schema,
)
from robust_compress.recipe.schema import DataConfig, ModelConfig, Recipe, ThreatConfig
from robust_compress.stages.configs import AuditStage, ExportStage, TrainStage

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
    "load_run_recipe",
    "parse_recipe",
    "recipe_json_schema",
]
