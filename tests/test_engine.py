import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from robust_compress.engine.hooks import Hooks
from robust_compress.engine.session import Session
from robust_compress.errors import CheckpointError, UserError
from robust_compress.recipe.loader import parse_recipe

RECIPE = """
name: tiny
seed: 0
model: {spec: builtin:cnn_small}
data: {name: synthetic, batch_size: 128, train_subset: 256, test_subset: 128}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: pgd, epochs: 1, adversary: {attack: pgd, steps: 1}}
  - prune: {importance: l1, ratio: 0.5, finetune_epochs: 1, adversary: {attack: fgsm_rs}}
  - quantize: {qat_epochs: 1, calib_batches: 2, adversary: {attack: fgsm_rs},
               optimizer: {lr: 0.01}}
  - export: {}
"""


class Recorder(Hooks):
    def __init__(self):
        self.events = []

    def on_stage_start(self, stage, epochs, batches_per_epoch):
        self.events.append(("start", stage))

    def on_epoch(self, stage, epoch, metrics):
        self.events.append(("epoch", stage, epoch))

    def on_stage_end(self, stage, record):
        self.events.append(("end", stage))


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "tiny"
    hooks = Recorder()
    session = Session(parse_recipe(RECIPE), out, hooks=hooks)
    session.setup()
    report = session.run()
    return out, report, hooks


def test_run_folder_is_complete(finished_run):
    out, report, _ = finished_run
    for name in (
        "report.json",
        "report.md",
        "model.onnx",
        "model.int8.onnx",
        "model.dense.onnx",
        "checkpoints/last.pt",
        "plots/stages.png",
        "manifest.json",
    ):
        assert (out / name).is_file(), name
    on_disk = json.loads((out / "report.json").read_text())
    assert on_disk["recipe"] == "tiny" and on_disk["threat"] == {"norm": "linf", "eps": 0.1}
    assert [s["name"] for s in on_disk["stages"]] == [
        "0:train",
        "1:prune",
        "2:quantize",
        "3:export",
    ]


def test_report_contract(finished_run):
    _, report, _ = finished_run
    dense, final = report["models"]["dense"], report["models"]["final"]
    assert final["macs"] <= dense["macs"] / 2.5 and final["params"] < dense["params"]
    assert final["onnx_bytes"] < 0.15 * report["models"]["dense"]["onnx_bytes"] * 2
    assert 0 <= report["metrics"]["final"]["clean"] <= 1
    assert report["onnx"]["fp32"]["parity_max_abs"] < 1e-3
    assert report["onnx"]["int8"]["top1_agreement"] > 0.9
    assert report["onnx"]["int8"]["latency_ms"] > 0


def test_hooks_called_in_order(finished_run):
    _, _, hooks = finished_run
    ends = [e[1] for e in hooks.events if e[0] == "end"]
    assert ends == ["0:train", "1:prune", "2:quantize", "3:export"]
    assert ("epoch", "1:prune", 0) in hooks.events
    first = hooks.events.index(("start", "1:prune"))
    assert hooks.events.index(("end", "0:train")) < first


def test_existing_folder_needs_resume_or_force(finished_run):
    out, _, _ = finished_run
    with pytest.raises(UserError, match="--resume"):
        Session(parse_recipe(RECIPE), out)


def test_corrupt_checkpoint_is_detected(tmp_path, finished_run):
    import shutil

    out = tmp_path / "copy"
    shutil.copytree(finished_run[0], out)
    ckpt = out / "checkpoints" / "last.pt"
    ckpt.write_bytes(ckpt.read_bytes()[:-100])
    from robust_compress.engine.runfolder import RunFolder

    session = Session(parse_recipe(RECIPE), RunFolder(out, resume=True))
    session.setup()
    with pytest.raises(CheckpointError, match="corrupt or truncated"):
        session.run(resume=True)


def test_class_count_mismatch_is_a_clear_error():
    session = Session(parse_recipe(RECIPE))
    with pytest.raises(UserError, match="10 classes"):
        session.setup(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(784, 3)))


def test_wrong_input_shape_is_a_clear_error():
    session = Session(parse_recipe(RECIPE))
    with pytest.raises(UserError, match="input shape"):
        session.setup(torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(100, 10)))


KILL_SCRIPT = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.engine.session import Session
    from robust_compress.engine.hooks import Hooks
    from robust_compress.recipe.loader import parse_recipe

    class Kill(Hooks):
        def on_stage_end(self, stage, record):
            if stage == "0:train":
                os.kill(os.getpid(), signal.SIGKILL)

    session = Session(parse_recipe(sys.stdin.read()), sys.argv[1], hooks=Kill())
    session.setup()
    session.run()
