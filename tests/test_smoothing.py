"""Randomized-smoothing certification (CERTIFY of Cohen et al. 2019) on hand-made predictors."""

from statistics import NormalDist

import pytest
import torch

from robust_compress.audit.smoothing import ABSTAIN, SmoothingConfig, certify, certify_one
from robust_compress.data.datasets import TensorData


def _data(x, labels):
    return TensorData(x, torch.tensor(labels), num_classes=4, name="hand-made")


def constant(label):
    def predict(x):
        return torch.nn.functional.one_hot(torch.full((len(x),), label), 4).float()

    return predict


def threshold(x):
    """Class 1 when the image's mean is above 0.5, else 0: noise flips images near 0.5."""
    above = x.flatten(1).mean(1) > 0.5
    return torch.stack([(~above).float(), above.float(), 0 * above, 0 * above], 1)


def test_a_constant_classifier_is_certified_with_the_radius_computed_by_hand():
    config = SmoothingConfig(sigma=0.5, n0=10, n=200, alpha=0.01, radii=[0, 0.9, 1.0])
    result = certify(constant(2), _data(torch.rand(3, 1, 4, 4), [2, 2, 0]), config)
    # All n votes for class 2: the Clopper-Pearson lower bound is alpha^(1/n).
    radius = 0.5 * NormalDist().inv_cdf(0.01 ** (1 / 200))
    assert result["predictions"] == [2, 2, 2] and result["correct"] == "110"
    assert result["radii"] == pytest.approx([radius] * 3, abs=1e-6)
    assert result["radius_cap"] == pytest.approx(radius)
    assert [c["count"] for c in result["certified"]] == [2, 2, 0]  # the radius is 0.9999
    assert result["abstained"] == 0 and result["base_clean"] == pytest.approx(2 / 3)
    assert result["base_noisy"] == pytest.approx(2 / 3)


def test_a_classifier_that_flips_under_noise_abstains():
    config = SmoothingConfig(sigma=0.25, n0=20, n=200)
    result = certify(threshold, _data(torch.full((2, 1, 4, 4), 0.5), [0, 1]), config)
    assert result["predictions"] == [ABSTAIN, ABSTAIN] and result["radii"] == [0.0, 0.0]
    assert all(0 < p <= 0.5 for p in result["p_lower"]) and result["abstained"] == 1.0
    assert all(c["count"] == 0 for c in result["certified"])


def test_certified_accuracy_falls_with_the_radius_and_the_seed_fixes_it():
    levels = torch.linspace(0.5, 1.0, 12)  # further from the threshold: larger radii
    x = levels.reshape(-1, 1, 1, 1).expand(-1, 1, 4, 4).contiguous()
    config = SmoothingConfig(sigma=0.5, n0=20, n=300, radii=[0, 0.1, 0.2, 0.4, 0.8, 1.5])
    result = certify(threshold, _data(x, [1] * 12), config)
    counts = [c["count"] for c in result["certified"]]
    assert counts == sorted(counts, reverse=True) and counts[0] > counts[-1]
    assert result["predictions"][0] == ABSTAIN and result["predictions"][-1] == 1
    assert certify(threshold, _data(x, [1] * 12), config)["radii"] == result["radii"]


def test_selection_and_estimation_use_separate_noise_and_batches_do_not_matter():
    seen = []

    def recording(x):
        seen.append(x.clone())
        return constant(1)(x)

    x = torch.rand(1, 3, 3)
    small = SmoothingConfig(sigma=0.3, n0=5, n=20, batch_size=7)
    assert certify_one(recording, x, 4, small, label=1).label_votes == 20
    noise = torch.cat(seen)
    assert noise.shape[0] == 25 and len(torch.unique(noise.flatten(1), dim=0)) == 25
    seen.clear()
    certify_one(recording, x, 4, small.model_copy(update={"batch_size": 25}))
    assert torch.equal(torch.cat(seen), noise)  # the same draws, in one batch


def test_options_are_validated():
    from pydantic import ValidationError

    assert SmoothingConfig(radii=[1, 0, 0.5]).radii == [0, 0.5, 1]
    for bad in ({"sigma": 0}, {"alpha": 0.5}, {"radii": []}, {"radii": [0.5, 0.5]}, {"n": 0}):
        with pytest.raises(ValidationError):
            SmoothingConfig(**bad)
