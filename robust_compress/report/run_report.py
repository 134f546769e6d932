"""The run's report: ``report.json`` (the contract in docs/engine.md), ``report.md``, plots.

A run with an audit also gets ``report.html`` (:mod:`robust_compress.report.html`).
"""

from __future__ import annotations

import json
import logging

from robust_compress.audit.compare import headline_key
from robust_compress.audit.report import ci_text
from robust_compress.search.report import search_sections

log = logging.getLogger(__name__)


def build_report(session) -> dict:
    """Assemble the report dict from the session's records, audit and ONNX results."""
    records = session.records
    audit = session.results.get("audit", {})
    dense_rec = _dense_record(session)
    final_rec = records[-1] if records else {}
    onnx = session.results.get("onnx", {})
    final_models = {"params": final_rec.get("params"), "macs": final_rec.get("macs")}
    if onnx:
        final_models["onnx_bytes"] = onnx.get("int8", onnx.get("fp32", {})).get("bytes")
    return {
        "recipe": session.recipe.name,
        "seed": session.recipe.seed,
        "threat": {"norm": session.recipe.threat.norm, "eps": session.recipe.threat.eps},
        "stages": [{"name": r["name"], "seconds": r["seconds"]} for r in records],
        "models": {
            "dense": {
                "params": dense_rec.get("params"),
                "macs": dense_rec.get("macs"),
                "onnx_bytes": onnx.get("dense", {}).get("bytes"),
            },
            "final": final_models,
        },
        "metrics": {
            "dense": _metrics(dense_rec, audit.get("dense")),
            "final": final_metrics(final_rec, audit),
        },
        "comparison": audit.get("comparison"),
        "onnx": onnx,
        "per_stage": records,
        "audit": audit,
        "prune": session.results.get("prune"),
        "sensitivity": session.results.get("sensitivity"),
        "search": session.results.get("search"),
    }


def _dense_record(session) -> dict:
    """The record of the last stage before the first compression stage.

    A recipe that starts by compressing has none: its dense snapshot is measured instead.
    """
    dense = {}
    for r in session.records:
        if r["kind"] in ("prune", "quantize", "search"):
            break
        dense = r
    if not dense and session.dense_state is not None:
        dense = session.measure("dense", "dense", session.dense_model())
    return dense


def _metrics(record: dict, audit: dict | None) -> dict:
    return {
        "clean": record.get("clean"),
        "robust": audit["robust"] if audit else None,
        "robust_ci": audit.get("robust_ci") if audit else None,
        "robust_source": "audit worst case" if audit else "not audited",
        "robust_samples": audit.get("samples") if audit else None,
        "pgd10": record.get("pgd10"),
    }


def final_metrics(record: dict, audit: dict) -> dict:
    """The final model's figures; the headline robust figure is the deployed file's, if any.

    ``robust_twin`` keeps the torch (fake-quant) model's own audited figure beside it.
    """
    key = headline_key(audit)
    metrics = _metrics(record, audit.get(key) if key else None)
    if key == "int8_onnx":
        file = audit["int8_onnx"]
        metrics["robust_source"] = "audit worst case of model.int8.onnx (ONNX Runtime, deployed)"
        metrics["clean_deployed"] = file.get("clean")
        twin = audit.get("final") or {}
        metrics["robust_twin"] = twin.get("robust")
        metrics["robust_twin_ci"] = twin.get("robust_ci")
    return metrics


def write_report(session) -> dict:
    """Build the report and write report.json, report.md and plots (if there is a folder)."""
    report = build_report(session)
    if session.out is None:
        return report
    session.out.write_text("report.json", json.dumps(report, indent=2, default=float))
    session.out.write_text("report.md", markdown(report))
    try:
        from robust_compress.report.plots import stage_plot

        stage_plot(report, session.out.plots / "stages.png")
        session.out.record(session.out.plots / "stages.png")
    except ImportError as exc:  # matplotlib is a dependency, but never lose the report over it
        log.warning("no plot: %s", exc)
    if report.get("audit"):
        write_html(session, report)
    return report


