"""The adversarial audit: ensemble worst case, determinism, sanity checks, ONNX, CLI."""

from __future__ import annotations

import json
import math

import pytest
import torch
from torch import nn
from typer.testing import CliRunner

from robust_compress.audit.runner import run_audit
from robust_compress.audit.sweep import default_sweep
from robust_compress.data.datasets import load_dataset
from robust_compress.errors import DataNotFoundError, UserError
from robust_compress.models.specs import build_model
from robust_compress.training.loop import TrainConfig, train

FAST = {"pgd_steps": 5, "square_queries": 60, "batch_size": 256}


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # small ops on a shared machine: one thread is fastest
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def tiny(synthetic_train) -> nn.Module:
    torch.manual_seed(0)
    model = build_model("builtin:cnn_tiny")
    train(model, synthetic_train, TrainConfig(epochs=2, batch_size=64, lr=0.05))
    return model.eval()


@pytest.fixture(scope="module")
def fmnist():
    try:
        train_set = load_dataset("fashion-mnist", "train", subset=5000)
        test_set = load_dataset("fashion-mnist", "test", subset=100)
    except DataNotFoundError:
        pytest.skip("Fashion-MNIST is not installed")
    return train_set, test_set


@pytest.fixture(scope="module")
def natural_fmnist(fmnist) -> nn.Module:
    """cnn_tiny trained without any adversary: 160 steps of 128 on 5000 images."""
    torch.manual_seed(0)
    model = build_model("builtin:cnn_tiny")
    train(model, fmnist[0], TrainConfig(epochs=4, batch_size=128, lr=0.05))
    return model.eval()


class InputQuant(nn.Module):
    """Gradient masking by a hard step on the input: round(4x)/4 has zero gradient."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(torch.round(x * 4) / 4)


class Saturated(nn.Module):
    """Gradient masking by saturation: log-softmax of logits x 1000 (CE gradient underflows)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return torch.log_softmax(self.model(x) * 1000, dim=1)


def failed(result: dict) -> set[str]:
    return {c["name"] for c in result["checks"] if not c["passed"]}


def test_worst_case_is_below_every_attack(tiny, synthetic_test, tmp_path):
    r = run_audit(tiny, synthetic_test, eps=0.15, samples=64, out_dir=tmp_path, **FAST)
    figures = [e["accuracy"] for e in r["per_attack"].values()]
    assert r["samples"] == 64 and len(r["robust_mask"]) == 64
    assert r["robust"] <= min(figures) <= max(figures) <= r["clean"]
    assert r["robust"] == pytest.approx(r["robust_mask"].count("1") / 64)
    assert list(r["per_attack"]) == ["fgsm", "pgd", "apgd_ce", "apgd_dlr", "apgd_t", "square"]
    assert {e["mode"] for k, e in r["per_attack"].items() if k in ("fgsm", "pgd")} == {"alone"}
    assert r["per_attack"]["square"]["cumulative"] == r["robust"]
    assert r["per_attack"]["square"]["source"] == "black-box torch"
    assert r["passed"] == all(c["passed"] for c in r["checks"])
    assert "worst case" in r["markdown"] and "cumulative" in r["markdown"]
    on_disk = json.loads((tmp_path / "audit.json").read_text())
    assert on_disk["robust"] == r["robust"] and on_disk["checks"] == r["checks"]
    assert (tmp_path / "accuracy_vs_eps.png").stat().st_size > 0
    assert (tmp_path / "audit.md").read_text().startswith("# Adversarial audit")


def test_later_attacks_only_see_survivors(tiny, synthetic_test):
    r = run_audit(tiny, synthetic_test, eps=0.15, samples=64, sanity_checks=False, **FAST)
    pa = r["per_attack"]
    survivors = round(pa["pgd"]["cumulative"] * 64)
    assert pa["apgd_ce"]["attacked"] == survivors
    assert pa["apgd_dlr"]["attacked"] == round(pa["apgd_ce"]["cumulative"] * 64)
    assert r["checks"] == [] and r["passed"] and r["eps_sweep"] == []


def test_same_seed_same_figures(tiny, synthetic_test):
    kwargs = dict(eps=0.15, samples=32, seed=3, eps_sweep=[0.3], **FAST)
    a = run_audit(tiny, synthetic_test, **kwargs)
    b = run_audit(tiny, synthetic_test, **kwargs)
    assert a["robust_mask"] == b["robust_mask"] and a["seed"] == 3
    assert {k: v["accuracy"] for k, v in a["per_attack"].items()} == {
        k: v["accuracy"] for k, v in b["per_attack"].items()
    }
    assert a["eps_sweep"] == b["eps_sweep"] and a["checks"] == b["checks"]


