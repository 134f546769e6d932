"""Trackers: a tiny run logs to real local MLflow and TensorBoard stores; read them back."""

import json
import subprocess
import sys
import textwrap

import pytest

from robust_compress.engine.session import Session
from robust_compress.errors import RecipeError
from robust_compress.recipe.checks import check_order
from robust_compress.recipe.loader import dump_resolved, parse_recipe

pytest.importorskip("mlflow")
pytest.importorskip("tensorboard")

RECIPE = """
name: tiny-tracked
seed: 0
model: {spec: builtin:cnn_small}
data: {name: synthetic, batch_size: 128, train_subset: 256, test_subset: 64}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: pgd, epochs: 2, adversary: {attack: pgd, steps: 1}}
  - prune: {importance: l1, ratio: 0.5, finetune_epochs: 1, adversary: {attack: fgsm_rs}}
  - audit: {samples: 32, attacks: [fgsm, pgd], pgd_steps: 2, eps_sweep: [0.05, 0.1]}
tracking: {mlflow: {}, tensorboard: {}}
"""


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("track") / "run"
    session = Session(parse_recipe(RECIPE), out)
    session.setup()
    report = session.run()
    return out, report


def test_mlflow_store_holds_params_metrics_and_files(tracked_run, monkeypatch):
    from mlflow.tracking import MlflowClient

    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 guards file stores
    out, report = tracked_run
    client = MlflowClient(tracking_uri=(out / "mlruns").resolve().as_uri())
    experiment = client.get_experiment_by_name("tiny-tracked")
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["stages.0.train.epochs"] == "2"
    assert run.data.params["threat.eps"] == "0.1"
    losses = client.get_metric_history(run.info.run_id, "stage0_train/loss")
    assert [m.step for m in losses] == [0, 1]
    stage_clean = client.get_metric_history(run.info.run_id, "stage/clean")
    assert [m.value for m in stage_clean] == pytest.approx(
        [r["clean"] for r in report["per_stage"]]
    )
    assert run.data.metrics["audit/final/robust"] == pytest.approx(
        report["audit"]["final"]["robust"]
    )
    assert run.data.metrics["final/params"] == report["models"]["final"]["params"]
    sweep = client.get_metric_history(run.info.run_id, "audit/final/accuracy_vs_eps")
    assert len(sweep) == len(report["audit"]["final"]["eps_sweep"])
    files = {f.path for f in client.list_artifacts(run.info.run_id)}
    assert {"report.json", "report.md", "recipe.txt", "audit"} <= files
    assert "checkpoints" not in files


def test_tensorboard_events_hold_the_same_values(tracked_run):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out, report = tracked_run
    events = EventAccumulator(str(out / "tensorboard"))
    events.Reload()
    tags = events.Tags()["scalars"]
    assert {"stage0_train/loss", "stage/clean", "audit/final/robust"} <= set(tags)
    assert [e.step for e in events.Scalars("stage0_train/loss")] == [0, 1]
    (robust,) = events.Scalars("audit/final/robust")
    assert robust.value == pytest.approx(report["audit"]["final"]["robust"], abs=1e-6)
    clean = [e.value for e in events.Scalars("stage/clean")]
    assert clean == pytest.approx([r["clean"] for r in report["per_stage"]], abs=1e-6)


def test_tracking_section_is_resolved_and_checked():
    recipe = parse_recipe(RECIPE)
    assert recipe.tracking["mlflow"].artifacts is True
    again = parse_recipe(dump_resolved(recipe))
    assert again == recipe
    with pytest.raises(RecipeError, match=r"tracking\.mlflw"):
        parse_recipe(RECIPE.replace("mlflow: {}", "mlflw: {}"))
    with pytest.raises(RecipeError, match=r"tracking\.mlflow\.urii"):
        parse_recipe(RECIPE.replace("mlflow: {}", "mlflow: {urii: x}"))


def test_a_missing_extra_is_a_clear_error(monkeypatch, tmp_path):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "mlflow" else real(n, *a)
    )
    errors, _ = check_order(parse_recipe(RECIPE))
    assert errors == [
        "tracking.mlflow: the mlflow package is not installed; install it with "
        "pip install 'robust-compress[mlflow]'"
    ]


def test_validate_stops_before_a_run_without_the_extra(tmp_path):
    """A subprocess whose mlflow cannot be imported: validate exits 2 with the message."""
    (tmp_path / "r.yaml").write_text(RECIPE)
    blocker = tmp_path / "block" / "mlflow"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('blocked')")
    code = textwrap.dedent(
        """
        import importlib.util, sys
        real = importlib.util.find_spec
        importlib.util.find_spec = lambda n, *a: None if n == "mlflow" else real(n, *a)
        from robust_compress.cli.main import main
        sys.argv = ["robust-compress", "validate", sys.argv[1]]
        main()
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code, str(tmp_path / "r.yaml")], capture_output=True, text=True
    )
    assert done.returncode == 2, done.stderr
    assert "pip install 'robust-compress[mlflow]'" in done.stderr
    assert "Traceback" not in done.stderr
    assert json.dumps  # keep the import used
