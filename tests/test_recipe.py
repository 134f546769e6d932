"""Recipe schema, YAML positions, error reporting, templating, overrides and checks."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from robust_compress.errors import RecipeError, UserError
from robust_compress.recipe import (
    AdversaryConfig,
    AuditStage,
    ExportStage,
    OptimizerConfig,
    PruneStage,
    QuantizeStage,
    Recipe,
    TrainStage,
    dump_resolved,
    load_recipe,
    parse_recipe,
    recipe_json_schema,
)
from robust_compress.recipe.checks import check_against_model, check_order, match_modules
from robust_compress.stages.registry import stage_types

CORPUS = Path(__file__).parent / "malformed_recipes"
MALFORMED = sorted(CORPUS.glob("*.yaml"))

VALID = """\
name: demo
args: {eps: 0.1, ep: 2, tag: robust}
model: {spec: builtin:cnn_small}
data: {name: synthetic, train_subset: 256}
threat: {eps: "${eps}"}
stages:
  - train: {epochs: "${ep}", optimizer: {name: adam}}
  - prune: {ratio: 0.5, steps: 2, finetune_epochs: 1, adversary: {attack: pgd, steps: 3}}
  - quantize: {weight_bits: 8, qat_epochs: 1}
  - export:
  - audit: {attacks: [pgd, square], samples: 64, eps_sweep: [0.05, 0.1]}
