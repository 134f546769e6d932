"""Registers the built-in prune methods and importance criteria.

Items are ``"module:function"`` strings, so registering imports neither Torch-Pruning nor any
method's code; only the config classes (plain pydantic) are imported here.
"""

from __future__ import annotations

from robust_compress.pruning.configs import (
    AdmmPrune,
    EdgePopupPrune,
    HydraPrune,
    LotteryPrune,
    MagnitudePrune,
)
from robust_compress.pruning.registry import IMPORTANCE, PRUNE_METHODS

_P = "robust_compress.pruning"
PRUNE_METHODS.add(
    "magnitude",
    f"{_P}.magnitude:run",
    config=MagnitudePrune,
    description="Remove the channels an importance criterion ranks lowest, in one or more steps.",
)
PRUNE_METHODS.add(
    "hydra",
    f"{_P}.hydra:run",
    config=HydraPrune,
    description="HYDRA: learn which channels or weights to keep under attack, then prune by it.",
)
PRUNE_METHODS.add(
    "admm",
    f"{_P}.admm:run",
    config=AdmmPrune,
    description="ADMM concurrent adversarial pruning, then adversarial retraining of the rest.",
)
PRUNE_METHODS.add(
    "lottery",
    f"{_P}.lottery:run",
    config=LotteryPrune,
    description="Lottery tickets: rounds of magnitude pruning and rewinding, trained under attack.",
)
PRUNE_METHODS.add(
    "edge_popup",
    f"{_P}.edge_popup:run",
    config=EdgePopupPrune,
    description="Edge-popup: learn under attack which of the frozen random weights to keep.",
)

_I = "robust_compress.adapters.torch_pruning.importance"
IMPORTANCE.add(
    "l1",
    f"{_I}:build_l1",
    description="L1 norm of each channel's weights.",
    magnitude=True,
)
IMPORTANCE.add(
    "l2",
    f"{_I}:build_l2",
    description="L2 norm of each channel's weights.",
    magnitude=True,
)
IMPORTANCE.add(
    "taylor",
    f"{_I}:build_taylor",
    description="First-order Taylor |w * dL/dw| of the clean cross-entropy.",
    gradients=True,
)
IMPORTANCE.add(
    "robust_taylor",
    f"{_I}:build_taylor",
    description="First-order Taylor |w * dL/dw| of the cross-entropy on adversarial examples.",
    gradients=True,
    needs_adversary=True,
)
IMPORTANCE.add(
    "bn_scale",
    f"{_I}:build_bn_scale",
    description="|gamma| of the BatchNorm after each channel.",
)
IMPORTANCE.add(
    "lamp",
    f"{_I}:build_lamp",
    description="LAMP: squared weight magnitude scaled by the layer's larger weights (Lee 2021).",
    magnitude=True,
)
IMPORTANCE.add(
    "random",
    f"{_I}:build_random",
    description="Uniform random scores from the stage's seed (a baseline).",
)
