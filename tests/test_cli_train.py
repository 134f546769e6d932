import subprocess
import sys

import pytest


def run_cli(*args, check_code=None):
    proc = subprocess.run(
        [sys.executable, "-m", "robust_compress", *args],
        capture_output=True,
        text=True,
        timeout=300,
    )
    if check_code is not None:
        assert proc.returncode == check_code, proc.stderr
    return proc


def test_train_on_synthetic_and_save(tmp_path):
    ckpt = tmp_path / "m.pt"
    proc = run_cli(
        "train",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--steps",
        "1",
        "--eval-steps",
        "2",
        "--save",
        str(ckpt),
        "--quiet",
        check_code=0,
    )
    assert "clean accuracy" in proc.stdout and "PGD-2 accuracy" in proc.stdout
    assert ckpt.is_file()
    again = run_cli(
        "train",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--save",
        str(ckpt),
        "--quiet",
        check_code=2,
    )
    assert "--force" in again.stderr and "Traceback" not in again.stderr


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (["--model", "builtin:cnn_smal"], "Did you mean: cnn_small"),
        (["--method", "pgdd"], "natural, fgsm_rs, pgd"),
    ],
)
def test_bad_input_exit_2_without_traceback(args, expected):
    proc = run_cli("train", "--data", "synthetic", *args, "--quiet")
    assert proc.returncode == 2
    assert expected in proc.stderr and "Traceback" not in proc.stderr


def test_missing_dataset_exit_2(tmp_path, monkeypatch):
    from typer.testing import CliRunner

    from robust_compress.cli.main import app
    from robust_compress.data import sources as data_mod

    monkeypatch.setattr(data_mod, "DEBIAN_DIR", tmp_path / "none")
    monkeypatch.setattr(data_mod, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    result = CliRunner().invoke(app, ["train", "--quiet", "--data-root", str(tmp_path)])
    assert result.exit_code == 2
    assert "apt-get install -y dataset-fashion-mnist" in result.output


def test_export_checkpoint_to_onnx(tmp_path):
    ckpt = tmp_path / "m.pt"
    run_cli(
        "train",
        "--data",
        "synthetic",
        "--epochs",
        "1",
        "--method",
        "natural",
        "--eval-steps",
        "1",
        "--save",
        str(ckpt),
        "--quiet",
        check_code=0,
    )
    proc = run_cli("export", str(ckpt), "--out", str(tmp_path / "m.onnx"), check_code=0)
    assert "max |torch - onnx|" in proc.stdout and (tmp_path / "m.onnx").stat().st_size > 1000
    again = run_cli("export", str(ckpt), "--out", str(tmp_path / "m.onnx"), check_code=2)
    assert "--force" in again.stderr