"""


def messages_of(path: Path, overrides=()) -> list[str]:
    with pytest.raises(RecipeError) as info:
        load_recipe(path, overrides)
    return info.value.messages


# ----------------------------------------------------------------------------- malformed corpus


def test_corpus_is_large_enough():
    assert len(MALFORMED) >= 20


@pytest.mark.parametrize("path", MALFORMED, ids=[p.stem for p in MALFORMED])
def test_malformed_recipe_gives_positioned_errors(path):
    messages = messages_of(path)
    assert messages, "a RecipeError must carry at least one message"
    pattern = re.compile(rf"^{re.escape(str(path))}:\d+:\d+: \S")
    for message in messages:
        assert pattern.match(message), message
        assert "\n" not in message and "Traceback" not in message


EXPECTED_FIRST = {
    # file: (line, col, field, words in the message)
    "wrong_type_epochs": (5, 21, "stages.0.train.epochs", "expected an integer"),
    "unknown_top_level_key": (6, 1, "seeed", "Did you mean: seed?"),
    "unknown_nested_key": (5, 3, "data.batchsize", "Did you mean: batch_size?"),
    "unknown_deep_key": (9, 9, "stages.0.train.adversary.stpes", "unknown key"),
    "bad_indentation": (4, 2, "yaml", "expected <block end>"),
    "tab_character": (4, 1, "yaml", "tabs"),
    "negative_eps": (3, 27, "threat.eps", "greater than 0"),
    "linf_eps_above_one": (5, 8, "threat.eps", "below 1"),
    "linf_eps_one_sweep": (3, 27, "threat.eps", "below 1"),
    "linf_sweep_at_one": (6, 31, "stages.1.audit.eps_sweep.1", "below 1"),
    "unknown_dataset": (3, 14, "data.name", "Did you mean: fashion-mnist"),
    "unknown_builtin_model": (2, 15, "model.spec", "Did you mean: cnn_small"),
    "unknown_attack": (7, 27, "stages.0.train.adversary.attack", "Did you mean: pgd"),
    "unknown_stage_kind": (6, 5, "stages.1.prnue", "Did you mean: prune?"),
    "empty_stages": (4, 9, "stages", "at least one stage"),
    "two_keys_in_stage": (6, 5, "stages.1", "exactly one key"),
    "missing_name": (1, 1, "name", "missing required field"),
    "missing_stage_field": (6, 5, "stages.1.prune.ratio", "missing required field"),
    "ratio_out_of_range": (6, 20, "stages.1.prune.ratio", "less than 1"),
    "bit_width_16": (7, 20, "stages.1.quantize.weight_bits", "less than or equal to 8"),
    "python_object_tag": (2, 15, "model.spec", "not allowed"),
    "duplicate_keys": (4, 1, "threat", "duplicate key 'threat' (first defined on line 3)"),
    "unknown_variable": (7, 21, "stages.0.train.epochs", "${epoch}"),
    "list_instead_of_mapping": (3, 9, "threat", "expected a mapping"),
    "empty_file": (1, 1, "recipe", "empty"),
    "top_level_list": (1, 1, "recipe", "not a mapping"),
    "non_utf8": (1, 11, "yaml", "not UTF-8"),
    "stage_not_mapping": (6, 5, "stages.1", "- audit: {}"),
    "recursive_alias": (4, 9, "stages.1", "recursion"),
    "multiple_documents": (6, 1, "yaml", "single document"),
    "bad_ignore_regex": (7, 30, "stages.0.prune.ignore.1", "invalid regular expression"),
    "field_of_another_method": (6, 40, "stages.1.prune.rounds", "unknown key 'rounds'"),
    "sparse_without_reg": (6, 40, "stages.1.prune.sparse_epochs", "sparsity_reg > 0"),
    "trades_with_l2": (5, 21, "stages.0.train.method", "L-inf ball"),
    "round_to_with_hydra": (5, 40, "stages.0.prune.round_to", "unknown key 'round_to'"),
    "unknown_importance": (5, 25, "stages.0.prune.importance", "Did you mean: robust_taylor"),
    "unknown_prune_method": (5, 21, "stages.0.prune.method", "Did you mean: lottery?"),
    "admm_every_above_epochs": (5, 67, "stages.0.prune.admm_every", "cannot exceed admm_epochs"),
}


@pytest.mark.parametrize("stem", sorted(EXPECTED_FIRST))
def test_error_points_at_the_offending_value(stem):
    path = CORPUS / f"{stem}.yaml"
    line, col, field, words = EXPECTED_FIRST[stem]
    first = messages_of(path)[0]
    assert first.startswith(f"{path}:{line}:{col}: {field}: "), first
    assert words in first


def test_all_errors_are_reported_at_once_in_file_order():
    messages = messages_of(CORPUS / "many_errors.yaml")
    assert len(messages) >= 10
    positions = [tuple(map(int, m.split(":")[1:3])) for m in messages]
    assert positions == sorted(positions)
    fields = [m.split(": ")[1] for m in messages]
    for field in ("name", "seed", "model.spec", "threat.norm", "stages.2.export.int8"):
        assert field in fields


def test_deep_nesting_is_cut_without_recursion_error():
    messages = messages_of(CORPUS / "deep_nesting_garbage.yaml")
    assert any("nested more than" in m for m in messages)


# ----------------------------------------------------------------------------- valid recipes


def test_defaults_are_filled_and_templates_substituted():
    recipe = parse_recipe(VALID)
    assert recipe.threat.eps == 0.1 and recipe.threat.norm == "linf"
    train, prune, quantize, export, audit = recipe.stages
    assert isinstance(train.epochs, int) and train.epochs == 2
    assert train.optimizer.lr == pytest.approx(1e-3)  # adam's default
    assert train.adversary == AdversaryConfig(attack="pgd", steps=7, step=0.25 / 7, eps=0.1)
    assert prune.importance == "l1" and prune.ignore == [] and prune.lr_schedule == "cosine"
    assert prune.adversary.step == pytest.approx(2.5 * 0.1 / 3)
    assert prune.optimizer.lr == 0.1
    assert quantize.per_channel and quantize.act_bits == 8
    assert export.fp32 is True and export.int8 == "auto"
    assert audit.pgd_steps == 20 and audit.eps_sweep == [0.05, 0.1]
    assert [s.kind for s in recipe.stages] == ["train", "prune", "quantize", "export", "audit"]
    assert recipe.data.batch_size == 128 and recipe.seed == 0


def test_template_inside_text_and_typed_values():
    text = VALID.replace("name: demo", "name: run-${tag}-${eps}-${ep}")
    recipe = parse_recipe(text)
    assert recipe.name == "run-robust-0.1-2"


def test_fgsm_rs_method_implies_its_adversary():
    text = VALID.replace('epochs: "${ep}"', "epochs: 1, method: fgsm_rs")
    adversary = parse_recipe(text).stages[0].adversary
    assert adversary.attack == "fgsm_rs" and "steps" not in type(adversary).model_fields
    assert adversary.step == pytest.approx(0.125)


def test_scientific_notation_is_a_number():
    recipe = parse_recipe(VALID.replace("{name: adam}", "{name: adam, lr: 3e-4}"))
    assert recipe.stages[0].optimizer.lr == pytest.approx(3e-4)


def test_anchors_and_merge_keys_work():
    text = VALID.replace(
        "  - quantize: {weight_bits: 8, qat_epochs: 1}",
        "  - quantize: {qat_epochs: 1, adversary: &adv {attack: pgd, steps: 2}}\n"
        "  - train: {epochs: 1, adversary: {<<: *adv, steps: 5}}",
    )
    recipe = parse_recipe(text)
    assert recipe.stages[2].adversary.steps == 2
    assert recipe.stages[3].adversary.steps == 5 and recipe.stages[3].adversary.attack == "pgd"


def test_overrides_apply_and_name_bad_paths():
    overrides = ["stages.0.train.epochs=5", "args.eps=0.2", "stages.4.audit.attacks=[fgsm]"]
    recipe = parse_recipe(VALID, overrides=overrides)
    assert recipe.stages[0].epochs == 5 and recipe.threat.eps == 0.2
    assert recipe.stages[4].attacks == ["fgsm"]
    with pytest.raises(RecipeError) as info:
        parse_recipe(VALID, overrides=["stages.0.train.epoch=5", "stages.1.train.epochs=1"])
    first, second = info.value.messages
    assert first.startswith("--set stages.0.train.epoch=5: ") and "Did you mean: epochs?" in first
    assert second.startswith("--set stages.1.train.epochs=1: ") and "prune stage" in second


def test_override_value_errors_name_the_override():
    with pytest.raises(RecipeError) as info:
        parse_recipe(VALID, "v.yaml", ["stages.0.train.epochs=x", "threat.norm=l3"])
    assert sorted(info.value.messages) == [
        "--set stages.0.train.epochs=x: expected an integer, got a string 'x'",
        "--set threat.norm=l3: unknown norm 'l3'. Did you mean: l2?",
    ]


def test_dump_resolved_round_trips():
    recipe = parse_recipe(VALID)
    text = dump_resolved(recipe)
    assert "${" not in text
    again = parse_recipe(text)
    assert again == recipe
    assert yaml.safe_load(text)["stages"][1]["prune"]["ratio"] == 0.5


def test_json_schema_lists_stage_kinds():
    schema = json.loads(json.dumps(recipe_json_schema()))
    items = schema["properties"]["stages"]["items"]["oneOf"]
    kinds = {next(iter(item["properties"])) for item in items}
    assert kinds == {"train", "prune", "sensitivity", "search", "quantize", "export", "audit"}
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) >= {"name", "model", "threat", "stages"}


def test_stage_classes_and_python_construction():
    assert {cls.kind for cls in stage_types().values()} == set(stage_types())
    assert (TrainStage.kind, PruneStage.kind, QuantizeStage.kind) == ("train", "prune", "quantize")
    assert (ExportStage.kind, AuditStage.kind) == ("export", "audit")
    recipe = Recipe(
        name="py",
        model={"spec": "builtin:cnn_tiny"},
        threat={"eps": 0.1},
        stages=[TrainStage(epochs=1), {"audit": None}],
    )
    assert recipe.stages[1].samples == 1000 and recipe.stages[0].adversary.eps == 0.1
    assert OptimizerConfig(name="adam").lr == 1e-3


def test_missing_file_is_a_recipe_error(tmp_path):
    with pytest.raises(RecipeError) as info:
        load_recipe(tmp_path / "nope.yaml")
    assert isinstance(info.value, UserError)
    assert "no such recipe file" in info.value.messages[0]


def test_unknown_key_in_a_file_written_by_a_user(tmp_path):
    path = tmp_path / "r.yaml"
    path.write_text(VALID.replace("samples: 64", "sample: 64"))
    (message,) = messages_of(path)
    assert message.startswith(f"{path}:11:37: stages.4.audit.sample: unknown key 'sample'.")
    assert message.endswith("Did you mean: samples?")


def test_cross_field_rules_are_positioned():
    text = VALID.replace("finetune_epochs: 1", "finetune_epochs: 1, schedule_epochs: 3")
    text = text.replace("train_subset: 256", "train_subset: 256, holdout: 300")
    with pytest.raises(RecipeError) as info:
        parse_recipe(text, "r.yaml")
    assert [m.split(": ")[0] for m in info.value.messages] == ["r.yaml:4:53", "r.yaml:8:72"]


PRUNE_ONLY = """\
name: prune
model: {spec: builtin:cnn_small}
threat: {eps: 0.1}
stages:
  - prune: {ratio: 0.5, BLOCK}