def write_html(session, report: dict) -> None:
    """Write ``report.html`` (the gallery attacks a few images again, on the final model)."""
    import base64

    from robust_compress.report.gallery import gallery
    from robust_compress.report.html import render

    plot = session.out.plots / "stages.png"
    uri = None
    if plot.is_file():
        uri = "data:image/png;base64," + base64.b64encode(plot.read_bytes()).decode("ascii")
    try:
        items = gallery(session, report["audit"])
    except Exception as exc:  # noqa: BLE001 - the page is still worth writing without it
        log.warning("report.html: no gallery: %s", exc)
        items = []
    session.out.write_text("report.html", render(report, uri, items))


def _pct(value) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _int(value) -> str:
    return "-" if value is None else f"{value:,}"


def summary_table(report: dict) -> str:
    """The table a person reads first: dense vs final (the deployed file's robust figure)."""
    m, s = report["metrics"], report["models"]
    rows = [
        "| model | params | MACs | clean | robust (audit) | 95% interval | PGD-10 |",
        "|---|---|---|---|---|---|---|",
    ]
    for name in ("dense", "final"):
        title = name + (" (model.int8.onnx)" if "robust_twin" in m[name] else "")
        rows.append(
            f"| {title} | {_int(s[name]['params'])} | {_int(s[name]['macs'])} | "
            f"{_pct(m[name]['clean'])} | {_pct(m[name]['robust'])} | "
            f"{ci_text(m[name].get('robust_ci'))} | {_pct(m[name]['pgd10'])} |"
        )
    if "robust_twin" in m["final"]:
        f = m["final"]
        rows.append(
            f"| final, fake-quant twin (torch) | | | | {_pct(f['robust_twin'])} | "
            f"{ci_text(f.get('robust_twin_ci'))} | |"
        )
    return "\n".join(rows)


def markdown(report: dict) -> str:
    """Render ``report.md``."""
    t = report["threat"]
    lines = [
        f"# Run report: {report['recipe']}",
        "",
        f"Threat model: {t['norm']} eps {t['eps']} (pixel space, inputs in [0, 1]); seed "
        f"{report['seed']}.",
        "",
        summary_table(report),
        "",
        "Robust accuracy is the audit's per-example worst case over its attack ensemble"
        " (see the audit section), with its 95% Wilson interval; the final model's is that of"
        " the file that ships when an integer ONNX file was exported. PGD-10 is the quick"
        " per-stage check.",
        "",
        "## Stages",
        "",
        "| stage | seconds | params | MACs | clean | PGD-10 |",
        "|---|---|---|---|---|---|",
    ]
    for r in report["per_stage"]:
        lines.append(
            f"| {r['name']} | {r['seconds']:.0f} | {_int(r['params'])} | "
            f"{_int(r['macs'])} | {_pct(r['clean'])} | {_pct(r['pgd10'])} |"
        )
    lines += _onnx_section(report.get("onnx") or {})
    lines += search_sections(report)
    audit_md = (report.get("audit") or {}).get("markdown")
    if audit_md:
        lines += ["", audit_md]
    lines += ["", "![stages](plots/stages.png)", ""]
    return "\n".join(lines)


def _onnx_section(onnx: dict) -> list[str]:
    if not onnx:
        return []
    lines = [
        "",
        "## ONNX",
        "",
        "| file | bytes | latency b1 (ms) | latency b64 (ms) | check |",
        "|---|---|---|---|---|",
    ]
    for name in ("dense", "fp32", "int8"):
        if name not in onnx:
            continue
        e = onnx[name]
        check = (
            f"parity {e['parity_max_abs']:.1e}"
            if "parity_max_abs" in e
            else f"top-1 agreement {_pct(e['top1_agreement'])}"
            if "top1_agreement" in e
            else ""
        )
        lines.append(
            f"| {e['path']} | {_int(e.get('bytes'))} | {e['latency_ms']:.3f} | "
            f"{e['latency_ms_batch64']:.2f} | {check} |"
        )
    lines += ["", onnx.get("latency_note", "")]
    return lines
