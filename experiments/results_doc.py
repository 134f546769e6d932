"""Write docs/results.md, docs/results.json and the plots of docs/img/ from the runs' reports."""

from __future__ import annotations

import json
import math
import platform
import re
import statistics
import time
from pathlib import Path

from claims import Claim, seeded_runs

COMMAND = "make results"


def row_of(label: str, run, report: dict, base_report: dict | None) -> dict:
    """The figures of one table row, all read from the run's report.json.

    A run the dead-network guard stopped made no model: it counts as right on no image (clean
    and robust 0) and keeps the guard's message in ``stopped``.
    """
    if "stopped" in report:
        return _stopped_row(label, run, report)
    return {**_identity(label, run, report), **_measured(report, base_report)}


def _identity(label: str, run, report: dict) -> dict:
    """What names a row's run: its label, run folder, recipe, arguments and seed."""
    return {
        "label": label,
        "run": run.name,
        "recipe": f"recipes/experiments/{run.recipe}.yaml",
        "args": dict(run.args),
        "seed": report["seed"],
    }


def _measured(report: dict, base_report: dict | None) -> dict:
    final = report["metrics"]["final"]
    models = report["models"]["final"]
    seconds = sum(s["seconds"] for s in report["stages"])
    onnx = report.get("onnx", {})
    onnx_kind = "int8" if "int8" in onnx else "fp32"
    prune = report.get("prune") or {}
    return {
        "seconds": seconds,
        "seconds_with_base": seconds + (_seconds(base_report) if base_report else 0.0),
        "params": models["params"],
        "macs": models["macs"],
        "onnx_bytes": onnx.get(onnx_kind, {}).get("bytes"),
        "onnx_kind": onnx_kind,
        "sparsity": prune.get("sparsity"),
        "clean": final["clean"],
        "clean_samples": report["per_stage"][-1].get("n_clean"),
        "robust": final["robust"],
        "robust_samples": final["robust_samples"],
        "robust_mask": _mask(report),
        "checks_failed": _failed(report),
        "method": {k: prune[k] for k in ("admm", "hydra") if isinstance(prune.get(k), dict)},
    }


def _stopped_row(label: str, run, report: dict) -> dict:
    seconds = _span_seconds(report.get("log_spans", []))
    return {
        **_identity(label, run, report),
        "stopped": report["stopped"],
        "seconds": seconds,
        "seconds_with_base": seconds,
        "clean": 0.0,
        "robust": 0.0,
        "robust_mask": None,
        "checks_failed": [],
    }


def _span_seconds(spans: list) -> float:
    from datetime import datetime

    parse = lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S")  # noqa: E731
    return sum((parse(b) - parse(a)).total_seconds() for a, b in spans)


def _mask(report: dict) -> str | None:
    """The per-image outcomes of the run's headline audit (the deployed file's when audited)."""
    from robust_compress.audit.compare import headline_key

    audit = report.get("audit") or {}
    key = headline_key(audit)
    return audit[key].get("robust_mask") if key else None


def aggregate(label: str, rows: list[dict]) -> dict:
    """One table row from a row's runs (one per seed): means, spreads and standard errors.

    ``robust`` and ``clean`` become the means over seeds, ``robust_sd`` and ``clean_sd`` their
    standard deviations, and ``se`` the standard error of the robust mean (sd / sqrt(seeds);
    with one seed the binomial error of the figure on its images). Seeds the dead-network
    guard stopped count as 0 in the means (no model, no image right); ``stopped`` lists them.
    """
    rows = sorted(rows, key=lambda r: r["seed"])
    stops = [{"seed": r["seed"], "stopped": r["stopped"]} for r in rows if "stopped" in r]
    measured = [r for r in rows if "stopped" not in r]
    if not measured:
        return _all_stopped(label, rows, stops)
    samples = measured[0]["robust_samples"]
    for r in rows:  # a stopped seed: 0 of the same images
        r.update({k: measured[0][k] for k in _SIZES if "stopped" in r}, robust_samples=samples)
    out = _aggregate_measured(label, rows)
    return {**out, "stopped": stops} if stops else out


#: The model-size fields a stopped seed's row borrows from a measured seed of its row.
_SIZES = ("params", "macs", "onnx_bytes", "onnx_kind", "sparsity", "clean_samples")


