"""``report.html``: the whole run on one self-contained page (figures inline as base64 PNGs).

The stage table, the accuracy-against-eps curves, MACs / size / latency, the audit's checks and
a gallery of images the compression made vulnerable (:mod:`robust_compress.report.gallery`).
No scripts, no external files: the page opens from an e-mail or a CI artifact as it is.
"""

from __future__ import annotations

import base64
import html
import io
from typing import Any

STYLE = """body{font-family:system-ui,sans-serif;margin:2em auto;max-width:1100px;color:#222}
table{border-collapse:collapse;margin:.5em 0 1.5em}td,th{border:1px solid #ccc;padding:3px 8px;
text-align:left}th{background:#f3f3f3}
.pass{color:#176317}.fail{color:#b00020;font-weight:bold}.skip{color:#777}
figure{display:inline-block;margin:0 1em 1em 0}.gallery figure{border:1px solid #ddd;padding:4px}
figcaption{font-size:.85em}img{image-rendering:pixelated}"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def _num(value: Any) -> str:
    return "-" if value is None else f"{value:,}"


def _table(head: list[str], rows: list[list[Any]]) -> str:
    cells = "".join(f"<th>{_e(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{cells}</tr>{body}</table>"


def _figure_uri(fig) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    fig.tight_layout()
    fig.savefig(buffer, format="png", dpi=100)
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def eps_curves(report: dict) -> str | None:
    """Accuracy against eps of every audited model, as a data URI (None without a sweep)."""
    audits = {k: v for k, v in (report.get("audit") or {}).items() if isinstance(v, dict)}
    sweeps = {k: v["eps_sweep"] for k, v in audits.items() if v.get("eps_sweep")}
    if not sweeps:
        return None
    fig, ax = _plt().subplots(figsize=(5.5, 3.6))
    for name, points in sweeps.items():
        for attack in dict.fromkeys(p.get("attack", "") for p in points):
            rows = sorted(
                (p["eps"], p["accuracy"]) for p in points if p.get("attack", "") == attack
            )
            eps = [0.0] + [e for e, _ in rows]
            acc = [audits[name].get("clean")] + [a for _, a in rows]
            ax.plot(eps, acc, "o-", label=f"{name} ({attack})" if attack else name)
    ax.axvline(report["threat"]["eps"], color="#999", ls=":", label="threat eps")
    ax.set(xlabel=f"eps ({report['threat']['norm']})", ylabel="accuracy", ylim=(0, 1))
    ax.grid(alpha=0.3)
    ax.legend()
    return _figure_uri(fig)


def cost_bars(report: dict) -> str:
    """Params, MACs, ONNX bytes and latency of dense vs final, as a data URI."""
    models, onnx = report["models"], report.get("onnx") or {}
    panels = [
        ("params (M)", [models[m].get("params") for m in ("dense", "final")], 1e6),
        ("MACs (M)", [models[m].get("macs") for m in ("dense", "final")], 1e6),
        ("ONNX size (MB)", [models[m].get("onnx_bytes") for m in ("dense", "final")], 1e6),
    ]
    names = [n for n in ("dense", "fp32", "int8") if n in onnx]
    fig, axes = _plt().subplots(1, 4, figsize=(11, 2.8))
    for ax, (title, values, unit) in zip(axes, panels, strict=False):
        ax.bar(["dense", "final"], [(v or 0) / unit for v in values], color=["#888", "#2a7"])
        ax.set_title(title, fontsize=9)
    axes[3].bar(names, [onnx[n].get("latency_ms", 0) for n in names], color="#47a")
    axes[3].set_title("ONNX latency, batch 1 (ms)", fontsize=9)
    return _figure_uri(fig)


def _checks(audit: dict) -> str:
    rows = []
    for model, result in audit.items():
        for c in result.get("checks", []) if isinstance(result, dict) else []:
            state = "skip" if c.get("skipped") else "pass" if c.get("passed") else "fail"
            word = {"skip": "skipped", "pass": "passed", "fail": "FAILED"}[state]
            title = _e(c.get("title", c["name"]))
            rows.append(
                [_e(model), title, f'<span class="{state}">{word}</span>', _e(c.get("detail", ""))]
            )
    return _table(["model", "check", "result", "detail"], rows) if rows else "<p>No checks.</p>"


def _gallery(items: list[dict], audit: dict) -> str:
    if not items:
        n = (audit.get("final") or {}).get("samples")
        why = "no dense audit to compare with" if not audit.get("dense") else "none found"
        return f"<p>No such image among the {_e(n)} audited ({why}).</p>"
    figures = []
    for g in items:
        who = g.get("predicted_by", "final model")
        note = " (PGD-20 alone does not break it; the audit's ensemble did)"
        figures.append(
            f'<figure><img src="{g["clean"]}" alt="clean {g["index"]}"> '
            f'<img src="{g["adversarial"]}" alt="adversarial {g["index"]}">'
            f"<figcaption>test #{g['index']}: label {g['label']}; {_e(who)}: "
            f"{g['final_clean']} clean, {g['final_adv']} attacked"
            f"{note if g['final_adv'] == g['label'] else ''}</figcaption></figure>"
        )
    return '<div class="gallery">' + "".join(figures) + "</div>"


def render(report: dict, stages_png: str | None = None, gallery: list[dict] | None = None) -> str:
    """The page for ``report`` (report.json's content); ``stages_png`` a data URI or None."""
    t, m, s = report["threat"], report["metrics"], report["models"]
    summary = [
        [
            name,
            _num(s[name]["params"]),
            _num(s[name]["macs"]),
            _num(s[name].get("onnx_bytes")),
            _pct(m[name]["clean"]),
            _pct(m[name]["robust"]),
            _num(m[name].get("robust_samples")),
            _pct(m[name]["pgd10"]),
        ]
        for name in ("dense", "final")
    ]
    if "robust_twin" in m["final"]:
        summary[1][0] = "final (model.int8.onnx, deployed)"
        twin = _pct(m["final"]["robust_twin"])
        summary.append(["final, fake-quant twin (torch)", "", "", "", "", twin, "", ""])
    stages = [
        [
            _e(r["name"]),
            f"{r['seconds']:.0f}",
            _num(r.get("params")),
            _num(r.get("macs")),
            _pct(r.get("clean")),
            _pct(r.get("pgd10")),
        ]
        for r in report["per_stage"]
    ]
    audit = {k: v for k, v in (report.get("audit") or {}).items() if isinstance(v, dict)}
    curves = eps_curves(report)
    parts = [
        f"<!DOCTYPE html><html lang=en><head><meta charset=utf-8><title>{_e(report['recipe'])}"
        f" report</title><style>{STYLE}</style></head><body>",
        f"<h1>Run report: {_e(report['recipe'])}</h1>",
        f"<p>Threat model: {_e(t['norm'])} eps {_e(t['eps'])} (pixel space, inputs in [0, 1]);"
        f" seed {_e(report['seed'])}. Robust accuracy is the audit's per-example worst case.</p>",
        _table(
            [
                "model",
                "params",
                "MACs",
                "ONNX bytes",
                "clean",
                "robust (audit)",
                "audited",
                "PGD-10",
            ],
            summary,
        ),
        "<h2>Stages</h2>",
        _table(["stage", "seconds", "params", "MACs", "clean", "PGD-10"], stages),
        f'<img src="{stages_png}" alt="accuracy per stage">' if stages_png else "",
        "<h2>Accuracy against eps</h2>",
        f'<img src="{curves}" alt="accuracy against eps">' if curves else "<p>No eps sweep.</p>",
        "<h2>MACs, size and latency</h2>",
        f'<img src="{cost_bars(report)}" alt="cost">',
        f"<p>{_e((report.get('onnx') or {}).get('latency_note', ''))}</p>",
        "<h2>Audit checks</h2>",
        _checks(audit),
        "<h2>Robust before compression, broken after</h2>",
        "<p>Audited test images the dense model classified correctly under every attack and the"
        " compressed model does not; each clean image beside its PGD-20 adversarial image.</p>",
        _gallery(gallery or [], audit),
        "</body></html>",
    ]
    return "\n".join(parts)
