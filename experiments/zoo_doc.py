"""docs/zoo.md from the zoo's results (see experiments/zoo.py)."""

from __future__ import annotations

import os
import platform
from pathlib import Path

HEADER = """\
# The model zoo: which architectures go through every stage

Written by `make zoo` (`experiments/zoo.py`); every figure below comes from the run whose time it
gives (its folders: `runs/zoo/LABEL/run`). Each architecture runs one recipe through the engine
(`Session(recipe, out).run()`), in its own process: one epoch of FGSM-RS adversarial training,
structured pruning of 30% of the channels (L1 importance; the classifier head is kept) and one
epoch of FGSM-RS fine-tuning, int8 quantization-aware training for one epoch under PGD-2 (Brevitas,
8-bit weights on the 7-bit grid, 8-bit activations), export of the fp32 and int8 ONNX files, and an
audit (FGSM and PGD-3, L-inf eps 8/255, on 32 test images). Data: the built-in `synthetic` set with
3 channels, 256 training and 128 test images of 10 classes. Models are built at their native
architecture (`torchvision:NAME`, `timm:NAME`; see [models.md](models.md)), without pretrained
weights, so the accuracies only show that the pipeline runs: they are not results.

"""

LEGEND = """\
Columns: **params** and **MACs** of the float model after training (before) and after pruning
(after), counted by Torch-Pruning on one input (a 30% channel ratio removes about half of the
weights: layers lose input and output channels); **int ops** the integer kernels in the graph ONNX
Runtime runs for `model.int8.onnx` (`ORT_ENABLE_ALL`: QLinearConv, QGemm, MatMulIntegerToFloat,
QLinearAdd, ...), **float ops** the float Conv/Gemm/MatMul left in it; **twin** the share of the
audited images on which the int8 file and its fake-quant twin predict the same class (the audit's
`twin_agreement` check), marked "constant output" where the twin's logits do not depend on the
image (a model collapsed after so little training: then the agreement says nothing; the details
below give the twin's spread and the largest logit difference); **clean** the accuracy on the 128
test images after training and at the end (after pruning, fine-tuning and QAT), **robust** the
audit's worst case on 32; **time** the wall time of the architecture's process (all stages, the
measurements after each stage, export with latency timing, and the audit).

What the operator lists show: ONNX Runtime fuses a convolution into `QLinearConv` only when its
output is quantized again right after it (dequantize, Conv, quantize). A convolution followed by
a layer that Brevitas leaves in float, typically an activation other than ReLU (SiLU in
EfficientNet, Hardswish in MobileNetV3), a LayerNorm (after ConvNeXt's depthwise convolutions)
or a BatchNorm it cannot fold (DenseNet's pre-activation BatchNorm, timm's BatchNormAct2d), stays
a float `Conv` between quantize/dequantize pairs: the file is int8 on disk, that layer runs in
float.
"""


CONSTANT = 1e-4  # twin logits whose spread over images is below this share of their size


def _num(n: float | None) -> str:
    if n is None:
        return "-"
    for unit, size in (("G", 1e9), ("M", 1e6), ("k", 1e3)):
        if abs(n) >= size:
            return f"{n / size:.2f}{unit}"
    return str(int(n))


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{100 * x:.0f}%"


def _twin(r: dict) -> str:
    """Twin agreement, marked when the twin's logits do not depend on the image."""
    constant = r["twin_spread"] < CONSTANT
    return _pct(r["twin_agreement"]) + (" (constant output)" if constant else "")


def _row(r: dict) -> str:
    name = f"`{r['spec']}` {r['input']}"
    if r["status"] != "passed":
        return f"| {name} | **failed** in {r['stage']} | | | | | | | | {r['wall_s']:.0f} s |"
    ops = r["ops"]
    integer, floats = sum(ops["integer"].values()), sum(ops["float_compute"].values())
    return (
        f"| {name} | passed | {_num(r['params'][0])} -> {_num(r['params'][1])} | "
        f"{_num(r['macs'][0])} -> {_num(r['macs'][1])} | {integer} | {floats} | "
        f"{_twin(r)} | {_pct(r['clean_trained'])} -> {_pct(r['clean'])} | {_pct(r['robust'])} | "
        f"{r['wall_s']:.0f} s |"
    )


def _details(r: dict) -> str:
    ops = r["ops"]
    kinds = ", ".join(f"{k} {v}" for k, v in sorted(ops["integer"].items()))
    floats = ", ".join(f"{k} {v}" for k, v in sorted(ops["float_compute"].items())) or "none"
    other = ", ".join(f"{k} {v}" for k, v in sorted(ops["other"].items())) or "none"
    qdq = sum(ops["qdq"].values())
    return (
        f"- `{r['spec']}` {r['input']}: integer {kinds}; float compute {floats}; "
        f"Q/DQ {qdq}; other ops {other}. On {r['logit_samples']} test images the twin "
        f"predicts {r['twin_classes']} class(es), its logits spread over images by "
        f"{100 * r['twin_spread']:.2f}% of its largest logit (standard deviation), and the "
        f"int8 logits differ from its logits by at most {100 * r['logit_gap']:.1f}%."
    )


def write_doc(results: list[dict], path: Path, total_s: float, jobs: int, threads: int) -> None:
    """Write docs/zoo.md: the summary table, the failures with reasons, the op details."""
    passed = [r for r in results if r["status"] == "passed"]
    failed = [r for r in results if r["status"] != "passed"]
    lines = [HEADER]
    lines.append(
        f"**{len(passed)} of {len(results)} architectures passed every stage.** "
        f"`make zoo` took {total_s / 60:.1f} min ({platform.machine()}, {os.cpu_count()} "
        f"cores, {jobs} architectures at a time with {threads} thread(s) each).\n"
    )
    lines.append(
        "| model | result | params | MACs | int ops | float ops | twin | clean | robust | time |"
    )
    lines.append("|---|---|---|---|---|---|---|---|---|---|")
    lines += [_row(r) for r in results]
    lines += ["", LEGEND]
    if failed:
        lines += ["## Failures", ""]
        lines += [
            f"- `{r['spec']}` {r['input']}: stopped in **{r['stage']}** ({r['status']}): "
            f"{r['reason']}"
            for r in failed
        ]
        lines.append("")
    if passed:
        lines += ["## Operators of the optimized int8 graphs, and the int8 file vs its twin", ""]
        lines += [_details(r) for r in passed]
        lines.append("")
    path.write_text("\n".join(lines))