def _all_stopped(label: str, rows: list[dict], stops: list[dict]) -> dict:
    out = dict(rows[0])
    out.update(run=", ".join(r["run"] for r in rows), seeds=[r["seed"] for r in rows])
    out.update(masks=[None] * len(rows), stopped=stops, robust_ci=None, se=0.0, methods=[])
    return out


def _aggregate_measured(label: str, rows: list[dict]) -> dict:
    masks = [r.get("robust_mask") for r in rows]
    interval = _pooled_interval(rows)
    if len(rows) == 1:
        row, p = dict(rows[0]), rows[0]["robust"]
        se = math.sqrt(p * (1 - p) / row["robust_samples"])
        one = {"seeds": [row["seed"]], "se": se, "masks": masks, "robust_ci": interval}
        return {**row, **one, "methods": [row.pop("method", {})]}
    k = len(rows)
    robust, clean = [r["robust"] for r in rows], [r["clean"] for r in rows]
    out = dict(rows[0])
    out.pop("method", None)  # one per seed in ``methods``
    out.update(
        run=", ".join(r["run"] for r in rows),
        seeds=[r["seed"] for r in rows],
        seconds=statistics.mean(r["seconds"] for r in rows),
        seconds_with_base=statistics.mean(r["seconds_with_base"] for r in rows),
        robust=statistics.mean(robust),
        robust_sd=statistics.stdev(robust),
        clean=statistics.mean(clean),
        clean_sd=statistics.stdev(clean),
        se=statistics.stdev(robust) / math.sqrt(k),
        checks_failed=sorted({c for r in rows for c in r["checks_failed"]}),
        methods=[r.get("method", {}) for r in rows],
        masks=masks,
        robust_ci=interval,
    )
    return out


def _pooled_interval(rows: list[dict]) -> list[float]:
    """The 95% Wilson interval of the robust images counted over every seed's audit."""
    from robust_compress.audit.stats import wilson

    n = sum(r["robust_samples"] for r in rows)
    return list(wilson(round(sum(r["robust"] * r["robust_samples"] for r in rows)), n))


def _seconds(report: dict) -> float:
    if "stopped" in report:
        return _span_seconds(report.get("log_spans", []))
    return sum(s["seconds"] for s in report["stages"])


def _failed(report: dict) -> list[str]:
    checks = report.get("audit", {}).get("final", {}).get("checks", [])
    return [c["name"] for c in checks if not c.get("passed", True)]


def _fmt_row(r: dict, with_base: bool) -> str:
    recipe = r["recipe"] + "".join(f" `{k}={v}`" for k, v in r["args"].items())
    seeds = r.get("seeds", [r["seed"]])
    secs = f"{r['seconds']:.0f}" + (f" ({r['seconds_with_base']:.0f})" if with_base else "")
    if "params" not in r:  # every seed stopped: no model to describe
        return (
            f"| {r['label']} | {recipe} | {', '.join(map(str, seeds))} | {secs} | - | - | - | "
            f"- | no model: {_stops(r)} |"
        )
    size = f"{r['onnx_bytes'] / 1024:.0f} KB {r['onnx_kind']}" if r["onnx_bytes"] else "-"
    sparse = f" ({100 * r['sparsity']:.0f}% zero)" if r["sparsity"] is not None else ""
    flags = f" ⚠ {', '.join(r['checks_failed'])}" if r["checks_failed"] else ""
    flags += f" ⚠ {_stops(r)}, counted as 0" if r.get("stopped") else ""
    return (
        f"| {r['label']} | {recipe} | {', '.join(map(str, seeds))} | {secs} | "
        f"{r['params']:,}{sparse} | {r['macs'] / 1e6:.2f} M | {size} | "
        f"{_figure(r, 'clean', r['clean_samples'])} | "
        f"{_figure(r, 'robust', r['robust_samples'])}{flags} |"
    )


def _stops(r: dict) -> str:
    """``seed 0 stopped by the dead-network guard (stage 0:prune)``, for each stopped seed."""
    said = []
    for stop in r["stopped"]:
        stage = re.match(r"stage (\S+)", stop["stopped"])
        where = f" after stage {stage.group(1)}" if stage else ""
        said.append(f"seed {stop['seed']} stopped by the dead-network guard{where}")
    return "; ".join(said)


