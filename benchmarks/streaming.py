"""The streaming data path on a generated ImageFolder: is the loader the bottleneck, what memory?

Writes an ImageFolder of PNG files (default 20,000 RGB images of 64x64 in 10 classes, under
``benchmarks/.cache``; made once), then measures, side by side in one run:

1. the loader alone: images per second of one epoch of ``StreamData.batches`` (training
   augmentation on) with 2 workers, and the peak memory of that epoch (the main process's
   and the workers' peak RSS, each in its own subprocess) against the size of the decoded set;
2. the training step alone: images per second of PGD-3 adversarial training of ``cnn_small``
   (3x64x64 inputs) on batches already in memory;
3. the two together: the same training on the streamed folder, for the same images.

Reports loader throughput / training throughput (above 1: the loader keeps up), the streamed
training's throughput as a share of the in-memory one, and memory: how much the main process's
resident memory grows and the workers' private memory, against the in-memory path reading the
same folder.
Writes docs/performance-streaming.md.

Run: .venv/bin/python benchmarks/streaming.py [--images 20000] [--train-images 2000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "benchmarks" / ".cache"
MB = 2**20


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--images", type=int, default=20_000)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--train-images", type=int, default=2_000, help="images of the training runs")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance-streaming.md")
    p.add_argument("--measure", help=argparse.SUPPRESS)  # internal: one measurement, as JSON
    p.add_argument("--root", type=Path, help=argparse.SUPPRESS)
    return p.parse_args()


def make_folder(root: Path, images: int, size: int) -> Path:
    """Write ``images`` PNGs (10 classes, 9:1 train/val) once; return the folder."""
    from PIL import Image

    done = root / "done"
    if done.is_file():
        return root
    gen = torch.Generator().manual_seed(0)
    for i in range(images):
        split = "val" if i % 10 == 9 else "train"
        label = i % 10
        image = torch.randint(0, 256, (size, size, 3), generator=gen, dtype=torch.uint8)
        image[..., label % 3] //= 2
        folder = root / split / f"class{label}"
        folder.mkdir(parents=True, exist_ok=True)
        Image.fromarray(image.numpy()).save(folder / f"{i:06d}.png")
    done.write_text(str(images))
    return root


def _data(root: Path, args: argparse.Namespace, stream: str):
    from robust_compress.data.configs import DataConfig
    from robust_compress.data.datasets import open_data

    config = DataConfig(
        name="imagefolder",
        root=str(root),
        stream=stream,
        workers=args.workers,
        transforms={"train": [{"random_crop": {"size": args.size, "padding": 4}}, {"hflip": 0.5}]},
    )
    return open_data(config, "train")


def measure_loader(root: Path, args: argparse.Namespace, stream: str = "stream") -> dict:
    """One epoch with augmentation; images/s, and memory growth of this process and workers."""
    before = _rss_mb()
    data = _data(root, args, stream)
    start, n, workers_peak, main_peak = time.perf_counter(), 0, 0.0, 0.0
    total, marks, growth = len(data), [0.25, 0.5, 1.0], {}
    for x, _ in data.batches(args.batch_size, True, seed=1, augment=True):
        n += len(x)
        workers_peak = max(workers_peak, sum(_private_mb(pid) for pid in _children()))
        main_peak = max(main_peak, _rss_mb())
        while marks and n >= marks[0] * total:  # does the growth follow the images read?
            growth[f"{marks.pop(0):.0%}"] = main_peak - before
    seconds = time.perf_counter() - start
    c, h, w = data.input_shape
    return {
        "images": n,
        "seconds": seconds,
        "per_second": n / seconds,
        "main_growth_mb": max(main_peak, _rss_mb()) - before,
        "workers_private_mb": workers_peak,
        "main_growth_by_share_mb": growth,
        "decoded_uint8_mb": n * c * h * w / MB,
        "decoded_float_mb": 4 * n * c * h * w / MB,
    }


def _children() -> list[int]:
    pid = os.getpid()
    with open(f"/proc/{pid}/task/{pid}/children") as f:
        return [int(c) for c in f.read().split()]


def _rss_mb() -> float:
    """Resident memory of this process (shared pages included: a fork does not hide them)."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / MB


def _private_mb(pid: int) -> float:
    """Private (not shared) resident memory of process ``pid``, from smaps_rollup."""
    total = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith(("Private_Clean:", "Private_Dirty:")):
                    total += int(line.split()[1])
    except FileNotFoundError:  # a worker that has just exited
        return 0.0
    return total / 1024


