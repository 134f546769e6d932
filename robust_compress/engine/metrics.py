"""Quick per-stage measurements: size, MACs, clean accuracy and a PGD robust accuracy.

These feed the per-stage table and plots; the figures a report calls "robust" come from
the audit stage (an attack ensemble), not from here.
"""

from __future__ import annotations

import torch

from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.pruning.size import size_of
from robust_compress.training.loop import evaluate

QUICK_SAMPLES = 1000
QUICK_STEPS = 10


def quick_metrics(session, model=None) -> dict:
    """Clean accuracy on the test set, PGD-10 accuracy on its first 1000 images, and size.

    ``model`` (a float model) is measured instead of the session's current one when given.
    """
    quantized = model is None and session.quant_config is not None
    model = model if model is not None else session.model
    test = session.test_data
    eps = session.recipe.threat.eps
    robust_set = test.subset(min(QUICK_SAMPLES, len(test)))
    clean = evaluate(model, test)
    if session.recipe.threat.norm == "linf":
        generator = torch.Generator().manual_seed(session.recipe.seed)
        attack = TorchPGD(eps, QUICK_STEPS, generator=generator)
    else:
        from robust_compress.adapters.art.adversary import ArtAdversary

        attack = ArtAdversary("pgd", eps, norm="l2", steps=QUICK_STEPS, seed=session.recipe.seed)
    robust = evaluate(model, robust_set, attack)
    return {
        "clean": clean,
        "pgd10": robust,
        "n_clean": len(test),
        "n_robust": len(robust_set),
        "quantized": quantized,
        **size_of(session.float_reference() if quantized else model, session.example()),
    }
