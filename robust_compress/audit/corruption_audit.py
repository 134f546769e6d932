"""The corruption audit: accuracy on common corruptions of the test images, by severity.

A Fashion-MNIST-C in the spirit of CIFAR-10-C (Hendrycks & Dietterich, 2019), generated on the
fly from the first ``samples`` test images with a seed (:mod:`robust_compress.audit.corruptions`),
so the dense and the compressed model see the same corrupted images. Forward passes only: the
predictor may be a torch model or the deployed ONNX file.

Example::

    config = CorruptionConfig(samples=1000)
    with as_predictor(Path("runs/quickstart/model.int8.onnx")) as predict:
        result = evaluate_corruptions(predict, load_dataset("fashion-mnist", "test"), config)
    print(result["mean"], result["worst"])
"""

from __future__ import annotations

import logging
import time
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field
from pydantic_core import PydanticCustomError

from robust_compress.audit.corruptions import CORRUPTIONS, SEVERITIES, corrupt
from robust_compress.audit.predict import Predictor, predicted_labels
from robust_compress.audit.report import ci_text, pct
from robust_compress.audit.stats import wilson
from robust_compress.config import STRICT
from robust_compress.errors import suggest

log = logging.getLogger(__name__)


def _known(name: str) -> str:
    if name not in CORRUPTIONS:
        msg = f"unknown corruption {name!r}." + suggest(name, CORRUPTIONS.names())
        raise PydanticCustomError("unknown_name", "{message}", {"message": msg})
    return name


def no_repeats(values: list) -> list:
    """Validator: the list as it is, or an error naming the values listed twice."""
    repeated = sorted({str(v) for v in values if values.count(v) > 1})
    if repeated:
        msg = f"listed more than once: {', '.join(repeated)}"
        raise PydanticCustomError("repeated", "{message}", {"message": msg})
    return values


def all_corruptions() -> list[str]:
    """Every registered corruption, in registration order (the built-in eight first)."""
    return [entry.name for entry in CORRUPTIONS.entries()]


CorruptionName = Annotated[str, AfterValidator(_known)]
Severity = Annotated[int, Field(ge=SEVERITIES[0], le=SEVERITIES[-1])]


class CorruptionConfig(BaseModel):
    """The corruption audit's settings (the audit stage's ``corruptions`` block)."""

    model_config = STRICT
    samples: int = Field(1000, gt=0)
    severities: Annotated[list[Severity], AfterValidator(no_repeats)] = Field(
        default_factory=lambda: list(SEVERITIES), min_length=1
    )
    kinds: Annotated[list[CorruptionName], AfterValidator(no_repeats)] = Field(
        default_factory=all_corruptions, min_length=1
    )
    seed: int = Field(0, ge=0)
    batch_size: int = Field(500, ge=1)


def _cell(hits, n: int) -> dict:
    """One cell from its per-image hits (a bool tensor): counts, interval, the outcomes."""
    correct = int(hits.sum())
    mask = "".join("1" if h else "0" for h in hits.tolist())
    return {
        "accuracy": correct / n,
        "correct": correct,
        "ci": list(wilson(correct, n)),
        "correct_mask": mask,
    }


def evaluate_corruptions(predict: Predictor, data, config: CorruptionConfig) -> dict:
    """Accuracy of ``predict`` on every corruption x severity of the first test images.

    Args:
        predict: Images in [0, 1] -> logits (see
            :func:`~robust_compress.audit.predict.as_predictor`).
        data: The test set (``TensorData`` or ``StreamData``); its first ``samples`` images.
        config: What to run.

    Returns:
        Plain data: ``samples``, ``seed``, ``kinds``, ``severities``, ``clean`` and one cell per
        corruption and severity in ``per_corruption[kind]`` (``severity``, ``accuracy``,
        ``correct``, 95% Wilson ``ci`` and per image ``correct_mask``, a "0"/"1" string),
        ``by_corruption`` (mean over severities), ``mean``
        (over every cell), ``worst`` (the lowest cell) and ``seconds``.
    """
    start = time.perf_counter()
    head = data.head(min(config.samples, len(data)))
    x, y, n = head.x.float(), head.y.long(), len(head.y)
    clean = predicted_labels(predict, x, config.batch_size) == y
    per: dict[str, list[dict]] = {}
    for kind in config.kinds:
        per[kind] = []
        for severity in config.severities:
            images = corrupt(x, kind, severity, config.seed)
            hits = predicted_labels(predict, images, config.batch_size) == y
            per[kind].append({"severity": severity, **_cell(hits, n)})
    cells = [(kind, c) for kind, row in per.items() for c in row]
    worst_kind, worst = min(cells, key=lambda kc: kc[1]["accuracy"])
    result = {
        "samples": n,
        "seed": config.seed,
        "kinds": list(config.kinds),
        "severities": list(config.severities),
        "clean": _cell(clean, n),
        "per_corruption": per,
        "by_corruption": {k: sum(c["accuracy"] for c in r) / len(r) for k, r in per.items()},
        "mean": sum(c["accuracy"] for _, c in cells) / len(cells),
        "worst": {"kind": worst_kind, "severity": worst["severity"], "accuracy": worst["accuracy"]},
        "seconds": time.perf_counter() - start,
    }
    log.info("corruptions: mean %.4f clean %.4f on %d", result["mean"], int(clean.sum()) / n, n)
    return result


def corruption_matrix(result: dict) -> list[str]:
    """One model's accuracy as a Markdown table: corruptions by severity, and the mean."""
    sev = result["severities"]
    rows = [
        "| corruption | " + " | ".join(f"s{s}" for s in sev) + " | mean |",
        "|---|" + "---:|" * (len(sev) + 1),
    ]
    for kind, cells in result["per_corruption"].items():
        values = " | ".join(pct(c["accuracy"]) for c in cells)
        rows.append(f"| {kind} | {values} | {pct(result['by_corruption'][kind])} |")
    return rows


def corruption_markdown(results: dict[str, dict], titles: dict[str, str]) -> str:
    """The run report's section: one table per model (``results`` by model key)."""
    parts = ["## Beyond the ball: common corruptions"]
    first = next(iter(results.values()))
    parts += [
        "",
        f"Accuracy on the first {first['samples']} test images under {len(first['kinds'])} "
        f"corruptions at severities {', '.join(map(str, first['severities']))} (after "
        f"CIFAR-10-C; seed {first['seed']}; see docs/audit.md). Forward passes only.",
    ]
    for key, result in results.items():
        w, clean = result["worst"], result["clean"]
        parts += [
            "",
            f"### {titles.get(key, key)}",
            "",
            f"Clean {pct(clean['accuracy'])} ({ci_text(clean['ci'])}); mean corruption "
            f"accuracy {pct(result['mean'])}; worst: {w['kind']} at severity {w['severity']}, "
            f"{pct(w['accuracy'])}.",
            "",
            *corruption_matrix(result),
        ]
    return "\n".join(parts)