def test_model_modes_are_restored(tiny, synthetic_test):
    wrapper = Saturated(tiny)  # a new module is in train mode, the model inside in eval mode
    run_audit(wrapper, synthetic_test, eps=0.1, samples=16, attacks=["fgsm"], sanity_checks=False)
    assert wrapper.training and not any(m.training for m in tiny.modules())


def test_input_quantization_is_flagged(natural_fmnist, fmnist):
    r = run_audit(InputQuant(natural_fmnist), fmnist[1], eps=0.1, samples=100, **FAST)
    bad = failed(r)
    assert {"zero_gradients", "large_eps", "black_box_vs_white_box"} <= bad, r["checks"]
    assert not r["passed"] and "FAILED" in r["markdown"]
    assert r["per_attack"]["pgd"]["accuracy"] > r["robust"]  # Square found what PGD could not


def test_saturated_softmax_is_flagged(tiny, synthetic_test):
    r = run_audit(
        Saturated(tiny), synthetic_test, eps=0.1, samples=64, attacks=["fgsm", "pgd"], **FAST
    )
    assert "zero_gradients" in failed(r)


def test_natural_model_is_not_robust(natural_fmnist, fmnist):
    r = run_audit(natural_fmnist, fmnist[1], eps=0.1, samples=100, **FAST)
    assert r["clean"] > 0.6
    assert r["robust"] <= 0.05
    assert "zero_gradients" not in failed(r) and "threat_model" not in failed(r)


def test_l2_audit_stays_in_the_l2_ball(tiny, synthetic_test):
    r = run_audit(tiny, synthetic_test, eps=1.5, norm="l2", samples=32, **FAST)
    assert r["norm"] == "l2" and "L2 ball" in r["markdown"]
    threat = next(c for c in r["checks"] if c["name"] == "threat_model")
    assert threat["passed"] and "l2 perturbation" in threat["detail"]
    assert r["eps_sweep"][-1]["eps"] == pytest.approx(14.0)


def test_default_sweep_reaches_the_grey_image():
    assert default_sweep(0.1, "linf", 784) == [0.025, 0.05, 0.1, 0.2, 0.5]
    sweep = default_sweep(1.5, "l2", 784)
    assert 1.5 in sweep and sweep[-1] == pytest.approx(0.5 * math.sqrt(784))
    assert default_sweep(0.7, "linf", 784)[-1] == 0.7


@pytest.mark.parametrize(
    "kwargs, words",
    [
        ({"attacks": ["pgdd"]}, "pgd"),
        ({"attacks": []}, "at least one"),
        ({"eps": -0.1}, "eps"),
        ({"eps": 1.5}, "pixel space"),
        ({"norm": "l3"}, "norm"),
        ({"samples": 0}, "samples"),
        ({"eps_sweep": [0.1, -1]}, "eps_sweep"),
    ],
)
def test_bad_options_are_user_errors(tiny, synthetic_test, kwargs, words):
    options = {"eps": 0.1, **kwargs}
    with pytest.raises(UserError, match=words):
        run_audit(tiny, synthetic_test, **options)


def test_nothing_to_audit(synthetic_test):
    with pytest.raises(UserError, match="nothing to audit"):
        run_audit(None, synthetic_test, eps=0.1)


# ----- ONNX: audited as deployed -------------------------------------------------------
@pytest.fixture(scope="module")
def int8_export(tiny, synthetic_train, tmp_path_factory):
    from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer

    quantizer = BrevitasQuantizer(calib_batches=2)
    qmodel = quantizer.prepare(tiny, (x for x, _ in synthetic_train.batches(64)))
    path = tmp_path_factory.mktemp("onnx") / "model.int8.onnx"
    quantizer.export(qmodel, path, synthetic_train.x[:1])
    return qmodel.eval(), path


