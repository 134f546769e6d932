"""Devices: the recipe's device, mixed precision, and no tensor of ours left on the wrong device."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
from torch.overrides import TorchFunctionMode

from robust_compress.errors import UserError
from robust_compress.recipe import parse_recipe

ROOT = Path(__file__).resolve().parent.parent
OURS = (str(ROOT / "robust_compress") + "/", str(ROOT / "adapters") + "/")
FACTORIES = {
    torch.arange,
    torch.empty,
    torch.eye,
    torch.full,
    torch.linspace,
    torch.ones,
    torch.rand,
    torch.randint,
    torch.randn,
    torch.randperm,
    torch.tensor,
    torch.zeros,
}

RECIPE = """
name: devices
seed: 0
model: {spec: builtin:cnn_tiny}
data: {name: synthetic, batch_size: 64, train_subset: 128, test_subset: 64}
threat: {norm: linf, eps: 0.1}
DEVICE
stages:
  - train: {method: pgd, epochs: 1, adversary: {attack: pgd, steps: 2}}
  - prune: {importance: robust_taylor, ratio: 0.5, finetune_epochs: 1, grad_batches: 1,
            adversary: {attack: pgd, steps: 1}}
  - quantize: {qat_epochs: 1, calib_batches: 1, adversary: {attack: fgsm_rs}}
  - export: {fp32: true, int8: true}
  - audit: {samples: 32, attacks: [fgsm, pgd, square], pgd_steps: 2, square_queries: 5,
            sanity_checks: false}
"""


class ImplicitDeviceCalls(TorchFunctionMode):
    """Records calls of tensor factories without ``device=`` made by this package's code.

    On a GPU run such a tensor lands on the CPU while the model and its batches are on the GPU;
    the first operation mixing them fails (or, for an index, silently copies every step).
    Calls from torch itself (the ONNX exporter, say) and from third-party libraries are not ours
    to fix and pass.
    """

    def __init__(self):
        super().__init__()
        self.found: set[str] = set()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func in FACTORIES and "device" not in kwargs:
            caller = _direct_caller()
            if caller.startswith(OURS):
                self.found.add(caller.replace(str(ROOT) + "/", ""))
        return func(*args, **kwargs)


def _direct_caller() -> str:
    """Where the factory was called: the frame below ``__torch_function__``."""
    frame = sys._getframe(2)
    return f"{frame.f_code.co_filename}:{frame.f_lineno}"


def _recipe(device_line: str = ""):
    return parse_recipe(RECIPE.replace("DEVICE", device_line))


def test_no_stage_creates_a_tensor_without_saying_on_which_device(tmp_path):
    from robust_compress.engine.session import Session

    session = Session(_recipe("device: cpu"), out=tmp_path / "run")
    session.setup()  # reading files and building the model happen on the CPU by design
    watcher = ImplicitDeviceCalls()
    with watcher:
        session.run()
    assert not watcher.found, "tensors made without device= (CPU on a GPU run):\n" + "\n".join(
        sorted(watcher.found)
    )
    assert session.device == torch.device("cpu") and (tmp_path / "run" / "report.json").is_file()


def test_the_device_in_the_api_overrides_the_recipe():
    from robust_compress.engine.session import Session

    session = Session(_recipe("device: auto"), device="cpu")
    session.setup()
    assert session.device == torch.device("cpu")
    assert all(p.device.type == "cpu" for p in session.model.parameters())
    x, y = next(session.train_data.batches(8))
    assert x.device == y.device == session.device


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")
def test_a_gpu_asked_for_without_one_is_a_clear_error(tmp_path):
    from typer.testing import CliRunner

    from robust_compress.cli.main import app
    from robust_compress.engine.session import Session

    with pytest.raises(UserError, match="torch sees no CUDA GPU"):
        Session(_recipe("device: cuda")).setup()
    recipe = tmp_path / "r.yaml"
    recipe.write_text(RECIPE.replace("DEVICE", ""))
    out = str(tmp_path / "run")
    result = CliRunner().invoke(app, ["run", str(recipe), "--out", out, "--device", "cuda:1"])
    assert result.exit_code == 2 and "torch sees no CUDA GPU" in result.output
    assert "Traceback" not in result.output


def test_bad_device_names_are_reported_at_their_line():
    with pytest.raises(UserError, match=r"<string>:7:9: device: .*use auto, cpu, cuda or cuda:N"):
        _recipe("device: gpu0")


def test_bf16_training_on_the_cpu_keeps_float32_weights_and_audit(tmp_path):
    from robust_compress.engine.session import Session

    text = RECIPE.replace("DEVICE", "compute: {mixed_precision: bf16}").split("  - prune")[0]
    text += "  - audit: {samples: 32, attacks: [pgd], pgd_steps: 2, sanity_checks: false}\n"
    session = Session(parse_recipe(text), out=tmp_path / "run")
    report = session.run()
    assert session.amp_dtype == torch.bfloat16
    assert all(p.dtype == torch.float32 for p in session.model.parameters())
    assert 0.0 <= report["audit"]["final"]["robust"] <= 1.0
    with pytest.raises(UserError, match="fp16 needs a GPU"):
        Session(parse_recipe(text.replace("bf16", "fp16"))).setup()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_whole_recipe_on_a_gpu(tmp_path):
    from robust_compress.engine.session import Session

    session = Session(_recipe("device: cuda"), out=tmp_path / "run")
    session.setup()
    assert next(session.model.parameters()).device.type == "cuda"
    watcher = ImplicitDeviceCalls()
    with watcher:
        report = session.run()
    assert not watcher.found, sorted(watcher.found)
    assert report["audit"]["final"]["samples"] == 32


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_the_art_adversary_attacks_a_model_on_the_gpu():
    from robust_compress.adapters.art.adversary import ArtAdversary
    from robust_compress.models.specs import build_model

    model = build_model("builtin:cnn_tiny").cuda().eval()
    x, y = torch.rand(8, 1, 28, 28, device="cuda"), torch.arange(8, device="cuda") % 10
    adv = ArtAdversary("pgd", 0.1, steps=3).perturb(model, x, y)
    assert adv.device == x.device and (adv - x).abs().max() <= 0.1 + 1e-6
