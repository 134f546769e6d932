"""Integer ONNX files side by side: the 7-bit int8 grid, full-range int8, INT4 and int8-held 4-bit.

Run from the repository root:

    .venv/bin/python benchmarks/int_files.py [--iters 400] [--repeats 3]

cnn_small is trained for two epochs with PGD-3 adversarial training on 8,192 Fashion-MNIST
images (synthetic data if the files are missing) and 50% of its channels are pruned (L1), as
in the quickstart. Four integer files are made from it with calibration only (no QAT, so the
weights differ only by the grid): ``int8`` (the default, 7-bit grid [-63, 63]), ``int8 full``
(full range, ``vnni_only_full_range``), ``int4`` (INT4 storage) and ``int4 in int8`` (4-bit
values in int8 containers, ``pack_low_bits=False``). For each it reports the file size and its
ratio to ``int8``, the latency at batch 1 and 64 (ONNX Runtime, one thread, interleaved) and its
ratio to ``int8``, the top-1 agreement of the file with its fake-quant twin on this CPU, the
dot products that AVX2 arithmetic gets wrong on worst-case inputs (numpy emulation, the same
on every CPU) and the clean accuracy of file and twin on the first 1,000 test images.
Writes docs/performance-int.md.
"""

from __future__ import annotations

import argparse
import copy
import platform
import statistics
import tempfile
from pathlib import Path

import torch
from bench_data import train_and_test

from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer
from robust_compress.adapters.onnxruntime import saturation as ort_saturation
from robust_compress.adapters.onnxruntime.runtime import (
    OrtPredictor,
)
from robust_compress.adapters.onnxruntime.timing import measure_latency, runtime_versions
from robust_compress.adapters.torch_pruning.pruner import StructuredPruner
from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.data.datasets import TensorData
from robust_compress.models.specs import build_model
from robust_compress.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
FILES = {
    "int8": {},
    "int8 full": {"vnni_only_full_range": True},
    "int4": {"weight_bits": 4},
    "int4 in int8": {"weight_bits": 4, "pack_low_bits": False},
}


def pruned_robust_model(train_set: TensorData) -> torch.nn.Module:
    torch.manual_seed(0)
    model = build_model("builtin:cnn_small")
    adversary = TorchPGD(eps=0.1, steps=3)
    train(model, train_set, TrainConfig(epochs=2, batch_size=128, lr=0.05), adversary=adversary)
    pruner = StructuredPruner(importance="l1", ratio=0.5)
    pruner.prepare(model, train_set.x[:1])
    pruner.step()
    train(model, train_set, TrainConfig(epochs=1, batch_size=128, lr=0.02), adversary=adversary)
    return model.eval()


def build(model, train_set, test_set, folder: Path) -> dict:
    rows = {}
    x, y = test_set.x, test_set.y
    for name, options in FILES.items():
        quantizer = BrevitasQuantizer(calib_batches=8, **options)
        qmodel = quantizer.prepare(copy.deepcopy(model), train_set.batches(128))
        report = quantizer.export_with_report(qmodel, folder / f"{name}.onnx", x[:1])
        path = Path(report["path"])
        with torch.no_grad():
            twin = qmodel.eval()(x).argmax(1)
        file = OrtPredictor(path)(x).argmax(1)
        rows[name] = {
            "path": path,
            "bytes": path.stat().st_size,
            "agreement": float((twin == file).float().mean()),
            "file_acc": float((file == y).float().mean()),
            "twin_acc": float((twin == y).float().mean()),
            "emulated_wrong": ort_saturation.emulated_saturation_errors(path),
            "safe": report["saturation_safe"],
        }
        print(f"{name}: {rows[name]['bytes']} bytes, agreement {rows[name]['agreement']:.3f}")
    return rows


def time_files(rows: dict, args) -> None:
    paths = {name: row["path"] for name, row in rows.items()}
    repeats = [
        measure_latency(paths, batch_sizes=(1, 64), warmup=30, iters=args.iters, threads=1)
        for _ in range(args.repeats)
    ]
    for name, row in rows.items():
        row["ms"] = {
            bs: statistics.median(r[name][bs]["median_ms"] for r in repeats) for bs in (1, 64)
        }


def render(rows: dict, data_note: str, args) -> str:
    base = rows["int8"]
    versions = runtime_versions()
    lines = [
        "# Integer ONNX files: the 7-bit int8 grid, full-range int8 and 4-bit storage",
        "",
        "Regenerate with `.venv/bin/python benchmarks/int_files.py` (part of `make bench`).",
        "",
        f"Setup: {data_note}; cnn_small, PGD-3 adversarial training for 2 epochs, 50% of its "
        "channels pruned (L1) and fine-tuned 1 epoch; each file calibrated on 8 batches, no QAT. "
        f"ONNX Runtime {versions['onnxruntime']}, 1 thread, median over {args.repeats} repeats of "
        f"the median of {args.iters} interleaved runs; CPU: {platform.processor() or 'x86_64'} "
        f"({_cpu_note()}).",
        "",
        "| file | bytes | size / int8 | batch 1 ms | b1 / int8 | batch 64 ms | b64 / int8 | "
        "agreement with twin (this CPU) | AVX2-emulated wrong dot products | bound safe | "
        "accuracy file / twin |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---|---:|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['bytes']:,} | {r['bytes'] / base['bytes']:.2f}x | {r['ms'][1]:.3f} | "
            f"{r['ms'][1] / base['ms'][1]:.2f}x | {r['ms'][64]:.3f} | "
            f"{r['ms'][64] / base['ms'][64]:.2f}x | {r['agreement']:.1%} | "
            f"{r['emulated_wrong']:,} | {'yes' if r['safe'] else 'no'} | "
            f"{r['file_acc']:.1%} / {r['twin_acc']:.1%} |"
        )
    lines += [
        "",
        "The emulated column applies the 16-bit pair saturation of CPUs without VNNI "
        "(`onnxruntime.saturation.emulated_saturation_errors`) to every integer kernel's "
        "weights with 64 activation rows (one all-255, 63 random); it is a proxy, the same on "
        "every CPU. The agreement column is what this CPU's ONNX Runtime "
        "kernels give. `int4` runs no integer kernel (ONNX Runtime dequantizes INT4 weights to "
        "float), so it has nothing to saturate.",
        "",
    ]
    return "\n".join(lines)


def _cpu_note() -> str:
    try:
        flags = Path("/proc/cpuinfo").read_text().split("flags")[1].split("\n")[0].split()
    except (OSError, IndexError):
        return "flags unknown"
    vnni = any(f in flags for f in ("avx512_vnni", "avx_vnni"))
    return ("AVX-512, " if "avx512f" in flags else "") + ("VNNI" if vnni else "AVX2, no VNNI")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iters", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    torch.set_num_threads(2)
    train_set, test_set, data_note = train_and_test(8192)
    model = pruned_robust_model(train_set)
    with tempfile.TemporaryDirectory() as tmp:
        rows = build(model, train_set, test_set, Path(tmp))
        time_files(rows, args)
    text = render(rows, data_note, args)
    (ROOT / "docs" / "performance-int.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
