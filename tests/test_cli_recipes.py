import json
import re
from pathlib import Path

import pytest
from typer.testing import CliRunner

from robust_compress.cli.main import app

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = sorted((ROOT / "recipes").rglob("*.yaml"))
MALFORMED = sorted((ROOT / "tests" / "malformed_recipes").glob("*.yaml"))
runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.name)
def test_shipped_recipes_validate(path):
    result = invoke("validate", path)
    assert result.exit_code == 0, result.output
    assert "ok (" in result.output


def test_quickstart_is_shipped():
    assert ROOT / "recipes" / "quickstart.yaml" in SHIPPED


@pytest.mark.parametrize("path", MALFORMED, ids=lambda p: p.name)
def test_malformed_recipes_exit_2_with_position(path):
    result = invoke("validate", path)
    assert result.exit_code == 2
    assert "Traceback" not in result.output
    assert re.search(rf"{re.escape(str(path))}:\d+:\d+: ", result.output), result.output


def test_malformed_corpus_is_large_enough():
    assert len(MALFORMED) >= 20


def test_run_refuses_a_folder_that_is_not_a_run(tmp_path):
    (tmp_path / "precious.txt").write_text("mine")
    result = invoke("run", ROOT / "recipes" / "quickstart.yaml", "--out", tmp_path, "--force")
    assert result.exit_code == 2 and "not a robust-compress run folder" in result.output
    assert (tmp_path / "precious.txt").read_text() == "mine"


def test_run_refuses_output_inside_the_package():
    import robust_compress

    inside = Path(robust_compress.__file__).parent / "runs"
    result = invoke("run", ROOT / "recipes" / "quickstart.yaml", "--out", inside)
    assert result.exit_code == 2 and "inside the installed package" in result.output
    assert not inside.exists()


def test_set_override_error_is_reported(tmp_path):
    result = invoke(
        "validate", ROOT / "recipes" / "quickstart.yaml", "--set", "stages.0.train.epochs=-1"
    )
    assert result.exit_code == 2 and "--set stages.0.train.epochs=-1" in result.output


def test_resume_and_force_together_is_an_error(tmp_path):
    result = invoke(
        "run", ROOT / "recipes" / "quickstart.yaml", "--out", tmp_path / "r", "--resume", "--force"
    )
    assert result.exit_code == 2 and "contradict" in result.output


def test_schema_is_json_with_stage_kinds():
    result = invoke("schema")
    assert result.exit_code == 0
    text = json.dumps(json.loads(result.output))
    for kind in ("train", "prune", "quantize", "export", "audit"):
        assert kind in text


def test_list_names_everything():
    result = invoke("list")
    assert result.exit_code == 0
    for name in ("builtin:cnn_small", "fashion-mnist", "robust_taylor", "apgd_ce", "quantize"):
        assert name in result.output


def test_force_replaces_an_earlier_run(tmp_path):
    from robust_compress.engine.runfolder import MANIFEST, RunFolder

    first = RunFolder(tmp_path / "run")
    first.write_text("report.md", "old")
    again = RunFolder(tmp_path / "run", force=True)
    again.write_text("report.md", "new")
    assert not (tmp_path / "run" / "report.md").read_text() == "old"
    assert "report.md" in again.manifest()["files"] and (tmp_path / "run" / MANIFEST).is_file()
