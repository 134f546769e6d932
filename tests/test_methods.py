"""Every compression method of docs/methods.md, end to end on cnn_small and Fashion-MNIST.

Each test runs a shipped recipe shrunk by overrides to a small slice of the real data (PGD-1,
one epoch per phase, a short audit) and checks what the method promises: real channel removal,
the sparsity asked for, frozen random weights, the TRADES trade-off actually used.
"""

from pathlib import Path

import pytest
import torch

from robust_compress.adapters.torch_pruning.pruner import count_macs_params
from robust_compress.data import sources as data_mod
from robust_compress.engine.session import Session
from robust_compress.pruning.session_ops import reinitialize
from robust_compress.recipe.loader import load_recipe

pytestmark = pytest.mark.skipif(
    not data_mod.DEBIAN_DIR.is_dir(), reason="Debian's Fashion-MNIST missing"
)
ROOT = Path(__file__).resolve().parents[1]
PGD1 = "{attack: pgd, steps: 1}"
SMALL = [
    "data.train_subset=512",
    "data.test_subset=128",
    "data.batch_size=64",
]


def _run(tmp_path, recipe: str, *overrides: str) -> tuple[Session, dict]:
    """Run a shipped recipe shrunk to a slice of the data, PGD-1 and one epoch per phase."""
    path = ROOT / "recipes" / f"{recipe}.yaml"
    stages = load_recipe(path).stages
    shrink = [*SMALL]
    for i, stage in enumerate(stages):
        key = f"stages.{i}.{stage.kind}"
        if stage.kind in ("train", "prune") and stage.adversary is not None:
            shrink.append(f"{key}.adversary.steps=1")
        if stage.kind == "audit":
            shrink += [f"{key}.samples=32", f"{key}.attacks=[fgsm, pgd]", f"{key}.pgd_steps=5"]
            shrink.append(f"{key}.sanity_checks=false")
    session = Session(load_recipe(path, [*shrink, *overrides]), tmp_path / recipe)
    session.setup()
    report = session.run()
    assert (tmp_path / recipe / "model.onnx").is_file()
    final = report["metrics"]["final"]
    assert final["robust_samples"] == 32 and final["robust"] <= final["clean"]
    return session, report


def _macs_ratio(session: Session) -> float:
    example = session.example()
    return (
        count_macs_params(session.model, example)[0]
        / count_macs_params(session.dense_model(), example)[0]
    )


def _weight_sparsity(model) -> float:
    weights = [m.weight for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    return sum(int((w == 0).sum()) for w in weights) / sum(w.numel() for w in weights)


@pytest.mark.parametrize("form", ["structured", "unstructured"])
def test_hydra(tmp_path, form):
    session, report = _run(tmp_path, f"hydra-{form}", "args.epochs=1")
    if form == "structured":
        assert _macs_ratio(session) < 0.4
    else:
        assert report["prune"]["sparsity"] == pytest.approx(0.5, abs=0.01)
        assert _macs_ratio(session) == 1.0  # unstructured: no fewer MACs, said plainly


def test_admm_removes_channels_for_real(tmp_path):
    session, report = _run(tmp_path, "admm", "args.epochs=1")
    assert _macs_ratio(session) < 0.4
    admm = report["prune"]["admm"]
    assert admm["updates"] == 2 and admm["final_rho"] == pytest.approx(0.01 * 1.5**2)


def test_group_norm_sparse_training_then_pruning(tmp_path):
    session, report = _run(tmp_path, "sparse-training", "args.epochs=1")
    assert _macs_ratio(session) < 0.4
    assert report["prune"]["sparsity_reg"] == 0.0005


def test_lottery_ticket_reaches_its_sparsity(tmp_path):
    session, report = _run(tmp_path, "lottery", "args.round_epochs=1")
    assert report["prune"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert _weight_sparsity(session.model) == pytest.approx(0.8, abs=0.01)
    assert "lottery" not in session.progress.method_state  # its rewind state is not carried on
    assert [r["kind"] for r in report["per_stage"]] == ["prune", "export", "audit"]


def test_edge_popup_keeps_the_random_weights(tmp_path):
    session, report = _run(tmp_path, "edge-popup", "args.score_epochs=1")
    assert report["prune"]["sparsity"] == pytest.approx(0.5, abs=0.01)
    fresh = session._fresh_model()
    reinitialize(fresh, session.recipe.seed * 7 + 0)
    for (name, p), q in zip(session.model.named_parameters(), fresh.parameters(), strict=True):
        if name.endswith("weight") and p.dim() > 1:
            kept = p != 0
            assert 0.45 < kept.float().mean() < 0.55, name
            assert torch.equal(p[kept], q[kept]), name  # never trained, only selected
        else:
            assert torch.equal(p, q), name  # biases and BatchNorm affine stay at init


def test_trades_training_uses_its_beta(tmp_path):
    session, _ = _run(tmp_path, "train-trades", "args.epochs=1", "stages.0.train.trades_beta=3.0")
    trades = session.adversary_for(0)  # a trades train stage's adversary is its TRADES loss
    assert trades.beta == 3.0 and trades.steps == 1


def test_trades_refuses_an_l2_threat():
    from robust_compress.attacks.configs import AdversaryConfig
    from robust_compress.errors import UserError
    from robust_compress.training.trades import trades_for

    cfg = AdversaryConfig(attack="pgd").resolved(0.5)
    with pytest.raises(UserError, match="L-inf ball"):
        trades_for(cfg, "l2", 6.0)
    assert trades_for(cfg, "linf", 2.0).beta == 2.0