def test_onnx_audit_uses_twin_gradients_and_session_scores(
    int8_export, synthetic_test, monkeypatch
):
    import robust_compress.adapters.art.adversary as art
    import robust_compress.adapters.art.square as art_audit
    from robust_compress.adapters.onnxruntime.runtime import OrtPredictor

    qmodel, path = int8_export
    gradient_models, scored = [], []
    perturb, square = art.ArtAdversary.perturb, art_audit.square_linf

    def spy_perturb(self, model, x, y):
        gradient_models.append(model)
        return perturb(self, model, x, y)

    def spy_square(target, *args, **kwargs):
        scored.append(target)
        return square(target, *args, **kwargs)

    monkeypatch.setattr(art.ArtAdversary, "perturb", spy_perturb)
    monkeypatch.setattr(art_audit, "square_linf", spy_square)
    r = run_audit(qmodel, synthetic_test, eps=0.15, samples=64, onnx_path=path, **FAST)
    sources = {k: e["source"] for k, e in r["per_attack"].items()}
    assert sources == {
        "fgsm": "transfer torch->onnx",
        "pgd": "transfer torch->onnx",
        "apgd_ce": "transfer torch->onnx",
        "apgd_dlr": "transfer torch->onnx",
        "apgd_t": "transfer torch->onnx",
        "square": "black-box onnx",
    }
    assert gradient_models and all(m is qmodel for m in gradient_models)
    assert scored and all(isinstance(p, OrtPredictor) for p in scored)
    onnx_clean = float(
        (OrtPredictor(path)(synthetic_test.x[:64]).argmax(1) == synthetic_test.y[:64])
        .float()
        .mean()
    )
    assert r["clean"] == pytest.approx(onnx_clean)
    assert r["robust"] <= min(e["accuracy"] for e in r["per_attack"].values())
    assert "transfer torch->onnx" in r["markdown"] and "black-box onnx" in r["markdown"]


def test_onnx_file_alone_is_black_box_only(int8_export, synthetic_test):
    _, path = int8_export
    r = run_audit(None, synthetic_test, eps=0.15, samples=32, onnx_path=path, **FAST)
    assert r["per_attack"]["square"]["source"] == "black-box onnx"
    for name in ("fgsm", "pgd", "apgd_ce", "apgd_dlr", "apgd_t"):
        assert r["per_attack"][name]["skipped"] and r["per_attack"][name]["accuracy"] is None
    assert r["robust"] == r["per_attack"]["square"]["cumulative"]
    skipped = {c["name"] for c in r["checks"] if c["skipped"]}
    assert {"zero_gradients", "double_steps", "black_box_vs_white_box"} <= skipped
    assert {row["attack"] for row in r["eps_sweep"]} == {"square"}
    assert "Black-box attacks only" in r["markdown"]


# ----- the query-efficient Square attack ----------------------------------------------------
def test_square_queries_once_per_iteration_and_stays_in_the_ball(tiny, synthetic_test):
    from robust_compress.adapters.art.square import square_linf

    x, y = synthetic_test.x[:40], synthetic_test.y[:40]
    seen = []

    def predict(batch):
        seen.append(len(batch))
        with torch.no_grad():
            return tiny(batch)

    adv = square_linf(predict, x, y, eps=0.3, queries=50, seed=1, num_classes=10)
    assert sum(seen) <= 40 * 50  # one query per example and iteration at most
    assert float((adv - x).abs().max()) <= 0.3 + 1e-6 and adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        fooled = int((tiny(adv).argmax(1) != y).sum())
        assert fooled > int((tiny(x).argmax(1) != y).sum())
    again = square_linf(tiny, x, y, eps=0.3, queries=50, seed=1, num_classes=10)
    assert torch.equal(adv, again)  # same seed, same result, model or function alike


# ----- the command line --------------------------------------------------------------------
def cli(*args):
    from robust_compress.cli.main import app

    return CliRunner().invoke(app, ["audit", *map(str, args)])


SMALL = ["--data", "synthetic", "--samples", "32", "--pgd-steps", "3", "--square-queries", "30"]


def test_cli_audits_a_checkpoint(tiny, tmp_path):
    from robust_compress.engine.checkpoint import save_model

    ckpt = save_model(tiny, tmp_path / "m.pt", "builtin:cnn_tiny", 10, 1)
    result = cli(ckpt, *SMALL, "--out", tmp_path / "out", "--attacks", "fgsm,pgd,square")
    assert result.exit_code == 0, result.output
    assert "robust accuracy (worst case over the ensemble)" in result.output
    saved = json.loads((tmp_path / "out" / "audit.json").read_text())
    assert list(saved["per_attack"]) == ["fgsm", "pgd", "square"] and saved["samples"] == 32