""")


def test_killed_after_first_stage_resumes_to_a_complete_folder(tmp_path):
    out = tmp_path / "killed"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_SCRIPT, str(out)],
        input=RECIPE,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL
    assert (out / "checkpoints" / "last.pt").is_file() and not (out / "report.json").exists()
    from robust_compress.engine.runfolder import RunFolder

    session = Session(parse_recipe(RECIPE), RunFolder(out, resume=True))
    session.setup()
    report = session.run(resume=True)
    assert [s["name"] for s in report["stages"]][0] == "0:train"
    assert len(report["stages"]) == 4 and (out / "model.int8.onnx").is_file()
    assert os.path.getsize(out / "report.json") > 0


def test_checkpoint_written_before_the_stage_contract_still_resumes(tmp_path, finished_run):
    """An old checkpoint kept the stages' state in a free-form ``extra`` dict."""
    import io
    import shutil

    from robust_compress.engine.runfolder import RunFolder

    out = tmp_path / "old"
    shutil.copytree(finished_run[0], out)
    payload = torch.load(out / "checkpoints" / "stage-02.pt", weights_only=True)
    assert payload["stage_index"] == 2 and payload["results"]["prune"]
    prune = payload["results"]["prune"]
    del payload["progress"], payload["results"]
    payload["extra"] = {"prune_report": prune, "partial_seconds": 0.0, "prune_steps_taken": {}}
    buffer = io.BytesIO()
    torch.save(payload, buffer)
    folder = RunFolder(out, resume=True)
    folder.write_bytes("checkpoints/last.pt", buffer.getvalue())
    (out / "report.json").unlink()
    session = Session(parse_recipe(RECIPE), folder)
    session.setup()
    report = session.run(resume=True)
    assert report["prune"] == prune  # the old report section came through
    assert [s["name"] for s in report["stages"]] == ["0:train", "1:prune", "2:quantize", "3:export"]


OLD_RESOLVED = """\
name: tiny
seed: 0
args: {}
model: {spec: builtin:cnn_small, weights: null}
data: {name: synthetic, root: null, batch_size: 128, train_subset: 256, test_subset: 128,
  holdout: 0, download: false}
threat: {norm: linf, eps: 0.1}
stages:
- train: {method: pgd, epochs: 1, adversary: {attack: pgd, steps: 1, step: 0.25, restarts: 1,
    eps: 0.1, backend: torch}, optimizer: {name: sgd, lr: 0.1, momentum: 0.9,
    weight_decay: 0.0005}, schedule: onecycle, trades_beta: 6.0}
- prune: {method: magnitude, importance: l1, ratio: 0.5, steps: 1, global_pruning: false,
    ignore: [], round_to: null, schedule_epochs: 0, finetune_epochs: 1,
    adversary: {attack: fgsm_rs, steps: 1, step: 0.125, restarts: 1, eps: 0.1, backend: torch},
    optimizer: {name: sgd, lr: 0.1, momentum: 0.9, weight_decay: 0.0005}, lr_schedule: cosine,
    grad_batches: 4, hydra_form: structured, score_epochs: 1, score_lr: 0.1, sparsity_reg: 0.0,
    sparse_epochs: 0, admm_epochs: 2, admm_every: 1, admm_rho: 0.01, admm_rho_growth: 1.5,
    rounds: 2, round_epochs: 1, rewind_epoch: 0, reinit: false}
"""


def test_a_resolved_recipe_of_the_old_schema_still_reads(tmp_path):
    """Run folders written before the prune methods and attacks had their own configs."""
    from robust_compress.recipe.loader import load_recipe, load_run_recipe

    path = tmp_path / "recipe.resolved.yaml"
    path.write_text(OLD_RESOLVED)
    with pytest.raises(UserError, match="unknown key 'hydra_form'"):
        load_recipe(path)  # a recipe a user writes is held to the schema
    recipe = load_run_recipe(path)
    prune = recipe.stages[1]
    assert type(prune).__name__ == "MagnitudePrune" and prune.finetune_epochs == 1
    assert prune.adversary.attack == "fgsm_rs" and prune.adversary.step == 0.125
    assert "steps" not in type(prune.adversary).model_fields
    path.write_text(OLD_RESOLVED.replace("ratio: 0.5", "ratio: 1.5"))
    with pytest.raises(UserError, match="ratio"):  # still validated: only inert keys go
        load_run_recipe(path)


def test_deleted_last_checkpoint_resumes_from_the_newest_stage_copy(tmp_path, finished_run):
    """The corrupt-checkpoint message tells the user to delete it: that must not restart the run."""
    import shutil

    from robust_compress.engine.runfolder import RunFolder

    out = tmp_path / "copy"
    shutil.copytree(finished_run[0], out)
    for name in ("last.pt", "stage-03.pt", "stage-04.pt"):
        (out / "checkpoints" / name).unlink(missing_ok=True)
    (out / "report.json").unlink()
    hooks = Recorder()
    session = Session(parse_recipe(RECIPE), RunFolder(out, resume=True), hooks=hooks)
    session.setup()
    report = session.run(resume=True)
    assert session.stage_index >= 4 and (out / "checkpoints" / "last.pt").is_file()
    assert [s["name"] for s in report["stages"]] == ["0:train", "1:prune", "2:quantize", "3:export"]
    started = [e[1] for e in hooks.events if e[0] == "start"]
    assert started[0] == "2:quantize" and "0:train" not in started  # train, prune not rerun
