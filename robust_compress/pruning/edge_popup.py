"""The ``edge_popup`` prune method (Ramanujan et al., CVPR 2020), trained under attack.

The weights are re-initialised at random and frozen; only one score per weight is learned,
with HYDRA's score learning (:func:`robust_compress.pruning.hydra.learn_scores`) from a random
init, under the stage's adversary. The top ``1 - ratio`` of each layer's weights by score form
the subnetwork; the others are set to zero for good. Every Conv2d and Linear is scored, the
head included; the model keeps its shapes.
"""

from __future__ import annotations

import logging

from robust_compress.pruning.hydra import learn_for_stage
from robust_compress.pruning.masks import apply_unstructured, finish_unstructured
from robust_compress.pruning.session_ops import reinitialize, sparse_report

log = logging.getLogger(__name__)


def run(session, stage, label: str) -> None:
    """Edge-popup: random weights, frozen; only scores are learned, under the adversary."""
    if session.records:
        log.warning("stage %s: edge_popup re-initialises the weights at random", label)
    reinitialize(session.model, session.recipe.seed * 7 + session.stage_index)
    adversary = session.adversary_for(session.stage_index, stage.adversary)
    layers, scores = learn_for_stage(session, stage, "", "unstructured", adversary, init="random")
    handles = apply_unstructured(layers, scores, stage.ratio)
    sparsity = finish_unstructured(layers, handles)
    sparse_report(session, "edge_popup", stage, sparsity, score_epochs=stage.score_epochs)
    session.model.eval()
