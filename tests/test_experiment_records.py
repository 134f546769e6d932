"""`make results` across sittings: records of finished runs, and runs the guard stopped (issue 20).

A fresh checkout has no ``runs/``: the committed records of experiments/records.py must bring
finished runs back (a base with the weights its runs start from), and a run the dead-network
guard stopped must show on the page as a stopped row that loses its comparisons, not as a
claim "not measured".
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

import claims as plan  # noqa: E402
import records  # noqa: E402
import results  # noqa: E402
from results_doc import write_docs  # noqa: E402

from robust_compress.models.specs import load_state_dict_file  # noqa: E402
from robust_compress.recipe.loader import dump_resolved, load_recipe  # noqa: E402

RUNS = {r.name: r for c in plan.claims() for k, _ in c.rows for r in plan.seeded_runs(c, k)}
RUNS.update(plan.all_bases(plan.claims()))
STOP = (
    "stage 0:prune left a dead network: its outputs do not depend on the input (the same "
    "logits for 16 different training images). Lower the stage's ratio (dead-network guard: "
    "the run stops here, before export and audit)."
)


def _resolved(name: str, runs_dir: Path) -> str:
    run = RUNS[name]
    recipe = results.RECIPES / f"{run.recipe}.yaml"
    return dump_resolved(load_recipe(recipe, results.overrides(run, runs_dir)))


def _finished(folder: Path, name: str, runs_dir: Path, checkpoint: bool = False) -> None:
    folder.mkdir(parents=True)
    (folder / "manifest.json").write_text("{}")
    (folder / "report.json").write_text(json.dumps({"seed": RUNS[name].seed}))
    (folder / "recipe.resolved.yaml").write_text(_resolved(name, runs_dir))
    (folder / "run.log").write_text("2026-12-03 10:00:00,000 robust_compress.cli.run INFO x\n")
    if checkpoint:
        (folder / "checkpoints").mkdir()
        state = {"weight": torch.ones(3), "bias": torch.zeros(3)}
        payload = {"model": {"state_dict": state}, "optimizer": {"state": {"m": torch.ones(9)}}}
        torch.save(payload, folder / "checkpoints" / "last.pt")


def test_a_base_record_restores_into_a_fresh_checkout_and_is_reused(tmp_path):
    old, new, kept = tmp_path / "old", tmp_path / "new", tmp_path / "records"
    _finished(old / "base-pgd", "base-pgd", old, checkpoint=True)
    _finished(old / "c1-admm", "c1-admm", old)  # its ${base} names old/base-pgd/...
    records.save(old / "base-pgd", "base-pgd", base=True, records=kept)
    records.save(old / "c1-admm", "c1-admm", base=False, records=kept)
    assert not (kept / "c1-admm" / "checkpoints").exists()
    saved = torch.load(kept / "base-pgd" / "checkpoints" / "last.pt", weights_only=True)
    assert set(saved) == {"model"}  # the optimiser state is left out
    for name in ("base-pgd", "c1-admm"):
        assert records.restore(new / name, name, records=kept)
        assert results.is_done(RUNS[name], new / name, new)
    weights = load_state_dict_file(new / "base-pgd" / "checkpoints" / "last.pt")
    assert torch.equal(weights["weight"], torch.ones(3))  # what c1-admm's ${base} loads


def test_a_run_folder_wins_over_its_record(tmp_path):
    kept = tmp_path / "records"
    _finished(tmp_path / "a" / "c1-scratch", "c1-scratch", tmp_path / "a")
    records.save(tmp_path / "a" / "c1-scratch", "c1-scratch", base=False, records=kept)
    part_way = tmp_path / "b" / "c1-scratch"
    part_way.mkdir(parents=True)
    (part_way / "manifest.json").write_text("{}")  # a run started here and not finished
    assert not records.restore(part_way, "c1-scratch", records=kept)
    assert not (part_way / "report.json").exists()


def test_a_record_of_another_recipe_is_not_reused(tmp_path):
    kept = tmp_path / "records"
    _finished(tmp_path / "a" / "c1-scratch", "c1-scratch", tmp_path / "a")
    resolved = tmp_path / "a" / "c1-scratch" / "recipe.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("samples: 1000", "samples: 999"))
    records.save(tmp_path / "a" / "c1-scratch", "c1-scratch", base=False, records=kept)
    assert records.restore(tmp_path / "b" / "c1-scratch", "c1-scratch", records=kept)
    assert not results.is_done(RUNS["c1-scratch"], tmp_path / "b" / "c1-scratch", tmp_path / "b")


def test_a_stale_copy_is_replaced_by_a_new_run_but_a_foreign_folder_is_kept(tmp_path, monkeypatch):
    kept = tmp_path / "records"
    monkeypatch.setattr(records, "RECORDS", kept)
    _finished(tmp_path / "a" / "c1-scratch", "c1-scratch", tmp_path / "a")
    resolved = tmp_path / "a" / "c1-scratch" / "recipe.resolved.yaml"
    resolved.write_text(resolved.read_text().replace("samples: 1000", "samples: 999"))
    records.save(tmp_path / "a" / "c1-scratch", "c1-scratch", base=False)
    seen = []

    def cli(cmd, **_):
        seen.append(sorted(p.name for p in (tmp_path / "b" / "c1-scratch").glob("*")))
        return subprocess.CompletedProcess(cmd, 1, "", "failed: killed\n")

    monkeypatch.setattr(results.subprocess, "run", cli)
    with pytest.raises(RuntimeError):
        results.execute(RUNS["c1-scratch"], tmp_path / "b")
    assert seen == [[]]  # the stale copy was removed before the run started
    mine = tmp_path / "c" / "c1-scratch"
    mine.mkdir(parents=True)
    (mine / "notes.txt").write_text("mine")  # a folder no record made, without a manifest
    with pytest.raises(RuntimeError):
        results.execute(RUNS["c1-scratch"], tmp_path / "c")
    assert (mine / "notes.txt").read_text() == "mine"


def test_a_guard_stop_is_recorded_and_reused(tmp_path, monkeypatch):
    runs_dir, kept = tmp_path / "runs", tmp_path / "records"
    monkeypatch.setattr(records, "RECORDS", kept)
    name = "c2-hydra-ratio0.9"
    calls = []

    def cli(cmd, **_):
        calls.append(cmd)
        folder = runs_dir / name
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "manifest.json").write_text("{}")
        (folder / "recipe.resolved.yaml").write_text(_resolved(name, runs_dir))
        (folder / "run.log").write_text(
            "2026-12-03 10:00:00,000 robust_compress.cli.run INFO run folder x\n"
            "2026-12-03 10:30:00,000 robust_compress.engine.session INFO stage 0:prune\n"
        )
        return subprocess.CompletedProcess(cmd, 1, "", f"warning: x\nfailed: {STOP}\n")

    monkeypatch.setattr(results.subprocess, "run", cli)
    report = results.execute(RUNS[name], runs_dir)
    assert report["stopped"] == STOP and report["seed"] == 0
    assert json.loads((kept / name / "stopped.json").read_text())["stopped"] == STOP
    assert results.execute(RUNS[name], runs_dir)["stopped"] == STOP
    assert len(calls) == 1  # the stop is a result: the second call reuses it


def test_a_run_finished_before_records_were_kept_gets_one_when_reused(tmp_path, monkeypatch):
    kept = tmp_path / "records"
    monkeypatch.setattr(records, "RECORDS", kept)
    _finished(tmp_path / "runs" / "base-pgd", "base-pgd", tmp_path / "runs", checkpoint=True)
    monkeypatch.setattr(results.subprocess, "run", None)  # nothing may run
    assert results.execute(RUNS["base-pgd"], tmp_path / "runs")["seed"] == 0
    assert (kept / "base-pgd" / "report.json").is_file()
    assert (kept / "base-pgd" / "checkpoints" / "last.pt").is_file()


def test_another_failure_is_not_a_result(tmp_path, monkeypatch):
    monkeypatch.setattr(records, "RECORDS", tmp_path / "records")
    fail = subprocess.CompletedProcess([], 1, "", "failed: out of memory\n")
    monkeypatch.setattr(results.subprocess, "run", lambda cmd, **_: fail)
    try:
        results.execute(RUNS["c1-scratch"], tmp_path / "runs")
    except RuntimeError as exc:
        assert "out of memory" in str(exc)
    else:
        raise AssertionError("a failure that is not the guard's must raise")
    assert not (tmp_path / "records").exists()


def _report(robust: float, n: int = 1000) -> dict:
    k = round(robust * n)
    return {
        "seed": 0,
        "stages": [{"name": "0:prune", "seconds": 12.0}],
        "per_stage": [{"n_clean": 10000}],
        "models": {"final": {"params": 4761, "macs": 45117}},
        "metrics": {"final": {"clean": 0.8, "robust": robust, "robust_samples": n}},
        "onnx": {"fp32": {"bytes": 19000}},
        "prune": {"sparsity": 0.9},
        "audit": {"final": {"robust_mask": "1" * k + "0" * (n - k), "checks": []}},
    }


def _stopped(seed: int) -> dict:
    return {
        "seed": seed,
        "stopped": STOP,
        "log_spans": [("2026-12-03 10:00:00", "2026-12-03 10:10:00")],
    }


def _claim2(tmp_path, stopped_seeds):
    reports = {name: _report(0.7) for name in RUNS}
    for seed in stopped_seeds:
        reports["c2-hydra-ratio0.9" + (f"-seed{seed}" if seed else "")] = _stopped(seed)
    text = write_docs(plan.claims(), reports, tmp_path, 1.0, "").read_text()
    data = json.loads((tmp_path / "results.json").read_text())
    return text.split("## Claim 2:")[1].split("## Claim 3:")[0], data[1]


def test_a_seed_the_guard_stopped_counts_as_no_image_right(tmp_path):
    section, data = _claim2(tmp_path, [0])
    assert "Not measured" not in section
    row = next(r for r in data["rows"] if r["label"] == "hydra 90%")
    assert row["robust"] == 0.7 * 2 / 3  # seeds 1 and 2 at 70%, seed 0 counted as 0
    assert "⚠ seed 0 stopped by the dead-network guard after stage 0:prune, counted as 0" in section
    assert "90%: HYDRA - L1 = -23.3 points" in section
    c = plan.compare({r["label"]: r for r in data["rows"]}, "hydra 90%", "l1 90%")
    assert (c["only_a"], c["only_b"], c["sign"]) == (0, 700, -1)


def test_a_row_every_seed_of_which_stopped_shows_no_model(tmp_path):
    section, data = _claim2(tmp_path, [0, 1, 2])
    assert "| - | - | - | - | no model: seed 0 stopped by the dead-network guard" in section
    assert "seed 2 stopped by the dead-network guard after stage 0:prune |" in section
    assert "HYDRA - L1 = -70.0 points" in section
    assert data["verdict"][0] == "does not hold"
    assert (tmp_path / "img" / "claim2.png").stat().st_size > 1000
