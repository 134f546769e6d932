"""PGD-k adversarial training step: eager against torch.compile, float32 against mixed precision.

One PGD-k training step of the engine (``training.loop.batch_loss``, backward, SGD step) on
``cnn_small`` with Fashion-MNIST-shaped batches, timed in four variants side by side in one run
on the best device here (``auto``): eager float32, eager under bf16 autocast (fp16 with a
gradient scaler on a GPU without bfloat16), ``torch.compile`` float32, and compiled with
autocast. The variants are interleaved over repeats and each keeps its median step time;
the compile time is reported apart. Writes docs/performance-train-step.md.

Run: .venv/bin/python benchmarks/train_step.py [--steps 3] [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from robust_compress.attacks.adversaries import TorchPGD
from robust_compress.devices import autocast, resolve_device
from robust_compress.models.specs import build_model
from robust_compress.training.loop import batch_loss

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--device", default="auto")
    p.add_argument("--batch-size", type=int, default=128)
    p.add_argument("--steps", type=int, default=3, help="PGD steps per training step")
    p.add_argument("--repeats", type=int, default=5, help="rounds over the variants")
    p.add_argument("--per-round", type=int, default=5, help="timed training steps per round")
    p.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance-train-step.md")
    return p.parse_args()


class Variant:
    """One way of running the training step, with its own model and optimizer."""

    def __init__(self, name: str, device, amp, compiled: bool, args):
        torch.manual_seed(0)
        self.name, self.device, self.amp = name, device, amp
        self.model = build_model("builtin:cnn_small").to(device).train()
        self.net = torch.compile(self.model) if compiled else self.model
        self.opt = torch.optim.SGD(self.model.parameters(), lr=0.01, momentum=0.9)
        self.scaler = torch.amp.GradScaler() if amp == torch.float16 else None
        gen = torch.Generator().manual_seed(0)
        self.adversary = TorchPGD(eps=0.1, steps=args.steps, generator=gen)
        self.times: list[float] = []
        self.first = 0.0

    def step(self, x, y) -> float:
        start = time.perf_counter()
        with autocast(self.device, self.amp):
            loss = batch_loss(self.net, x, y, self.adversary, attack_model=self.model)
        self.opt.zero_grad(set_to_none=True)
        if self.scaler is None:
            loss.backward()
            self.opt.step()
        else:
            self.scaler.scale(loss).backward()
            self.scaler.step(self.opt)
            self.scaler.update()
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
        return time.perf_counter() - start


def variants(device, args) -> list[Variant]:
    low = torch.bfloat16
    if device.type == "cuda" and not torch.cuda.is_bf16_supported():
        low = torch.float16
    label = "bf16" if low == torch.bfloat16 else "fp16"
    return [
        Variant("eager fp32", device, None, False, args),
        Variant(f"eager {label} autocast", device, low, False, args),
        Variant("compiled fp32", device, None, True, args),
        Variant(f"compiled {label} autocast", device, low, True, args),
    ]


def run(args) -> tuple[list[Variant], torch.device]:
    device = resolve_device(args.device)
    gen = torch.Generator().manual_seed(1)
    x = torch.rand(args.batch_size, 1, 28, 28, generator=gen).to(device)
    y = torch.randint(0, 10, (args.batch_size,), generator=gen).to(device)
    runs = variants(device, args)
    for v in runs:  # warm-up; for compiled variants the first step compiles
        v.first = v.step(x, y)
        v.step(x, y)
    for _ in range(args.repeats):
        for v in runs:
            v.times.append(statistics.median(v.step(x, y) for _ in range(args.per_round)))
    return runs, device


def report(runs: list[Variant], device, args) -> str:
    base = statistics.median(runs[0].times)
    rows = "\n".join(
        f"| {v.name} | {statistics.median(v.times) * 1000:.1f} | "
        f"{base / statistics.median(v.times):.2f}x | {v.first:.1f} |"
        for v in runs
    )
    threads = torch.get_num_threads()
    return f"""# Training step: eager vs torch.compile, float32 vs mixed precision

`make bench` (benchmarks/train_step.py): one PGD-{args.steps} adversarial training step of
`cnn_small` (188k parameters) on a batch of {args.batch_size} Fashion-MNIST-shaped images, on
**{device}** ({threads} torch threads), torch {torch.__version__}. The four variants run
interleaved, {args.repeats} rounds of {args.per_round} steps each; the table gives the median
step time and the speed relative to eager float32. "first step" is the first call of a fresh
variant (for compiled ones: the compilation).

| variant | median step (ms) | speed vs eager fp32 | first step (s) |
|---|---|---|---|
{rows}

Mixed precision changes the arithmetic of the training-time attack too (see
[devices.md](devices.md#mixed-precision)); the audit stays float32. No GPU was available to
this run; on a GPU the same script compares the same variants there.
"""


def main() -> None:
    args = parse_args()
    if args.quick:
        args.repeats, args.per_round, args.batch_size = 1, 1, 16
    runs, device = run(args)
    text = report(runs, device, args)
    print(text)
    if not args.quick:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
