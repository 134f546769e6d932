"""Dense against deployed beyond the ball: paired tests of the corruption audit and smoothing.

Both sections run the dense model and the model that ships on the same images (the same
corrupted copies, the same noise draws), so, as for the adversarial audit
(:mod:`robust_compress.audit.compare`), the images one model gets right and the other gets
wrong can be counted and an exact test can say whether the difference may be chance. The unit
is the image: under a corruption an image has one outcome per severity, and those outcomes are
not independent, so an image counts for the model that gets more of its severities right (an
exact sign test, :func:`~robust_compress.audit.stats.sign_test`); certification is compared
radius by radius (McNemar). The corruptions, and the radii, are several tests at once: their
p-values are also given Holm-adjusted (``p_holm``), and "differ at 5%" reads those.

Example::

    paired = paired_corruptions(report["audit"]["corruptions"]["dense"],
                                report["audit"]["corruptions"]["int8_onnx"])
    print(paired["all"]["only_a"], paired["all"]["only_b"], paired["all"]["p_value"])
"""

from __future__ import annotations

from robust_compress.audit.stats import holm, mcnemar, sign_test


def paired_corruptions(reference: dict, other: dict) -> dict | None:
    """``reference`` (the dense model) against ``other`` on the same corrupted images.

    Returns:
        ``{"by_corruption": {kind: pair}, "all": pair}`` where a pair is
        :meth:`~robust_compress.audit.stats.Paired.as_dict` over images (``only_a``: the
        images the reference gets right under more severities, of that corruption or of all)
        plus, per corruption, ``p_holm`` (adjusted over the corruptions); None when the two
        results do not cover the same corruptions, severities and images or lack their
        per-image outcomes.
    """
    if not _same_cells(reference, other):
        return None
    kinds = reference["kinds"]
    by = {k: sign_test(_masks(reference, [k]), _masks(other, [k])).as_dict() for k in kinds}
    for pair, adjusted in zip(by.values(), holm([p["p_value"] for p in by.values()]), strict=True):
        pair["p_holm"] = adjusted
    pooled = sign_test(_masks(reference, kinds), _masks(other, kinds)).as_dict()
    return {"by_corruption": by, "all": pooled}


def _same_cells(a: dict, b: dict) -> bool:
    keys = ("kinds", "severities", "samples", "seed")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    cells = [c for r in (a, b) for row in r["per_corruption"].values() for c in row]
    return all("correct_mask" in c for c in cells)


def _masks(result: dict, kinds: list[str]) -> list[str]:
    """The per-image outcomes of every cell of ``kinds``, one string per cell."""
    return [cell["correct_mask"] for k in kinds for cell in result["per_corruption"][k]]


def paired_certificates(reference: dict, other: dict) -> list[dict] | None:
    """Certified accuracy of ``reference`` against ``other`` at each radius of the reference.

    An image counts for a model at radius r when it is certified correct with a radius of at
    least r (as in the section's table).

    Returns:
        One ``{"radius": r, **pair, "p_holm": adjusted over the radii}`` per radius, or None
        when the two certifications differ in their images, noise or settings.
    """
    keys = ("samples", "sigma", "n0", "n", "alpha", "seed")
    if any(reference.get(k) != other.get(k) for k in keys):
        return None
    pairs = [
        {
            "radius": c["radius"],
            **mcnemar(_at(reference, c["radius"]), _at(other, c["radius"])).as_dict(),
        }
        for c in reference["certified"]
    ]
    for pair, adjusted in zip(pairs, holm([p["p_value"] for p in pairs]), strict=True):
        pair["p_holm"] = adjusted
    return pairs


def _at(result: dict, radius: float) -> list[bool]:
    pairs = zip(result["correct"], result["radii"], strict=True)
    return [flag == "1" and r >= radius for flag, r in pairs]


def corruption_pairs_markdown(paired: dict, other: str) -> list[str]:
    """The paired table of the corruption section: dense against ``other`` (its title)."""
    rows = [
        f'Dense against {other} ("final" below), paired on the same corrupted images. The '
        "unit is the image: it counts for the model that gets more of its severities right "
        "(exact sign test); p Holm-adjusted over the corruptions, the pooled row on its own:",
        "",
        "| corruption | images dense gets right more often | images final gets right more often "
        "| p | p (Holm) | differ at 5% |",
        "|---|---:|---:|---:|---:|---|",
    ]
    items = [*paired["by_corruption"].items(), ("all corruptions", paired["all"])]
    rows += [_pair_row(name, p) for name, p in items]
    return rows


def certificate_pairs_markdown(paired: list[dict], other: str) -> list[str]:
    """The paired table of the smoothing section: dense against ``other`` by radius."""
    rows = [
        f'Dense against {other} ("final" below), paired on the same images and noise (exact '
        "McNemar test; p Holm-adjusted over the radii):",
        "",
        "| L2 radius | certified only for dense | certified only for final | p | p (Holm) | "
        "differ at 5% |",
        "|---:|---:|---:|---:|---:|---|",
    ]
    rows += [_pair_row(f"{p['radius']:g}", p) for p in paired]
    return rows


def _pair_row(name: str, p: dict) -> str:
    adjusted = p.get("p_holm", p["p_value"])
    differ = "yes" if adjusted < 0.05 else "no"
    holm_text = f"{p['p_holm']:.2g}" if "p_holm" in p else "-"
    return (
        f"| {name} | {p['only_a']} | {p['only_b']} | {p['p_value']:.2g} | {holm_text} | {differ} |"
    )
