"""``robust-compress check``: the CI gate passes, fails a line per threshold, refuses bad input."""

import json

import pytest
from typer.testing import CliRunner

from robust_compress.cli.main import app

runner = CliRunner()

REPORT = {
    "metrics": {"dense": {"robust": 0.70}, "final": {"robust": 0.66}},
    "models": {"dense": {"macs": 1_000_000}, "final": {"macs": 400_000}},
    "audit": {
        "final": {"checks": [{"name": "threat_model", "passed": True}]},
        "dense": {"checks": [{"name": "pgd_convergence", "passed": False}]},
    },
}


@pytest.fixture
def run(tmp_path):
    (tmp_path / "report.json").write_text(json.dumps(REPORT))
    return tmp_path


def test_passes_when_every_threshold_holds(run):
    args = ["check", str(run), "--max-robust-drop", "5", "--min-robust", "0.6"]
    result = runner.invoke(app, [*args, "--max-macs-ratio", "0.5"])
    assert result.exit_code == 0, result.output
    assert result.output.count("ok ") == 3
    assert "FAIL" not in result.output


def test_fails_with_one_line_per_failed_threshold(run):
    args = ["check", str(run), "--max-robust-drop", "2", "--min-robust", "66.5"]
    result = runner.invoke(app, [*args, "--max-macs-ratio", "0.5", "--require-checks"])
    assert result.exit_code == 1
    failed = [line for line in result.output.splitlines() if line.startswith("FAIL")]
    assert len(failed) == 3
    assert "robust drop: 4.0 points" in failed[0]
    assert "robust accuracy: 66.0%, min 66.5%" in failed[1]
    assert "dense: pgd_convergence" in failed[2]


@pytest.mark.parametrize("what", ["no folder", "no report", "no threshold", "bad json"])
def test_bad_input_exits_2(tmp_path, what):
    folder = tmp_path / "run"
    if what != "no folder":
        folder.mkdir()
    if what in ("no threshold", "bad json"):
        (folder / "report.json").write_text("{" if what == "bad json" else json.dumps(REPORT))
    args = ["check", str(folder)] + ([] if what == "no threshold" else ["--min-robust", "0.5"])
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    assert "error:" in result.output
    assert "Traceback" not in result.output
