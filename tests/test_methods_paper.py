"""ADMM under BatchNorm and the lottery control's initialisation.

Issue 20: each test failed on the code before the fix (the note of the issue says how).
"""

import pytest
import torch
from tiny import tiny_session as _session

from robust_compress.models.specs import build_model
from robust_compress.pruning import admm, lottery


def test_admm_switches_off_the_channels_it_drops_under_batchnorm(monkeypatch):
    seen = {}
    real = admm.prune_by_scores

    def capture(session, stage, scores, importance):
        conv, bn = session.model.features[0], session.model.features[1]
        dropped = torch.topk(scores[conv], len(scores[conv]) // 2, largest=False).indices
        acts = {}
        handle = bn.register_forward_hook(lambda m, i, o: acts.update(bn=o.detach()) and None)
        session.model.eval()
        with torch.no_grad():
            session.model(session.train_data.x[:64])
        handle.remove()
        per_channel = acts["bn"].abs().mean((0, 2, 3))
        keep = torch.ones_like(per_channel, dtype=torch.bool)
        keep[dropped] = False
        seen["ratio"] = float(per_channel[~keep].mean() / per_channel[keep].mean())
        session.model.train()
        return real(session, stage, scores, importance)

    monkeypatch.setattr(admm, "prune_by_scores", capture)
    torch.manual_seed(0)
    session = _session(
        "admm",
        "  - prune: {method: admm, ratio: 0.5, admm_epochs: 4, admm_rho: 2.0, admm_rho_growth: 2,"
        " optimizer: {lr: 0.05}}\n",
    )
    session.run()
    # the BatchNorm output of the channels ADMM drops is near zero when the prune comes
    assert seen["ratio"] < 0.2, seen
    report = session.results["prune"]["admm"]
    assert len(report["residuals"]) == report["updates"] == 4
    assert report["residual_before_prune"] == report["residuals"][-1]


def _std(state: dict, key: str) -> float:
    return float(state[key].float().std())


def test_lottery_control_draws_from_the_models_own_initialisation():
    torch.manual_seed(0)
    session = _session("l", "  - prune: {method: lottery, ratio: 0.5, rounds: 1, reinit: true}\n")
    ticket = lottery._Lottery(session, session.recipe.stages[0])
    control = ticket._random_state()
    fresh = build_model("builtin:cnn_tiny").state_dict()
    for key in ("features.0.weight", "features.3.weight", "fc.weight", "head.weight"):
        assert _std(control, key) == pytest.approx(_std(fresh, key), rel=0.15), key
    assert control["fc.bias"].abs().sum() > 0  # Linear biases are drawn too, not zero
    assert not torch.equal(control["fc.weight"], session.model.fc.weight.detach())
