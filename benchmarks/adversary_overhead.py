"""Per-batch cost and strength of ART's PGD (ArtAdversary) against the plain-PyTorch PGD loop.

Trains cnn_small briefly (FGSM-RS, so PGD has something to attack), then attacks the same
batches with three L-inf PGD implementations of identical budget (eps, step, steps, random
start), interleaved and repeated; reports the median per-batch time, the cost relative to the
plain loop and the robust accuracy each leaves. Writes docs/performance-adversary.md.

Run: .venv/bin/python benchmarks/adversary_overhead.py [--repeats 5] [--quick]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

import torch

from robust_compress.adapters.art.adversary import ArtAdversary
from robust_compress.adapters.art.pgd import documented_pgd
from robust_compress.attacks.adversaries import TorchFGSMRS
from robust_compress.attacks.torch_attacks import correct, pgd_linf
from robust_compress.data.datasets import TensorData, load_dataset
from robust_compress.errors import DataNotFoundError
from robust_compress.models.specs import build_model
from robust_compress.training.loop import TrainConfig, train

ROOT = Path(__file__).resolve().parent.parent
PLAIN, ART, DOCUMENTED = (
    "plain PyTorch `pgd_linf`",
    '`ArtAdversary("pgd")`',
    "ART `ProjectedGradientDescent.generate`, as documented",
)


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--train-size", type=int, default=10_000)
    p.add_argument("--test-size", type=int, default=1_000)
    p.add_argument("--batch-size", type=int, default=125)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--quick", action="store_true", help="tiny run to check the script works")
    p.add_argument("--out", type=Path, default=ROOT / "docs" / "performance-adversary.md")
    return p.parse_args()


def load(split: str, n: int) -> TensorData:
    try:
        return load_dataset("fashion-mnist", split, subset=n)
    except DataNotFoundError:
        return load_dataset("synthetic", split, subset=min(n, 512 if split == "train" else 256))


def make_attacks(model: torch.nn.Module, data: TensorData, eps: float, steps: int) -> dict:
    step = 2.5 * eps / steps
    gen = torch.Generator().manual_seed(0)
    art = ArtAdversary("pgd", eps, step=step, steps=steps, seed=0)
    doc = documented_pgd(model, data.input_shape, data.num_classes, eps, step, steps)

    def documented(x, y):
        out = doc(x, y)
        model.eval()  # ART leaves eval mode anyway; grads are irrelevant here
        return out

    return {
        PLAIN: lambda x, y: pgd_linf(model, x, y, eps, step, steps, True, gen),
        ART: lambda x, y: art.perturb(model, x, y),
        DOCUMENTED: documented,
    }


def measure(model, attacks: dict, batches: list, repeats: int) -> tuple[dict, dict]:
    """Interleave the attacks over batches and repeats; rotate their order to cancel drift.

    Returns per attack: wall and CPU (process) seconds per batch, and correct predictions.
    """
    names = list(attacks)
    stats = {n: {"wall": [], "cpu": []} for n in names}
    hits = dict.fromkeys(names, 0)
    for name in names:  # warm-up
        attacks[name](*batches[0])
    for r in range(repeats):
        for b, (x, y) in enumerate(batches):
            k = (r + b) % len(names)
            for name in names[k:] + names[:k]:
                w0, c0 = time.perf_counter(), time.process_time()
                x_adv = attacks[name](x, y)
                stats[name]["wall"].append(time.perf_counter() - w0)
                stats[name]["cpu"].append(time.process_time() - c0)
                hits[name] += int(correct(model, x_adv, y).sum())
    return stats, hits


def table(stats: dict, hits: dict, n_seen: int) -> list[str]:
    """Markdown rows; costs are medians of per-batch ratios to the plain loop on the same batch."""
    rows = [
        "| PGD implementation | ms / batch (wall) | CPU ms / batch | cost vs plain (wall) "
        "| cost vs plain (CPU) | robust accuracy |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, st in stats.items():
        cells = [f"{1000 * statistics.median(st[k]):.1f}" for k in ("wall", "cpu")]
        for k in ("wall", "cpu"):
            ratios = [a / b for a, b in zip(st[k], stats[PLAIN][k], strict=True)]
            cells.append(f"{statistics.median(ratios):.3f}x")
        acc = 100 * hits[name] / n_seen
        rows.append(f"| {name} | {' | '.join(cells)} | {acc:.2f}% |")
    return rows


def main() -> None:
    args = parse_args()
    if args.quick:
        args.train_size, args.test_size, args.repeats, args.batch_size = 512, 128, 1, 64
    if args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    train_data, test = load("train", args.train_size), load("test", args.test_size)
    model = build_model("builtin:cnn_small", test.num_classes, test.input_shape[0])
    t0 = time.perf_counter()
    train(model, train_data, TrainConfig(epochs=1, batch_size=128), TorchFGSMRS(args.eps))
    train_s = time.perf_counter() - t0
    batches = list(test.batches(args.batch_size))
    clean = sum(int(correct(model, x, y).sum()) for x, y in batches) / len(test)
    load_before = os.getloadavg()[0]
    attacks = make_attacks(model, test, args.eps, args.steps)
    stats, hits = measure(model, attacks, batches, args.repeats)
    rows = table(stats, hits, len(test) * args.repeats)
    cmd = ".venv/bin/python benchmarks/adversary_overhead.py" + (
        f" --threads {args.threads}" if args.threads else ""
    )
    setup = (
        f"cnn_small trained for 1 epoch of FGSM-RS (eps {args.eps}) on the first "
        f"{len(train_data):,} {train_data.name} training images ({train_s:.0f} s); L-inf PGD with "
        f"eps {args.eps}, {args.steps} steps of {2.5 * args.eps / args.steps:.4g}, one random "
        f"start, on the first {len(test):,} test images in batches of {args.batch_size}; "
        f"{args.repeats} interleaved repeats; medians over {len(stats[PLAIN]['wall'])} batch "
        f"timings, costs are medians of per-batch ratios to the plain loop. torch threads: "
        f"{torch.get_num_threads()}; load average {load_before:.1f} -> {os.getloadavg()[0]:.1f} "
        f"(a shared 2-core machine). Clean accuracy {100 * clean:.2f}%; robust accuracy over "
        f"{len(test):,} images x {args.repeats} repeats."
    )
    text = "\n".join(
        ["## Adversary overhead: ART PGD vs the plain PyTorch loop", "", f"`{cmd}`", "",
         setup, "", *rows, ""]
    )  # fmt: skip
    print(text)
    if not args.quick:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text)
        print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