"""


def prune_messages(block: str) -> list[str]:
    with pytest.raises(RecipeError) as info:
        parse_recipe(PRUNE_ONLY.replace("BLOCK", block), "p.yaml")
    return info.value.messages


def test_a_prune_block_takes_only_its_methods_fields():
    (message,) = prune_messages("method: hydra, rounds: 3")
    assert message.startswith("p.yaml:5:40: stages.0.prune.rounds: unknown key 'rounds'.")
    assert "hydra_form" in message and "round_epochs" not in message
    (message,) = prune_messages("method: lottery, round_epoch: 2")
    assert "Did you mean: round_epochs" in message
    (message,) = prune_messages("importance: l2, score_epochs: 2")  # method magnitude
    assert "stages.0.prune.score_epochs: unknown key" in message
    stage = parse_recipe(PRUNE_ONLY.replace("BLOCK", "method: edge_popup")).stages[0]
    assert type(stage).__name__ == "EdgePopupPrune" and stage.score_epochs == 1


def test_prune_method_rules_keep_their_messages():
    (message,) = prune_messages("sparse_epochs: 1, sparsity_reg: 1e-4, importance: taylor")
    assert "stages.0.prune.importance: sparse training ranks channels" in message
    assert message.endswith("use l1, l2 or lamp")
    (message,) = prune_messages("method: lottery, round_epochs: 2, rewind_epoch: 2")
    assert "stages.0.prune.rewind_epoch: rewind_epoch (2) must be smaller" in message
    (message,) = prune_messages("method: hydra, hydra_form: unstructured, ignore: [head]")
    assert "stages.0.prune.ignore: hydra_form unstructured" in message


def test_robust_taylor_gets_its_adversary_when_the_recipe_loads():
    recipe = parse_recipe(PRUNE_ONLY.replace("BLOCK", "importance: robust_taylor"))
    adversary = recipe.stages[0].adversary
    assert adversary.attack == "pgd" and adversary.eps == 0.1 and adversary.steps == 7
    assert adversary.step == pytest.approx(2.5 * 0.1 / 7)
    assert parse_recipe(dump_resolved(recipe)) == recipe
    stated = "importance: robust_taylor, adversary: {attack: fgsm}"
    assert parse_recipe(PRUNE_ONLY.replace("BLOCK", stated)).stages[0].adversary.attack == "fgsm"
    assert parse_recipe(PRUNE_ONLY.replace("BLOCK", "importance: l1")).stages[0].adversary is None


def test_a_registered_prune_method_and_criterion_are_accepted():
    from robust_compress.pruning.configs import PruneStage as Base
    from robust_compress.pruning.registry import IMPORTANCE, PRUNE_METHODS

    class HalvePrune(Base):
        method: str = "halve"
        passes: int = 1

    PRUNE_METHODS.add("halve", "my_plugin:run", config=HalvePrune)
    IMPORTANCE.add("my_norm", "my_plugin:build", magnitude=True)
    try:
        stage = parse_recipe(PRUNE_ONLY.replace("BLOCK", "method: halve, passes: 2")).stages[0]
        assert isinstance(stage, HalvePrune) and stage.passes == 2
        block = "importance: my_norm, sparse_epochs: 1, sparsity_reg: 1e-4"
        assert parse_recipe(PRUNE_ONLY.replace("BLOCK", block)).stages[0].importance == "my_norm"
    finally:
        PRUNE_METHODS.remove("halve")
        IMPORTANCE.remove("my_norm")


def test_docs_list_every_prune_method_field():
    from robust_compress.pruning.registry import PRUNE_METHODS

    text = DOCS.read_text()
    for entry in PRUNE_METHODS.entries():
        for field in entry.config.model_fields:
            assert f"| `{field}` |" in text, f"{entry.config.__name__}.{field} is not documented"


# ----------------------------------------------------------------------------- checks


def test_check_order_rejects_prune_after_quantize():
    recipe = parse_recipe(VALID)
    assert check_order(recipe) == ([], [])
    stages = recipe.stages
    recipe.stages = [stages[0], stages[2], stages[1], stages[3]]
    errors, _ = check_order(recipe)
    assert len(errors) == 1 and "prune before quantizing" in errors[0]
    assert errors[0].startswith("stages.2.prune: ")
    recipe.stages = [stages[0], ExportStage(int8=True)]
    assert "int8 export needs a quantize stage" in check_order(recipe)[0][0]


def test_check_against_model():
    from robust_compress.models.specs import build_model

    model = build_model("builtin:cnn_small")
    recipe = parse_recipe(VALID, overrides=["stages.2.quantize.weight_bits=3"])
    recipe.stages[1].ignore = ["features.0", "re:features\\.[0-9]+", "feature.0", "re:nothing.*"]
    recipe.stages[4].eps_sweep = [0.1, -0.5, 0.0]
    errors, warnings = check_against_model(recipe, model)
    assert len(warnings) == 1 and "may" in warnings[0] and "weight_bits" in warnings[0]
    ignore_errors = [e for e in errors if ".ignore." in e]
    assert [e.split(":")[0] for e in ignore_errors] == ["stages.1.prune.ignore.2"] + [
        "stages.1.prune.ignore.3"
    ]
    assert "Did you mean: features.0" in ignore_errors[0]
    assert sum("eps_sweep" in e for e in errors) == 2


def test_match_modules():
    names = ["features", "features.0", "features.1", "head"]
    assert match_modules(names, "features.0") == ["features.0"]
    assert match_modules(names, "re:features\\.\\d") == ["features.0", "features.1"]
    assert match_modules(names, "re:feat") == []


# ----------------------------------------------------------------------------- docs


DOCS = Path(__file__).parent.parent / "docs" / "recipes.md"


def test_docs_example_recipe_is_valid():
    text = DOCS.read_text()
    example = text.split("```yaml\n", 1)[1].split("```", 1)[0]
    recipe = parse_recipe(example, "docs/recipes.md")
    assert [s.kind for s in recipe.stages] == ["train", "prune", "quantize", "export", "audit"]


def test_docs_list_every_field():
    from robust_compress.catalogue import config_classes
    from robust_compress.recipe.schema import DataConfig, ModelConfig, ThreatConfig

    text = DOCS.read_text()
    models = [Recipe, ModelConfig, DataConfig, ThreatConfig, AdversaryConfig, OptimizerConfig]
    for model in [*models, *config_classes()]:
        for field in model.model_fields:
            assert f"| `{field}` |" in text, f"{model.__name__}.{field} is not documented"


def test_docs_tables_are_the_registries():
    from robust_compress.catalogue import with_tables

    text = DOCS.read_text()
    assert with_tables(text) == text, "run: python -m robust_compress.catalogue docs/recipes.md"


def test_apgd_steps_reaches_the_audit(synthetic_test, trained_small):
    from dataclasses import replace
    from types import SimpleNamespace

    from robust_compress.audit.runner import run_audit
    from robust_compress.stages.audit import audit_options

    recipe = parse_recipe(VALID, overrides=["stages.4.audit.apgd_steps=3"])
    options = audit_options(SimpleNamespace(recipe=recipe), recipe.stages[4])
    assert options.apgd_steps == 3 and options.pgd_steps == 20
    options = replace(options, attacks=["apgd_ce"], samples=16, sanity_checks=False, eps_sweep=[])
    result = run_audit(trained_small, synthetic_test, options)
    assert result["per_attack"]["apgd_ce"]["settings"]["steps"] == 3
