"""Two audits of the same images side by side: what compression broke, and whether it is noise.

The audit stage audits the dense snapshot and the model that ships (the integer ONNX file
when one was exported, the torch model otherwise) on the same first ``samples`` test images,
and records per image whether it stayed correct under the whole ensemble (``robust_mask``).
:func:`compare_audits` pairs the two: the images only the dense model keeps are the ones
compression broke; the exact McNemar test on the discordant images says whether the
difference can be chance (:mod:`robust_compress.audit.stats`).
"""

from __future__ import annotations

import csv
import io

from robust_compress.audit.stats import mcnemar

DEPLOYED_KEYS = ("int8_onnx", "final")
"""The audit results the headline comes from, first present wins: the file as deployed, else
the final torch model."""

CHANGE_FIELDS = (
    "index",
    "label",
    "dense_clean",
    "dense_robust",
    "final_clean",
    "final_robust",
    "change",
)


def headline_key(audit: dict) -> str | None:
    """The key of the audit whose robust figure is the run's headline, or None."""
    return next((k for k in DEPLOYED_KEYS if isinstance(audit.get(k), dict)), None)


def compare_audits(reference: dict, other: dict) -> dict:
    """The paired comparison of two audits of the same images (``reference``: the dense one).

    Returns:
        Plain data: ``n``, ``only_reference`` (robust for the reference only: broken by
        compression), ``only_other``, ``both``, ``neither``, ``p_value`` (two-sided exact
        McNemar) and ``significant`` (at 0.05).

    Raises:
        ValueError: The audits cover different numbers of images.
    """
    paired = mcnemar(reference["robust_mask"], other["robust_mask"])
    return {
        "n": paired.n,
        "only_reference": paired.only_a,
        "only_other": paired.only_b,
        "both": paired.both,
        "neither": paired.n - paired.only_a - paired.only_b - paired.both,
        "p_value": paired.p_value,
        "significant": paired.significant(),
    }


def changed_images(reference: dict, other: dict, labels: list[int]) -> list[dict]:
    """One row per image whose robustness differs between the two audits, in index order."""
    rows = []
    masks = [reference.get(k) or "" for k in ("clean_mask", "robust_mask")]
    masks += [other.get(k) or "" for k in ("clean_mask", "robust_mask")]
    for i, (dense, final) in enumerate(zip(masks[1], masks[3], strict=False)):
        if dense == final:
            continue
        rows.append(
            {
                "index": i,
                "label": labels[i] if i < len(labels) else "",
                "dense_clean": _flag(masks[0], i),
                "dense_robust": int(dense == "1"),
                "final_clean": _flag(masks[2], i),
                "final_robust": int(final == "1"),
                "change": "broken by compression" if dense == "1" else "robust only after",
            }
        )
    return rows


def changes_csv(rows: list[dict]) -> str:
    """The rows of :func:`changed_images` as CSV text with a header."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=CHANGE_FIELDS, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def comparison_markdown(comparison: dict, final_name: str) -> list[str]:
    """The paired table of the run report (dense against ``final_name``)."""
    c = comparison
    verdict = (
        "the difference is significant at 5%"
        if c["significant"]
        else "the difference could be chance at 5%"
    )
    return [
        f"Dense against {final_name} on the same {c['n']} audited images (robust = correct "
        "under every attack):",
        "",
        "| robust for | images |",
        "|---|---:|",
        f"| both | {c['both']} |",
        f"| dense only (broken by compression) | {c['only_reference']} |",
        f"| {final_name} only | {c['only_other']} |",
        f"| neither | {c['neither']} |",
        "",
        f"Exact McNemar test on the {c['only_reference'] + c['only_other']} discordant images: "
        f"p = {c['p_value']:.3g}; {verdict}. The images are listed in "
        "`audit/compression-changes.csv`.",
    ]


def _flag(mask: str, i: int) -> int | str:
    return int(mask[i] == "1") if i < len(mask) else ""
