"""The audit stage's optional corruption and smoothing sections: recipe switches, report."""

import json

import pytest

from robust_compress.engine.session import Session
from robust_compress.errors import RecipeError
from robust_compress.recipe.loader import dump_resolved, parse_recipe
from tests.tiny import tiny_session

BEYOND = (
    "      corruptions: {samples: 16, kinds: [gaussian_noise, jpeg], severities: [1, 5]}\n"
    "      smoothing: {samples: 4, n0: 10, n: 50, radii: [0.1, 0]}\n"
)
AUDIT = "  - audit:\n      samples: 8\n      attacks: [fgsm]\n      sanity_checks: false\n"

RUN_RECIPE = (
    "name: beyond-tiny\nseed: 0\nmodel: {spec: builtin:cnn_tiny}\n"
    "data: {name: synthetic, batch_size: 128, train_subset: 256}\n"
    "threat: {norm: linf, eps: 0.15}\nstages:\n"
    "  - train: {method: natural, epochs: 1}\n"
    "  - quantize: {qat_epochs: 0, calib_batches: 2}\n"
    "  - export: {}\n" + AUDIT + BEYOND
)


def _audit_block(text: str):
    recipe = parse_recipe(
        "name: t\nmodel: {spec: builtin:cnn_tiny}\ndata: {name: synthetic}\n"
        "threat: {eps: 0.1}\nstages:\n  - audit:\n" + text
    )
    return recipe, recipe.stages[0]


def test_both_sections_are_off_by_default_and_resolve_when_on():
    _, stage = _audit_block("      samples: 8\n")
    assert stage.corruptions is None and stage.smoothing is None
    recipe, stage = _audit_block("      corruptions: {}\n      smoothing: {sigma: 0.12}\n")
    assert stage.corruptions.severities == [1, 2, 3, 4, 5] and len(stage.corruptions.kinds) >= 7
    assert stage.smoothing.radii == [0, 0.25, 0.5, 0.75, 1.0] and stage.smoothing.n == 1000
    assert parse_recipe(dump_resolved(recipe)) == recipe


@pytest.mark.parametrize(
    "text, words",
    [
        ("corruptions: {kinds: [gausian_noise]}", "Did you mean: gaussian_noise"),
        ("corruptions: {severities: [6]}", "less than or equal to 5"),
        ("corruptions: {kinds: [jpeg, jpeg]}", "listed more than once: jpeg"),
        ("smoothing: {alpha: 0.6}", "stages.0.audit.smoothing.alpha"),
        ("smoothing: {sigmas: [0.25]}", "unknown key 'sigmas'"),
    ],
)
def test_bad_switches_are_recipe_errors(text, words):
    with pytest.raises(RecipeError, match=words):
        _audit_block(f"      {text}\n")


def test_run_writes_both_sections_for_the_dense_model_and_the_deployed_file(tmp_path):
    out = tmp_path / "run"
    session = Session(parse_recipe(RUN_RECIPE), out)
    session.setup()
    session.run()
    report = json.loads((out / "report.json").read_text())
    corruptions, smoothing = report["audit"]["corruptions"], report["audit"]["smoothing"]
    assert list(corruptions) == ["dense", "int8_onnx"] == list(smoothing)
    cells = corruptions["int8_onnx"]["per_corruption"]
    assert list(cells) == ["gaussian_noise", "jpeg"]
    assert [c["severity"] for c in cells["jpeg"]] == [1, 5]
    assert corruptions["dense"]["samples"] == 16 and len(cells["jpeg"][0]["ci"]) == 2
    deployed = smoothing["int8_onnx"]
    assert len(deployed["radii"]) == 4 and [c["radius"] for c in deployed["certified"]] == [0, 0.1]
    assert deployed["n"] == 50 and deployed["alpha"] == 0.001
    _check_paired(report["audit"], corruptions)
    _check_gallery_predictions_are_the_files(session, out)
    text = (out / "report.md").read_text()
    assert "## Beyond the ball: common corruptions" in text
    assert "| images dense gets right more often | images final gets right more often |" in text
    assert "| L2 radius | certified only for dense |" in text
    assert "## Beyond the ball: randomized smoothing" in text and "model.int8.onnx" in text
    _check_cli(out)


def _check_paired(audit: dict, corruptions: dict) -> None:
    """The paired counts are those of the two models' own per-image outcomes."""
    from robust_compress.audit.stats import sign_test

    masks = [
        [c["correct_mask"] for row in corruptions[k]["per_corruption"].values() for c in row]
        for k in ("dense", "int8_onnx")
    ]
    assert len(masks[0]) == 2 * 2 and {len(m) for m in masks[0]} == {16}
    assert audit["corruptions_paired"]["all"] == sign_test(*masks).as_dict()
    assert [p["radius"] for p in audit["smoothing_paired"]] == [0, 0.1]


def _check_gallery_predictions_are_the_files(session, out) -> None:
    """With the deployed file as the headline, the gallery shows the file's predictions."""
    from robust_compress.audit.predict import as_predictor, predicted_labels
    from robust_compress.report.gallery import gallery

    audit = {"dense": {"robust_mask": "11110000"}, "int8_onnx": {"robust_mask": "01010000"}}
    items = gallery(session, audit)
    assert [g["index"] for g in items] == [0, 2] and {g["predicted_by"] for g in items} == {
        "deployed file"
    }
    x = session.test_data.head(3).x[[0, 2]]
    with as_predictor(out / "model.int8.onnx") as predict:
        assert [g["final_clean"] for g in items] == predicted_labels(predict, x, 8).tolist()
    audit = {"dense": audit["dense"], "final": audit["int8_onnx"]}
    assert {g["predicted_by"] for g in gallery(session, audit)} == {"final model"}


def _check_cli(out) -> None:
    """``robust-compress beyond RUN`` gives the stage's figures for the same settings."""
    from typer.testing import CliRunner

    from robust_compress.cli.main import app

    (out / "recipe.resolved.yaml").write_text(RUN_RECIPE)  # written by the CLI's `run`
    args = ["beyond", str(out), "--no-corruptions", "--smooth-samples", "4", "--n0", "10"]
    result = CliRunner().invoke(app, [*args, "--n", "50", "--radii", "0.1,0"])
    assert result.exit_code == 0, result.output
    assert "randomized smoothing" in result.output
    found = json.loads((out / "audit" / "beyond" / "beyond.json").read_text())
    report = json.loads((out / "report.json").read_text())["audit"]["smoothing"]
    for key in ("dense", "int8_onnx"):
        assert found["smoothing"][key]["radii"] == report[key]["radii"]
    assert "corruptions" not in found
    assert "audit/beyond/beyond.json" in json.loads((out / "manifest.json").read_text())["files"]
    bad = CliRunner().invoke(app, ["beyond", str(out), "--radii", "a,b"])
    assert bad.exit_code == 2 and "--radii" in bad.output


def test_without_an_integer_file_the_final_torch_model_is_used():
    session = tiny_session(
        "beyond-torch", "  - train: {method: natural, epochs: 1}\n" + AUDIT + BEYOND
    )
    audit = session.run()["audit"]
    assert list(audit["corruptions"]) == ["final"] == list(audit["smoothing"])
    assert audit["final"]["samples"] == 8  # the attack audit ran as before
