"""Dense against deployed beyond the ball: paired tests of the corruption audit and smoothing.

Both sections run the dense model and the model that ships on the same images (the same
corrupted copies, the same noise draws), so, as for the adversarial audit
(:mod:`robust_compress.audit.compare`), the images one model gets right and the other gets
wrong can be counted and the exact McNemar test can say whether the difference may be chance.
A corruption pools its severities and certification is compared radius by radius; each
(image, severity) pair counts as one pair.

Example::

    paired = paired_corruptions(report["audit"]["corruptions"]["dense"],
                                report["audit"]["corruptions"]["int8_onnx"])
    print(paired["all"]["only_a"], paired["all"]["only_b"], paired["all"]["p_value"])
"""

from __future__ import annotations

from robust_compress.audit.stats import mcnemar


def paired_corruptions(reference: dict, other: dict) -> dict | None:
    """``reference`` (the dense model) against ``other`` on the same corrupted images.

    Returns:
        ``{"by_corruption": {kind: pair}, "all": pair}`` where a pair is
        :meth:`~robust_compress.audit.stats.Paired.as_dict` (``only_a``: images only the
        reference classifies correctly); None when the two results do not cover the same
        corruptions, severities and images or lack their per-image outcomes.
    """
    if not _same_cells(reference, other):
        return None
    by = {k: mcnemar(_kind_mask(reference, k), _kind_mask(other, k)) for k in reference["kinds"]}
    every = [_kind_mask(r, k) for r in (reference, other) for k in reference["kinds"]]
    half = len(reference["kinds"])
    pooled = mcnemar("".join(every[:half]), "".join(every[half:]))
    return {"by_corruption": {k: p.as_dict() for k, p in by.items()}, "all": pooled.as_dict()}


def _same_cells(a: dict, b: dict) -> bool:
    keys = ("kinds", "severities", "samples", "seed")
    if any(a.get(k) != b.get(k) for k in keys):
        return False
    cells = [c for r in (a, b) for row in r["per_corruption"].values() for c in row]
    return all("correct_mask" in c for c in cells)


def _kind_mask(result: dict, kind: str) -> str:
    return "".join(cell["correct_mask"] for cell in result["per_corruption"][kind])


def paired_certificates(reference: dict, other: dict) -> list[dict] | None:
    """Certified accuracy of ``reference`` against ``other`` at each radius of the reference.

    An image counts for a model at radius r when it is certified correct with a radius of at
    least r (as in the section's table).

    Returns:
        One ``{"radius": r, **pair}`` per radius, or None when the two certifications differ
        in their images, noise or settings.
    """
    keys = ("samples", "sigma", "n0", "n", "alpha", "seed")
    if any(reference.get(k) != other.get(k) for k in keys):
        return None
    return [
        {
            "radius": c["radius"],
            **mcnemar(_at(reference, c["radius"]), _at(other, c["radius"])).as_dict(),
        }
        for c in reference["certified"]
    ]


def _at(result: dict, radius: float) -> list[bool]:
    pairs = zip(result["correct"], result["radii"], strict=True)
    return [flag == "1" and r >= radius for flag, r in pairs]


def corruption_pairs_markdown(paired: dict, other: str) -> list[str]:
    """The paired table of the corruption section: dense against ``other`` (its title)."""
    rows = [
        f'Dense against {other} ("final" below), paired on the same corrupted images (each '
        "image and severity one pair; exact McNemar test):",
        "",
        "| corruption | correct only for dense | correct only for final | McNemar p | "
        "differ at 5% |",
        "|---|---:|---:|---:|---|",
    ]
    items = [*paired["by_corruption"].items(), ("all corruptions", paired["all"])]
    rows += [_pair_row(name, p) for name, p in items]
    return rows


def certificate_pairs_markdown(paired: list[dict], other: str) -> list[str]:
    """The paired table of the smoothing section: dense against ``other`` by radius."""
    rows = [
        f'Dense against {other} ("final" below), paired on the same images and noise (exact '
        "McNemar test):",
        "",
        "| L2 radius | certified only for dense | certified only for final | McNemar p | "
        "differ at 5% |",
        "|---:|---:|---:|---:|---|",
    ]
    rows += [_pair_row(f"{p['radius']:g}", p) for p in paired]
    return rows


def _pair_row(name: str, p: dict) -> str:
    differ = "yes" if p["p_value"] < 0.05 else "no"
    return f"| {name} | {p['only_a']} | {p['only_b']} | {p['p_value']:.2g} | {differ} |"
