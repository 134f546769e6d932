"""``make zoo``: carry torchvision and timm architectures through every stage; docs/zoo.md.

Each architecture runs one small recipe through the engine (``Session(recipe, out).run()``): one
epoch of FGSM-RS adversarial training, structured pruning of 30% of the channels (L1) and one epoch
of FGSM-RS fine-tuning, int8 quantization-aware training for one epoch under PGD-2, export of the
fp32 and int8 ONNX files and an audit (FGSM and PGD-3 on 32 test images). The data is the built-in
``synthetic`` set, generated RGB images at 32x32 or 64x64. Every architecture runs in its own
process with a time limit, so one crash or hang does not stop the others; a failure is recorded
with the stage it happened in and the first line of its error (a traceback means a bug of ours: its
full text is kept in the run folder's ``zoo.log``).

Usage (from the repository root)::

    .venv/bin/python experiments/zoo.py [--only resnet18,deit_tiny] [--jobs 2] [--runs runs/zoo]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from zoo_doc import write_doc  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
log = logging.getLogger("zoo")

# (label, model spec, image size): at least 12 architectures, RGB at 32x32 and 64x64.
ARCHS = [
    ("resnet18", "torchvision:resnet18", 32),
    ("resnet18-64", "torchvision:resnet18", 64),
    ("resnext50_32x4d", "torchvision:resnext50_32x4d", 32),
    ("mobilenet_v2", "torchvision:mobilenet_v2", 32),
    ("mobilenet_v3_small", "torchvision:mobilenet_v3_small", 32),
    ("efficientnet_b0", "torchvision:efficientnet_b0", 32),
    ("regnet_y_400mf", "torchvision:regnet_y_400mf", 32),
    ("shufflenet_v2_x0_5", "torchvision:shufflenet_v2_x0_5", 32),
    ("squeezenet1_1", "torchvision:squeezenet1_1", 32),
    ("densenet121", "torchvision:densenet121", 32),
    ("vgg11_bn", "torchvision:vgg11_bn", 32),
    ("convnext_tiny", "torchvision:convnext_tiny", 32),
    ("timm-convnext_atto", "timm:convnext_atto", 64),
    ("timm-efficientnet_b0", "timm:efficientnet_b0", 64),
    ("timm-deit_tiny", "timm:deit_tiny_patch16_224", 64),
]
TIMEOUT_S = 1500  # seconds per architecture (vgg11_bn, the slowest, took 12 min)
THREADS = 1  # torch threads of each architecture's process (cores / jobs)
RECIPE = """\
name: zoo-{label}
seed: 0
model: {{spec: "{spec}"}}
data:
  name: synthetic
  batch_size: 32
  options: {{channels: 3, size: {size}, classes: 10, train: 256, test: 128}}
threat: {{norm: linf, eps: 0.0314}}     # 8/255
stages:
  - train: {{method: fgsm_rs, epochs: 1, optimizer: {{lr: 0.02}}}}
  - prune:
      importance: l1
      ratio: 0.3
      finetune_epochs: 1
      adversary: {{attack: fgsm_rs}}
      optimizer: {{lr: 0.02}}
  - quantize:
      qat_epochs: 1
      calib_batches: 2
      adversary: {{attack: pgd, steps: 2}}
      optimizer: {{lr: 0.002}}
  - export: {{fp32: true, int8: true}}
  - audit: {{attacks: [fgsm, pgd], samples: 32, pgd_steps: 3, batch_size: 32, dense: false}}
"""
STAGES = ("train", "prune", "quantize", "export", "audit")


def recipe_text(label: str) -> str:
    """The recipe of one architecture of :data:`ARCHS`."""
    _, spec, size = next(a for a in ARCHS if a[0] == label)
    return RECIPE.format(label=label, spec=spec, size=size)


def run_one(label: str, folder: Path) -> None:
    """Run one architecture's recipe in this process; write ``folder/zoo.json``."""
    from zoo_run import run_recipe

    folder.mkdir(parents=True, exist_ok=True)
    result = run_recipe(recipe_text(label), folder)
    _, spec, size = next(a for a in ARCHS if a[0] == label)
    result.update(label=label, spec=spec, input=f"3x{size}x{size}")
    (folder / "zoo.json").write_text(json.dumps(result, indent=2) + "\n")


def launch(label: str, runs: Path) -> dict:
    """Run one architecture in a child process with a time limit; return its result."""
    folder = runs / label
    if folder.exists():
        subprocess.run(["rm", "-rf", str(folder)], check=True)
    folder.mkdir(parents=True)
    cmd = [sys.executable, str(Path(__file__).resolve()), "--one", label, "--runs", str(runs)]
    env = {**os.environ, "OMP_NUM_THREADS": str(THREADS)}
    start = time.perf_counter()
    with open(folder / "zoo.log", "w") as logfile:
        try:
            proc = subprocess.run(
                cmd, stdout=logfile, stderr=subprocess.STDOUT, timeout=TIMEOUT_S, env=env
            )
            code = proc.returncode
        except subprocess.TimeoutExpired:
            code = None
    seconds = time.perf_counter() - start
    result_file = folder / "zoo.json"
    if result_file.is_file():
        result = json.loads(result_file.read_text())
    else:
        result = _lost(label, folder, code)
    result["wall_s"] = round(seconds, 1)
    log.info("%s: %s in %.0f s", label, result["status"], seconds)
    return result


def _lost(label: str, folder: Path, code: int | None) -> dict:
    """The result of a child that wrote none: it timed out or died (a crash of a library)."""
    from zoo_run import stage_reached

    _, spec, size = next(a for a in ARCHS if a[0] == label)
    why = f"no result after {TIMEOUT_S} s (timeout)" if code is None else f"process died ({code})"
    return {
        "label": label,
        "spec": spec,
        "input": f"3x{size}x{size}",
        "status": "timeout" if code is None else "crash",
        "stage": stage_reached(folder, STAGES),
        "reason": why,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the zoo (or, with ``--one``, a single architecture in this process)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="comma-separated labels to run")
    parser.add_argument("--jobs", type=int, default=2, help="architectures run at once")
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "zoo")
    parser.add_argument("--doc", type=Path, default=ROOT / "docs" / "zoo.md")
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.one:
        run_one(args.one, args.runs / args.one)
        return 0
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    labels = [a[0] for a in ARCHS]
    if args.only:
        labels = [x for x in args.only.split(",") if x in labels]
    global THREADS
    THREADS = max(1, (os.cpu_count() or 2) // args.jobs)
    start = time.perf_counter()
    with ThreadPoolExecutor(args.jobs) as pool:
        results = list(pool.map(lambda label: launch(label, args.runs), labels))
    total = time.perf_counter() - start
    (args.runs / "zoo.json").write_text(json.dumps(results, indent=2) + "\n")
    write_doc(results, args.doc, total, args.jobs, THREADS)
    passed = sum(r["status"] == "passed" for r in results)
    log.info(
        "%d of %d architectures passed every stage (%.0f s); wrote %s",
        passed,
        len(results),
        total,
        args.doc,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
