"""Paired tests of the dense and the deployed model beyond the ball (audit/beyond_compare.py)."""

import pytest

from robust_compress.audit.beyond_compare import (
    certificate_pairs_markdown,
    corruption_pairs_markdown,
    paired_certificates,
    paired_corruptions,
)
from robust_compress.audit.stats import mcnemar_p


def _corruptions(masks: dict[str, list[str]], severities=(1, 5)) -> dict:
    per = {
        kind: [{"severity": s, "correct_mask": m} for s, m in zip(severities, row, strict=True)]
        for kind, row in masks.items()
    }
    return {
        "kinds": list(masks),
        "severities": list(severities),
        "samples": 4,
        "seed": 0,
        "per_corruption": per,
    }


def test_corruptions_pair_images_over_their_severities():
    dense = _corruptions({"jpeg": ["1111", "1100"], "contrast": ["1010", "0000"]})
    final = _corruptions({"jpeg": ["1110", "0000"], "contrast": ["1011", "0001"]})
    paired = paired_corruptions(dense, final)
    jpeg, contrast = paired["by_corruption"]["jpeg"], paired["by_corruption"]["contrast"]
    # per image, severities right: jpeg dense 2 2 1 1, final 1 1 1 0
    assert (jpeg["only_a"], jpeg["only_b"], jpeg["both"], jpeg["n"]) == (3, 0, 1, 4)
    assert jpeg["p_value"] == mcnemar_p(3, 0) == pytest.approx(0.25)
    assert (contrast["only_a"], contrast["only_b"], contrast["both"]) == (0, 1, 2)
    assert (jpeg["p_holm"], contrast["p_holm"]) == pytest.approx((0.5, 1.0))  # Holm, 2 tests
    # all cells: dense 3 2 2 1, final 2 1 2 2 right per image
    assert (paired["all"]["only_a"], paired["all"]["only_b"], paired["all"]["n"]) == (2, 1, 4)
    table = corruption_pairs_markdown(paired, "the deployed file")
    assert "| jpeg | 3 | 0 | 0.25 | 0.5 | no |" in table
    assert "| all corruptions | 2 | 1 | 1 | - | no |" in table


def test_corruptions_of_other_images_or_without_outcomes_are_not_paired():
    dense = _corruptions({"jpeg": ["1111", "1100"]})
    assert paired_corruptions(dense, _corruptions({"jpeg": ["1111"]}, (1,))) is None
    old = _corruptions({"jpeg": ["1111", "1100"]})
    del old["per_corruption"]["jpeg"][0]["correct_mask"]  # a report from before the masks
    assert paired_corruptions(dense, old) is None


def _certified(correct: str, radii: list[float]) -> dict:
    settings = {"samples": len(radii), "sigma": 0.25, "n0": 10, "n": 50, "alpha": 0.001}
    levels = [{"radius": r} for r in (0, 0.25)]
    return {**settings, "seed": 0, "correct": correct, "radii": radii, "certified": levels}


def test_certificates_pair_by_radius():
    dense = _certified("1110", [0.3, 0.1, 0.5, 0.0])
    final = _certified("1011", [0.1, 0.0, 0.6, 0.2])
    at0, at25 = paired_certificates(dense, final)
    assert at0["radius"] == 0 and (at0["only_a"], at0["only_b"], at0["both"]) == (1, 1, 2)
    assert at25["radius"] == 0.25 and (at25["only_a"], at25["only_b"], at25["both"]) == (1, 0, 1)
    assert (at0["p_holm"], at25["p_holm"]) == (1.0, 1.0)
    assert "| 0.25 | 1 | 0 | 1 | 1 | no |" in certificate_pairs_markdown([at0, at25], "final")
    assert paired_certificates(dense, {**final, "sigma": 0.12}) is None
