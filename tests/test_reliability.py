"""Crash safety, numerical faults and untrusted files (issue: reliability and security)."""

import json
import os
import pickle
import signal
import subprocess
import sys
import textwrap

import pytest
import torch

from robust_compress.engine.runfolder import RunFolder
from robust_compress.engine.session import Session
from robust_compress.errors import CheckpointError, RunError
from robust_compress.recipe.loader import parse_recipe

RECIPE = """
name: crash
seed: 3
model: {spec: builtin:cnn_tiny}
data: {name: synthetic, batch_size: 64, train_subset: 192, test_subset: 64}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: fgsm_rs, epochs: 2}
  - prune: {importance: l1, ratio: 0.5, finetune_epochs: 2, adversary: {attack: fgsm_rs}}
"""

KILL_AT = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.engine.session import Session
    from robust_compress.engine.hooks import Hooks
    from robust_compress.recipe.loader import parse_recipe

    stage, epoch, batch = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])

    class Kill(Hooks):
        def on_batch(self, s, e, b, loss):
            if (s, e, b) == (stage, epoch, batch):
                os.kill(os.getpid(), signal.SIGKILL)

    session = Session(parse_recipe(sys.stdin.read()), sys.argv[1], hooks=Kill())
    session.setup()
    session.run()
""")


def _final_metrics(report):
    return {k: report["metrics"]["final"][k] for k in ("clean", "pgd10")}, report["per_stage"][-1]


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    session = Session(parse_recipe(RECIPE), tmp_path_factory.mktemp("u") / "run")
    session.setup()
    return session.run()


@pytest.mark.parametrize(("stage", "epoch", "batch"), [("0:train", 1, 1), ("1:prune", 1, 0)])
def test_sigkill_mid_epoch_then_resume_gives_identical_metrics(
    tmp_path, uninterrupted, stage, epoch, batch
):
    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_AT, str(out), stage, str(epoch), str(batch)],
        input=RECIPE,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert not (out / "report.json").exists()
    session = Session(parse_recipe(RECIPE), RunFolder(out, resume=True))
    session.setup()
    resumed = session.run(resume=True)
    assert resumed["metrics"]["final"]["clean"] == uninterrupted["metrics"]["final"]["clean"]
    assert resumed["metrics"]["final"]["pgd10"] == uninterrupted["metrics"]["final"]["pgd10"]
    assert resumed["models"]["final"] == uninterrupted["models"]["final"]
    assert json.loads((out / "report.json").read_text())["recipe"] == "crash"


def test_nan_loss_stops_with_stage_epoch_batch_and_keeps_checkpoint(tmp_path):
    recipe = parse_recipe(
        RECIPE.replace(
            "method: fgsm_rs, epochs: 2", "method: natural, epochs: 3, optimizer: {lr: 1.0e+30}"
        )
    )
    session = Session(recipe, tmp_path / "run")
    session.setup()
    with pytest.raises(RunError, match=r"stage 0:train.*epoch \d+, batch \d+|parameter"):
        session.run()
    ckpt = tmp_path / "run" / "checkpoints" / "last.pt"
    if ckpt.exists():  # an epoch finished before the loss blew up: that state is finite
        state = torch.load(ckpt, weights_only=True)["model"]["state_dict"]
        assert all(torch.isfinite(v.float()).all() for v in state.values())


class _Evil:
    def __reduce__(self):
        return (os.system, ("touch /tmp/robust_compress_pwned",))


def test_crafted_pickle_is_refused_everywhere(tmp_path):
    from robust_compress.engine.checkpoint import load_checkpoint
    from robust_compress.models.specs import build_model, load_weights

    path = tmp_path / "evil.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil()}, f)
    target = "/tmp/robust_compress_pwned"
    if os.path.exists(target):
        os.unlink(target)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_weights(build_model("builtin:cnn_small"), path)
    with pytest.raises(CheckpointError, match="weights_only"):
        load_checkpoint(path)
    assert not os.path.exists(target)


def test_audit_checks_an_onnx_file_before_running(tmp_path):
    from typer.testing import CliRunner

    from robust_compress.adapters.onnxruntime.runtime import export_onnx
    from robust_compress.cli.main import app

    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"not an onnx model")
    result = CliRunner().invoke(app, ["audit", str(garbage), "--data", "synthetic"])
    assert result.exit_code == 2 and "not a valid ONNX model" in result.output
    wrong = tmp_path / "rgb.onnx"
    net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 10))
    export_onnx(net, wrong, torch.rand(1, 3, 32, 32))
    result = CliRunner().invoke(app, ["audit", str(wrong), "--data", "synthetic"])
    assert result.exit_code == 2 and "(N, 3, 32, 32)" in result.output
    assert "(N, 1, 28, 28)" in result.output


def test_unwritable_output_folder_is_a_clear_error(tmp_path):
    from robust_compress.errors import UserError

    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    # root ignores file permissions; /proc refuses new folders even to root
    target = locked / "run" if os.access(locked, os.W_OK) is False else "/proc/rc-run"
    try:
        with pytest.raises(UserError, match="cannot write"):
            RunFolder(target)
    finally:
        locked.chmod(0o700)


def test_file_in_the_way_of_the_output_folder(tmp_path):
    from robust_compress.errors import UserError

    blocker = tmp_path / "file"
    blocker.write_text("mine")
    with pytest.raises(UserError):
        RunFolder(blocker / "run")
    assert blocker.read_text() == "mine"


def test_empty_dataset_is_a_clear_error():
    from robust_compress.data.datasets import load_dataset
    from robust_compress.errors import UserError

    with pytest.raises(UserError, match="positive"):
        load_dataset("synthetic", "train", subset=0)


EXPORT_RECIPE = (
    RECIPE.replace("finetune_epochs: 2", "finetune_epochs: 1")
    + """\
  - quantize: {calib_batches: 1}
  - export: {}
