"""Randomized-smoothing certification (Cohen, Rosenfeld & Kolter, 2019): CERTIFY, forward only.

The smoothed classifier ``g(x) = argmax_c P(f(x + N(0, sigma^2 I)) = c)`` of a base classifier
``f`` (any predictor: a torch model or the deployed ONNX file) is certified image by image:
``n0`` noisy copies pick the class ``c_A``; ``n`` fresh copies count how often ``f`` returns it;
the one-sided Clopper-Pearson bound at level ``1 - alpha`` bounds ``p_A`` below; when that bound
exceeds 1/2, ``g`` returns ``c_A`` at every point within the L2 radius
``sigma * Phi^-1(p_A_lower)`` (with probability at least ``1 - alpha``), else it abstains.
This matches ``Smooth.certify`` of github.com/locuslab/smoothing (``code/core.py``).

The noise is not clipped to [0, 1] (the theorem needs the Gaussian itself), its draws come from
NumPy's PCG64 seeded by ``(seed, image index)``, so a seed gives the same noise for every model
and on every CPU. With ``n`` samples no radius beyond ``sigma * Phi^-1(alpha^(1/n))`` can be
certified (``radius_cap``).
"""

from __future__ import annotations

import logging
import time
from statistics import NormalDist
from typing import Annotated, NamedTuple

import numpy as np
import torch
from pydantic import AfterValidator, BaseModel, Field
from torch import Tensor

from robust_compress.audit.corruption_audit import no_repeats
from robust_compress.audit.predict import Predictor, predicted_labels
from robust_compress.audit.report import ci_text, pct
from robust_compress.audit.stats import clopper_pearson, wilson
from robust_compress.config import STRICT

log = logging.getLogger(__name__)

ABSTAIN = -1


def _sorted(values: list[float]) -> list[float]:
    return sorted(no_repeats(values))


class SmoothingConfig(BaseModel):
    """Randomized-smoothing settings (the audit stage's ``smoothing`` block)."""

    model_config = STRICT
    sigma: float = Field(0.25, gt=0)
    n0: int = Field(100, ge=1)
    n: int = Field(1000, ge=1)
    alpha: float = Field(0.001, gt=0, lt=0.5)
    radii: Annotated[list[Annotated[float, Field(ge=0)]], AfterValidator(_sorted)] = Field(
        default_factory=lambda: [0.0, 0.25, 0.5, 0.75, 1.0], min_length=1
    )
    samples: int = Field(100, gt=0)
    batch_size: int = Field(1000, ge=1)
    seed: int = Field(0, ge=0)


class Certificate(NamedTuple):
    """CERTIFY's answer for one image.

    Attributes:
        prediction: The class certified, or ``ABSTAIN``.
        radius: The certified L2 radius (0 when abstaining).
        p_lower: The lower confidence bound on the top class's probability under noise.
        label_votes: Of the ``n`` estimation copies, those classified as the true label.
    """

    prediction: int
    radius: float
    p_lower: float
    label_votes: int


def certify_one(
    predict: Predictor, x: Tensor, index: int, config: SmoothingConfig, label: int = -1
) -> Certificate:
    """CERTIFY one image ``x`` (C, H, W) whose true class is ``label`` (-1: unknown)."""
    rng = np.random.default_rng([config.seed, index])
    labels = _noisy_labels(predict, x, config.n0 + config.n, config, rng)
    top = int(torch.bincount(labels[: config.n0]).argmax())  # ties: the lowest class
    estimation = labels[config.n0 :]
    hits = int((estimation == top).sum())
    votes = int((estimation == label).sum())
    p_lower = clopper_pearson(hits, config.n, config.alpha, "lower")
    if p_lower <= 0.5:
        return Certificate(ABSTAIN, 0.0, p_lower, votes)
    return Certificate(top, config.sigma * NormalDist().inv_cdf(p_lower), p_lower, votes)


def _noisy_labels(predict, x, count, config, rng) -> Tensor:
    out = []
    for start in range(0, count, config.batch_size):
        size = min(config.batch_size, count - start)
        noise = torch.from_numpy(rng.standard_normal((size, *x.shape), dtype=np.float32))
        out.append(predicted_labels(predict, x + config.sigma * noise, size))
    return torch.cat(out)