def test_cli_state_dict_needs_a_spec(tiny, tmp_path):
    path = tmp_path / "weights.pt"
    torch.save(tiny.state_dict(), path)
    result = cli(path, *SMALL, "--no-sanity-checks")
    assert result.exit_code == 2 and "--model-spec" in result.output
    assert "Traceback" not in result.output
    result = cli(path, *SMALL, "--no-sanity-checks", "--model-spec", "builtin:cnn_tiny")
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "args, words",
    [
        (["missing.pt"], "does not exist"),
        (["{ckpt}", "--attacks", "pgd,sqaure"], "square"),
        (["{ckpt}", "--eps-sweep", "0.1,x"], "comma-separated"),
    ],
)
def test_cli_bad_input_exits_2(tiny, tmp_path, args, words):
    from robust_compress.engine.checkpoint import save_model

    ckpt = save_model(tiny, tmp_path / "m.pt", "builtin:cnn_tiny", 10, 1)
    args = [a.format(ckpt=ckpt) for a in args]
    result = cli(*[tmp_path / a if a == "missing.pt" else a for a in args], *SMALL)
    assert result.exit_code == 2 and words in result.output and "Traceback" not in result.output
    assert len(result.output.strip().splitlines()) == 1


def test_cli_audits_an_onnx_file(int8_export, tmp_path):
    _, path = int8_export
    result = cli(path, *SMALL, "--no-sanity-checks")
    assert result.exit_code == 0, result.output
    assert "black-box" in result.output and "not run" in result.output


RUN_RECIPE = """
name: audit-tiny
seed: 0
model: {spec: builtin:cnn_tiny}
data: {name: synthetic, batch_size: 128, train_subset: 256}
threat: {norm: linf, eps: 0.15}
stages:
  - train: {method: natural, epochs: 1}
  - quantize: {qat_epochs: 0, calib_batches: 2}
  - export: {}
  - audit: {samples: 32, pgd_steps: 3, square_queries: 20}
"""


def test_engine_stage_and_cli_audit_a_run_folder(tmp_path):
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import parse_recipe

    out = tmp_path / "run"
    session = Session(parse_recipe(RUN_RECIPE), out)
    session.setup()
    report = session.run()
    audit = report["audit"]
    final, deployed = audit["final"], audit["int8_onnx"]
    metrics = report["metrics"]["final"]
    # The headline is the deployed file's figure; the twin's stays beside it.
    assert metrics["robust"] == deployed["robust"] and deployed["target_kind"] == "onnx"
    assert metrics["robust_twin"] == final["robust"] and final["samples"] == 32
    assert (out / "audit" / "final" / "audit.json").is_file()
    assert (out / "audit" / "int8-onnx" / "audit.json").is_file()
    text = (out / "report.md").read_text()
    assert "Adversarial audit" in text and "final (model.int8.onnx)" in text
    assert "fake-quant twin (torch)" in text and "Twin agreement check" in text
    _check_comparison(report, out)
    (out / "recipe.resolved.yaml").write_text(RUN_RECIPE)  # written by the CLI's `run`
    result = cli(out, "--samples", "24", "--pgd-steps", "2", "--square-queries", "10")
    assert result.exit_code == 0, result.output
    torch_audit = json.loads((out / "audit" / "cli" / "final" / "audit.json").read_text())
    onnx_audit = json.loads((out / "audit" / "cli" / "int8-onnx" / "audit.json").read_text())
    assert torch_audit["eps"] == 0.15 and torch_audit["target_kind"] == "torch"
    assert onnx_audit["per_attack"]["pgd"]["source"] == "transfer torch->onnx"
    assert onnx_audit["per_attack"]["square"]["source"] == "black-box onnx"
    manifest = json.loads((out / "manifest.json").read_text())["files"]
    assert "audit/cli/int8-onnx/audit.json" in manifest


def _check_comparison(report: dict, out) -> None:
    """The dense-vs-deployed pairing agrees with the two masks and with its CSV."""
    import csv

    dense, deployed = (
        report["audit"]["dense"]["robust_mask"],
        report["audit"]["int8_onnx"]["robust_mask"],
    )
    comparison = report["comparison"]
    lost = sum(d == "1" and f == "0" for d, f in zip(dense, deployed, strict=True))
    gained = sum(d == "0" and f == "1" for d, f in zip(dense, deployed, strict=True))
    assert (comparison["only_reference"], comparison["only_other"]) == (lost, gained)
    assert comparison["other"] == "int8_onnx" and 0 < comparison["p_value"] <= 1
    with open(out / "audit" / "compression-changes.csv") as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == lost + gained
    assert sum(r["change"] == "broken by compression" for r in rows) == lost


def test_probability_outputs_are_a_user_error(tiny, synthetic_test):
    probs = nn.Sequential(tiny, nn.Softmax(dim=1))
    with pytest.raises(UserError, match="apgd_ce.*logits"):
        run_audit(probs, synthetic_test, eps=0.1, samples=16, attacks=["apgd_ce"])