def _figure(r: dict, key: str, samples: int) -> str:
    """``71.0% (1,000)``, or over several seeds ``71.0% ± 1.0 (3 seeds × 1,000)``.

    The robust figure adds its 95% Wilson interval (of the count pooled over the seeds).
    """
    ci = r.get(key + "_ci")
    interval = f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else ""
    if len(r.get("seeds", [])) < 2:
        return f"{100 * r[key]:.1f}%{interval} ({samples:,})"
    return (
        f"{100 * r[key]:.1f}% ± {100 * r[key + '_sd']:.1f}{interval} "
        f"({len(r['seeds'])} seeds × {samples:,})"
    )


def claim_section(
    claim: Claim, rows: list[dict], verdict: tuple[str, str], missing: list[str] = ()
) -> str:
    """The markdown of one claim: title, note, table, verdict and plot.

    ``missing`` names the claim's runs that have not finished yet: the table then shows the
    seeds that did, and the section says the verdict is part-way.
    """
    with_base = claim.number == 4
    why = claim.why({r["label"]: r for r in rows}) if callable(claim.why) else claim.why
    secs = "wall s (with base)" if with_base else "wall s"
    secs += ", mean per seed" if any(len(r.get("seeds", [])) > 1 for r in rows) else ""
    lines = [
        f"## Claim {claim.number}: {claim.title}",
        "",
        f"Source: {claim.source}. {claim.note}",
        "",
        *(
            [
                f"**Part-way:** the runs {', '.join(missing)} have not finished; the rows show "
                "the seeds that every row has finished, and the verdict is provisional.",
                "",
            ]
            if missing
            else []
        ),
        f"| model | recipe | seeds | {secs} | params | MACs | ONNX | clean | robust |",
        "|---|---|---:|---:|---:|---:|---:|---:|---:|",
        *[_fmt_row(r, with_base) for r in rows],
        "",
        f"**Verdict on Fashion-MNIST: {verdict[0]}.** {verdict[1]}.",
        "",
        *([f"Why it may not hold here: {why}.", ""] if why and verdict[0] != "holds" else []),
        f"![claim {claim.number}](img/{claim.plot})",
        "",
    ]
    return "\n".join(lines)


def finished_runs(claim: Claim, reports: dict) -> dict[str, list]:
    """Each row's seeded runs of the seeds that every row of the claim has finished.

    A run counts as finished when its report (and its base's) is there. Keeping only the seeds
    all rows share makes a part-way claim compare like with like; with no such seed the rows
    are empty.
    """
    seeded = {label: seeded_runs(claim, label) for label, _ in claim.rows}
    done = lambda r: r.name in reports and (not r.base or r.base in reports)  # noqa: E731
    shared = set(claim.seeds)
    for runs in seeded.values():
        shared &= {r.seed for r in runs if done(r)}
    return {label: [r for r in runs if r.seed in shared] for label, runs in seeded.items()}


def unfinished(claim: Claim, reports: dict) -> list[str]:
    """The names of the claim's runs and bases without a report, sorted."""
    runs = [r for label, _ in claim.rows for r in seeded_runs(claim, label)]
    return sorted({n for r in runs for n in (r.name, r.base) if n} - reports.keys())


def write_docs(claims, reports, docs: Path, elapsed: float, argv: str) -> Path:
    """Write results.md, results.json and the plots; return the path of results.md."""
    from results_plots import plot_claim

    (docs / "img").mkdir(parents=True, exist_ok=True)
    sections, data = [], []
    total = sum(_seconds(r) for r in reports.values())
    for claim in claims:
        seeded = finished_runs(claim, reports)
        missing = unfinished(claim, reports)
        if not all(seeded.values()):
            sections.append(
                f"## Claim {claim.number}: {claim.title}\n\nNot measured yet: "
                f"the runs {', '.join(missing)} did not finish.\n"
            )
            data.append(
                {
                    "claim": claim.number,
                    "verdict": ("not measured", ""),
                    "rows": [],
                    "missing": missing,
                }
            )
            continue
        rows = [
            aggregate(
                label,
                [row_of(label, r, reports[r.name], reports.get(r.base)) for r in runs],
            )
            for label, runs in seeded.items()
        ]
        by_label = {r["label"]: r for r in rows}
        verdict = claim.judge(by_label)
        plot_claim(claim, by_label, docs / "img" / claim.plot)
        sections.append(claim_section(claim, rows, verdict, missing))
        data.append({"claim": claim.number, "verdict": verdict, "rows": rows, "missing": missing})
    header = _header(total, _span_minutes(reports), argv, data)
    path = docs / "results.md"
    path.write_text(header + "\n".join(sections))
    (docs / "results.json").write_text(json.dumps(data, indent=1) + "\n")
    return path