def certify(predict: Predictor, data, config: SmoothingConfig) -> dict:
    """Certify the first ``config.samples`` images of ``data`` with the smoothed ``predict``.

    Returns:
        Plain data: the settings (``sigma``, ``n0``, ``n``, ``alpha``, ``seed``, ``samples``),
        ``radius_cap``, per image ``predictions`` (-1: abstained), ``radii``, ``p_lower`` and
        ``correct`` (a "0"/"1" string), ``certified`` (per requested radius: ``accuracy``,
        ``count`` and 95% Wilson ``ci`` of images certified correct with at least that
        radius), ``abstained`` (share), ``base_clean`` (the base classifier without noise),
        ``base_noisy`` (the base classifier on the ``n`` noisy copies) and ``seconds``.
    """
    start = time.perf_counter()
    head = data.head(min(config.samples, len(data)))
    x, y, n = head.x.float(), head.y.long(), len(head.y)
    found = [certify_one(predict, x[i], i, config, int(y[i])) for i in range(n)]
    predictions = [c.prediction for c in found]
    radii = [c.radius for c in found]
    correct = [p == int(label) for p, label in zip(predictions, y.tolist(), strict=True)]
    base = int((predicted_labels(predict, x, config.batch_size) == y).sum())
    result = {
        **config.model_dump(exclude={"radii", "batch_size"}),
        "samples": n,
        "radius_cap": config.sigma * NormalDist().inv_cdf(config.alpha ** (1 / config.n)),
        "predictions": predictions,
        "radii": radii,
        "p_lower": [c.p_lower for c in found],
        "correct": "".join("1" if c else "0" for c in correct),
        "certified": [_at_radius(r, radii, correct) for r in config.radii],
        "abstained": predictions.count(ABSTAIN) / n,
        "base_clean": base / n,
        "base_noisy": sum(c.label_votes for c in found) / (n * config.n),
        "seconds": time.perf_counter() - start,
    }
    curve = ", ".join(f"{c['radius']:g}: {c['accuracy']:.3f}" for c in result["certified"])
    log.info("smoothing: sigma %g, certified accuracy by radius %s", config.sigma, curve)
    return result


def _at_radius(radius: float, radii: list[float], correct: list[bool]) -> dict:
    count = sum(1 for r, c in zip(radii, correct, strict=True) if c and r >= radius)
    n = len(radii)
    return {"radius": radius, "accuracy": count / n, "count": count, "ci": list(wilson(count, n))}


def smoothing_markdown(results: dict[str, dict], titles: dict[str, str]) -> str:
    """The run report's section: certified accuracy by radius, models side by side."""
    first = next(iter(results.values()))
    keys = list(results)
    parts = [
        "## Beyond the ball: randomized smoothing",
        "",
        f"Certified L2 accuracy of the smoothed classifiers (Cohen et al. 2019, CERTIFY) on the "
        f"first {first['samples']} test images: sigma {first['sigma']:g}, n0 {first['n0']}, "
        f"n {first['n']}, alpha {first['alpha']:g}, seed {first['seed']}; an image counts at "
        f"radius r when it is certified correct with a radius of at least r. No radius beyond "
        f"{first['radius_cap']:.3f} can be certified with n {first['n']}. The base models were "
        "not trained with Gaussian noise: these are the figures of classifiers not made for "
        "smoothing.",
        "",
        "| L2 radius | " + " | ".join(titles.get(k, k) for k in keys) + " |",
        "|---:|" + "---|" * len(keys),
    ]
    for i, row in enumerate(first["certified"]):
        cells = [results[k]["certified"][i] for k in keys]
        text = " | ".join(f"{pct(c['accuracy'])} ({ci_text(c['ci'])})" for c in cells)
        parts.append(f"| {row['radius']:g} | {text} |")
    parts.append("| abstained | " + " | ".join(pct(results[k]["abstained"]) for k in keys) + " |")
    parts.append(
        "| base model under the noise | "
        + " | ".join(pct(results[k]["base_noisy"]) for k in keys)
        + " |"
    )
    parts.append(
        "| base model, no noise | " + " | ".join(pct(results[k]["base_clean"]) for k in keys) + " |"
    )
    return "\n".join(parts)
