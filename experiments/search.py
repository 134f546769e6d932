"""``make search``: issue 17's comparison, run and written to docs/search-results.md.

From one PGD-trained ``cnn_small`` (recipes/experiments/s-base.yaml, full Fashion-MNIST with
1,000 training images held out for validation): the search with a 2-point budget (objective
MACs), uniform L1 pruning at 50/70/90% with as many fine-tuning epochs, and uniform 70% with
robust distillation. Every run goes through the CLI into ``runs/search/NAME``; a finished run of
the same resolved recipe is reused and an interrupted one resumed, so the command can be
stopped and started again. Every figure of the page is read from the runs' ``report.json``.

Usage (from the repository root)::

    .venv/bin/python experiments/search.py [--jobs 2] [--runs runs/search]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "experiments"
CLI = Path(sys.executable).parent / "robust-compress"
log = logging.getLogger("search")

BASE = ("s-base", "s-base", {})
SEARCH = ("search-2pts", "s-search", {"budget": 2})
UNIFORM = [  # each gets as many fine-tuning epochs as the search used
    ("uniform-50", "s-uniform", {"ratio": 0.5}),
    ("uniform-70", "s-uniform", {"ratio": 0.7}),
    ("uniform-90", "s-uniform", {"ratio": 0.9}),
    ("uniform-70-distill", "s-uniform", {"ratio": 0.7, "distill": 0.5}),
]


def _sets(args: dict, runs: Path, recipe: str) -> list[str]:
    sets = [f"args.{k}={v}" for k, v in args.items()]
    if recipe != "s-base":
        sets.append(f"args.base={runs / 's-base' / 'checkpoints' / 'last.pt'}")
    return sets


def _same_recipe(folder: Path, recipe: str, sets: list[str]) -> bool:
    """True when ``folder`` holds a run (finished or not) of exactly this resolved recipe."""
    from robust_compress.recipe.loader import dump_resolved, load_recipe

    resolved = folder / "recipe.resolved.yaml"
    if not resolved.is_file() or not (folder / "checkpoints" / "last.pt").is_file():
        return False
    return resolved.read_text() == dump_resolved(load_recipe(RECIPES / f"{recipe}.yaml", sets))


def _done(folder: Path, recipe: str, sets: list[str]) -> bool:
    return (folder / "report.json").is_file() and _same_recipe(folder, recipe, sets)


def execute(name: str, recipe: str, args: dict, runs: Path, threads: int) -> dict:
    """Run (or reuse, or resume) one run; return its report.json."""
    folder, sets = runs / name, _sets(args, runs, recipe)
    if not _done(folder, recipe, sets):
        cmd = [str(CLI), "run", str(RECIPES / f"{recipe}.yaml"), "--out", str(folder), "--quiet"]
        cmd += [part for s in sets for part in ("--set", s)]
        if (folder / "manifest.json").is_file():
            cmd.append("--resume" if _same_recipe(folder, recipe, sets) else "--force")
        log.info("%s: running", name)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise SystemExit(f"{name} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    log.info("%s: done", name)
    return json.loads((folder / "report.json").read_text())


def main() -> None:
    """Run everything, then write docs/search-results.md and its images."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "search")
    opts = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    runs = opts.runs.resolve()
    execute(*BASE, runs, threads=2)
    reports = {SEARCH[0]: execute(*SEARCH, runs, threads=2)}
    epochs = max(1, reports[SEARCH[0]]["search"]["finetune_epochs_used"])
    threads = max(1, 2 // opts.jobs)
    with ThreadPoolExecutor(opts.jobs) as pool:
        futures = {
            n: pool.submit(execute, n, r, {**a, "epochs": epochs}, runs, threads)
            for n, r, a in UNIFORM
        }
        reports.update({n: f.result() for n, f in futures.items()})
    images = ROOT / "docs" / "img"
    plots = ("search-pareto.png", "search-sensitivity-prune.png", "search-sensitivity-bits.png")
    for plot in plots:
        shutil.copyfile(runs / "search-2pts" / "plots" / plot, images / plot)
    from search_doc import write_doc

    write_doc(reports, ROOT / "docs" / "search-results.md")


if __name__ == "__main__":
    main()