"""
)

KILL_IN_EXPORT = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.adapters.onnxruntime import runtime as ort_runtime
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import parse_recipe

    real_export = ort_runtime.export_onnx
    calls = []

    def export_then_die(*args, **kwargs):
        path = real_export(*args, **kwargs)
        calls.append(path)
        if len(calls) == 2:  # model.dense.onnx and model.onnx written, int8 not yet
            os.kill(os.getpid(), signal.SIGKILL)
        return path

    ort_runtime.export_onnx = export_then_die
    session = Session(parse_recipe(sys.stdin.read()), sys.argv[1])
    session.setup()
    session.run()
""")


def test_sigkill_during_export_then_resume_completes_the_folder(tmp_path):
    from robust_compress.adapters.onnxruntime.runtime import OrtPredictor

    out = tmp_path / "run"
    proc = subprocess.run(
        [sys.executable, "-c", KILL_IN_EXPORT, str(out)],
        input=EXPORT_RECIPE,
        text=True,
        capture_output=True,
        timeout=600,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    assert (out / "model.onnx").is_file() and not (out / "model.int8.onnx").exists()
    session = Session(parse_recipe(EXPORT_RECIPE), RunFolder(out, resume=True))
    session.setup()
    report = session.run(resume=True)
    assert [s["name"] for s in report["stages"]][-1] == "3:export"
    predictor = OrtPredictor(out / "model.int8.onnx")
    assert predictor(torch.rand(2, 1, 28, 28)).shape == (2, 10)
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert {"model.onnx", "model.int8.onnx", "report.json"} <= set(manifest)
    assert not list(out.rglob("*.tmp"))


INTERRUPT_AT_FIRST_EPOCH = textwrap.dedent("""
    import os, signal, sys
    from robust_compress.cli.main import main
    from robust_compress.engine.session import Session

    real = Session.checkpoint

    def checkpoint(self, *args, **kwargs):  # Ctrl-C right after the first epoch's checkpoint
        real(self, *args, **kwargs)
        if self.epoch == 1 and self.stage_index == 0:
            os.kill(os.getpid(), signal.SIGINT)

    Session.checkpoint = checkpoint
    sys.argv = ["robust-compress", *sys.argv[1:]]
    main()
""")


def _sigint_as_a_terminal_has_it() -> None:
    """A job started with ``&`` by a non-interactive shell (a CI script) ignores SIGINT, and
    its children inherit that: give the CLI the default disposition a terminal gives it."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_ctrl_c_stops_cleanly_and_the_run_resumes(tmp_path):
    """SIGINT at a known point: right after the first epoch's checkpoint, not after a timer."""
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("epochs: 2}", "epochs: 4}"))
    out = tmp_path / "run"
    args = ["run", str(recipe), "--out", str(out), "--quiet"]
    cmd = [sys.executable, "-c", INTERRUPT_AT_FIRST_EPOCH, *args]
    proc = subprocess.run(
        cmd, capture_output=True, text=True, timeout=300, preexec_fn=_sigint_as_a_terminal_has_it
    )
    assert proc.returncode == 130, proc.stderr
    assert "--resume" in proc.stderr and "Traceback" not in proc.stderr
    assert not (out / "report.json").exists()
    cli = [sys.executable, "-m", "robust_compress", *args]
    resumed = subprocess.run([*cli, "--resume"], capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    assert "resumed at stage 0, epoch 1" in (out / "run.log").read_text()
    assert json.loads((out / "report.json").read_text())["recipe"] == "crash"
