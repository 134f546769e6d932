"""The engine's dead-network guard (issue 20): a stage that leaves a constant model stops."""

import pytest
import torch
from tiny import tiny_session as _session
from torch import nn

from robust_compress.errors import RunError


def test_a_stage_that_kills_the_network_stops_with_a_run_error(tmp_path):
    from robust_compress.pruning.configs import PruneStage
    from robust_compress.pruning.registry import PRUNE_METHODS

    class ZeroAll(PruneStage):
        method: str = "zero_all"

    def run(session, stage, label):
        with torch.no_grad():
            for m in session.model.modules():
                if isinstance(m, nn.Conv2d | nn.Linear):
                    m.weight.zero_()
        session.results["prune"] = {"importance": "zero_all", "ratio": stage.ratio}

    PRUNE_METHODS.add("zero_all", run, config=ZeroAll)
    try:
        session = _session(
            "dead",
            "  - train: {method: natural, epochs: 1}\n  - prune: {method: zero_all, ratio: 0.5}\n",
            tmp_path / "run",
        )
        with pytest.raises(RunError, match=r"stage 1:prune.*do not depend on (its|the) input"):
            session.run()
    finally:
        PRUNE_METHODS.remove("zero_all")
    assert session.stage_index == 1  # the train stage finished; the prune stage did not