def measure_training(root: Path, args: argparse.Namespace, stream: str) -> dict:
    """PGD-3 training of cnn_small for one pass over ``--train-images`` images."""
    from robust_compress.attacks.adversaries import TorchPGD
    from robust_compress.models.specs import build_model
    from robust_compress.training.loop import batch_loss

    data = _data(root, args, stream).subset(args.train_images)
    model = build_model("builtin:cnn_small", data.num_classes, 3).train()
    opt = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9)
    adversary = TorchPGD(eps=8 / 255, steps=3)  # the default step, 2.5 eps / steps
    batches = (
        list(data.batches(args.batch_size, True, seed=1, augment=True))
        if stream == "memory"
        else None
    )
    start, n = time.perf_counter(), 0
    for x, y in batches or data.batches(args.batch_size, True, seed=1, augment=True):
        loss = batch_loss(model, x, y, adversary)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        n += len(x)
    seconds = time.perf_counter() - start
    return {"images": n, "seconds": seconds, "per_second": n / seconds}


def run_child(what: str, root: Path, args: argparse.Namespace) -> dict:
    """Run one measurement in a fresh process (so its peak memory is its own)."""
    cmd = [sys.executable, __file__, "--measure", what, "--root", str(root)]
    for flag in ("size", "train_images", "batch_size", "workers"):
        cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def report(runs: dict[str, dict], args: argparse.Namespace) -> str:
    """The markdown page."""
    loader, read, memory, streamed = (runs[k] for k in ("loader", "read", "memory", "stream"))
    rows = [
        ("loader alone: one streamed epoch (decode, collate, augment)", loader),
        ("the same epoch from memory (after reading the folder in)", read),
        ("training step alone: PGD-3 training of `cnn_small`, batches in memory", memory),
        ("training on the streamed folder (the same images)", streamed),
    ]
    table = "\n".join(
        f"| {name} | {r['images']:,} | {r['seconds']:.1f} | {r['per_second']:,.0f} |"
        for name, r in rows
    )
    ratio = loader["per_second"] / memory["per_second"]
    share = streamed["per_second"] / memory["per_second"]
    stream_mb = loader["main_growth_mb"] + loader["workers_private_mb"]
    read_share = read["main_growth_mb"] / loader["decoded_float_mb"]
    by_share = ", ".join(f"{v:,.0f}" for v in loader["main_growth_by_share_mb"].values())
    return f"""# Streaming data: the loader against the training step

`make bench` (benchmarks/streaming.py) on a generated ImageFolder of {loader["images"]:,}
training PNGs of 3x{args.size}x{args.size} (random pixels, 10 classes), {os.cpu_count()} CPU
cores, {args.workers} loader workers, batch {args.batch_size}, training augmentation (random crop
with 4 pixels of padding, flip) on. Each measurement runs in its own process, one after the
other. Training figures are over {memory["images"]:,} images.

| measurement | images | seconds | images/s |
|---|---|---|---|
{table}

- Loader throughput / training throughput: **{ratio:.1f}x** (above 1: the loader keeps up with
  the training step).
- Training on the streamed folder runs at **{share:.0%}** of the in-memory speed. On this machine
  the workers and the training step share {os.cpu_count()} cores.
- Memory of a streamed epoch: the main process's resident memory grows by
  {loader["main_growth_mb"]:,.0f} MB and the workers hold
  {loader["workers_private_mb"]:,.0f} MB of private memory at most, together
  **{stream_mb:,.0f} MB**. Reading the folder into memory instead grows the main process by
  {read["main_growth_mb"]:,.0f} MB. The decoded set takes {loader["decoded_uint8_mb"]:,.0f} MB
  as uint8 and {loader["decoded_float_mb"]:,.0f} MB as float32: the streamed epoch's peak is
  **{stream_mb / loader["decoded_float_mb"]:.2f}x** the float32 size, the in-memory path's
  {read_share:.2f}x. The streamed epoch's main-process growth after 25%, 50% and 100% of its
  images: {by_share} MB.
"""


def main() -> None:
    args = parse_args()
    if args.measure:
        if args.measure == "loader":
            result = measure_loader(args.root, args)
        elif args.measure == "read":
            result = measure_loader(args.root, args, "memory")
        else:
            result = measure_training(args.root, args, args.measure)
        print(json.dumps(result))
        return
    if args.quick:
        args.images, args.train_images, args.size = 400, 128, 32
    root = make_folder(CACHE / f"imagefolder-{args.images}-{args.size}", args.images, args.size)
    runs = {what: run_child(what, root, args) for what in ("loader", "read", "memory", "stream")}
    text = report(runs, args)
    if args.quick:
        print(text)
        return
    args.out.write_text(text)
    print(text)


if __name__ == "__main__":
    main()
