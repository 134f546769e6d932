"""Registers the built-in attacks (builders are imported only when an attack is built)."""

from __future__ import annotations

from robust_compress.attacks.configs import (
    ApgdConfig,
    ApgdTargetedConfig,
    FgsmConfig,
    FgsmRsConfig,
    PgdConfig,
    SquareConfig,
)
from robust_compress.attacks.registry import ATTACKS

_B = "robust_compress.attacks.builders"
ATTACKS.add("fgsm", f"{_B}:build_fgsm", config=FgsmConfig, label="FGSM", rank=0, alone=True)
ATTACKS.add(
    "fgsm_rs", f"{_B}:build_fgsm_rs", config=FgsmRsConfig, label="FGSM-RS", rank=1, alone=True
)
ATTACKS.add("pgd", f"{_B}:build_pgd", config=PgdConfig, label="PGD", rank=2, alone=True)
ATTACKS.add(
    "apgd_ce",
    f"{_B}:build_art",
    config=ApgdConfig,
    description="Auto-PGD on the cross-entropy loss (step size adapted per iteration), via ART.",
    label="APGD-CE",
    rank=3,
)
ATTACKS.add(
    "apgd_dlr",
    f"{_B}:build_art",
    config=ApgdConfig,
    description="Auto-PGD on the difference-of-logits-ratio loss (scale-invariant), via ART.",
    label="APGD-DLR",
    rank=4,
)
ATTACKS.add(
    "apgd_t",
    f"{_B}:build_apgd_t",
    config=ApgdTargetedConfig,
    description="Targeted Auto-PGD on the targeted DLR loss, top-k classes as targets (APGD-T).",
    label="APGD-T",
    rank=5,
    training=False,
    sweep=False,  # one run per target at every sweep radius: too dear for a curve
)
ATTACKS.add(
    "square",
    f"{_B}:build_square",
    config=SquareConfig,
    label="Square",
    rank=6,
    gradient=False,
    training=False,
)