def _span_minutes(reports: dict) -> float:
    """Minutes during which at least one run was running (the union of the runs' log spans).

    Runs made in several sittings do not count the hours between the sittings.
    """
    from datetime import datetime

    parse = lambda t: datetime.strptime(t, "%Y-%m-%d %H:%M:%S")  # noqa: E731
    spans = sorted(
        (parse(a), parse(b)) for r in reports.values() for a, b in r.get("log_spans", [])
    )
    busy, end = 0.0, None
    for a, b in spans:
        if end is None or a > end:
            busy, end = busy + (b - a).total_seconds(), b
        elif b > end:
            busy, end = busy + (b - end).total_seconds(), b
    return busy / 60


def _header(total: float, span: float, argv: str, data: list[dict]) -> str:
    verdicts = "\n".join(
        f"- Claim {d['claim']}: **{d['verdict'][0]}**"
        + (" (part-way, provisional)" if d.get("missing") and d["rows"] else "")
        for d in data
    )
    return f"""# Results: which robustness-under-compression claims hold on Fashion-MNIST

Generated by `{COMMAND}` (`experiments/results.py{" " + argv if argv else ""}`) on
{time.strftime("%Y-%m-%d")}, {platform.machine()}, 2 CPU cores; nothing on this page is typed by
hand. **Total wall time: {span:.0f} min** during which at least one run was running (the runs
may span several sittings), two runs at a time with one thread each ({total / 60:.0f} min of
the runs' own wall time added up).
Runs already finished are reused (from `runs/experiments`, or from the committed records of
`experiments/records/` in a fresh checkout), so a second `{COMMAND}` only rewrites this page;
`experiments/results.py --page-only` writes it from the runs finished so far, starting none.

Protocol: `builtin:cnn_small` unless a row says otherwise, L-inf eps 0.1 in pixel space, seed
0, batch 128. **clean** is on the test images counted beside it (all 10,000); **robust** is the
audit's per-example worst case over FGSM, PGD-20, APGD-CE, APGD-DLR, APGD-T (3 targets) and
Square (300 queries) on
the first 1,000 test images; for a run that exports an int8 file, the figure of that file as
ONNX Runtime runs it. Training never sees the test set. A ⚠ names an audit sanity check
that failed. "Wall s" is the run's own time. Claims 1, 2 and 5 run every row with seeds 0, 1
and 2 (each seed prunes a base trained with that seed) and show mean ± standard deviation over
the seeds; claims 3 and 4 run one seed. Within a claim every row gets the same number of
adversarial epochs after the step that distinguishes it (each claim's note says how many).
**robust** shows the mean ± the standard deviation over the seeds and, in brackets, the 95%
Wilson interval of the robust count pooled over the seeds' audits. A verdict calls a difference
between two rows real only when an exact two-sided paired test finds it at the 5% level: all
rows are audited on the same first 1,000 test images, so each comparison counts, over the seeds
both rows ran, the images one row keeps robust in more seeds than the other (the image is the
unit: an image's seeds are not independent) and asks with the sign test whether the two counts
could differ by chance; with one seed this is McNemar's test. Each comparison is tested on its
own (no correction for the several comparisons of a claim). The verdicts state both counts and
the p-value. A run that the engine's dead-network guard stopped (its model's outputs no longer
depended on the input) made no model to deploy: the table says so, and it counts as right on no
image, in the means and in the paired tests. (Rows without per-image outcomes fall back to two
standard errors of the difference, at least {100 * 0.01:.0f} point.)

The budgets are sized for 2 CPU cores: a few epochs per phase, three pruning ratios. On a GPU,
raise them before drawing firm conclusions: HYDRA's score epochs towards the paper's 20, tens
of ADMM epochs, full training per lottery round, 100 edge-popup epochs, the 30% point of
claim 2, and more seeds.

Verdicts:

{verdicts}

"""
