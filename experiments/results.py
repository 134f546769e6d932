"""``make results``: run the experiments of recipes/experiments and write docs/results.md.

Every run is a shipped recipe run through the CLI (``robust-compress run``) into
``runs/experiments/NAME``, two at a time with one thread each (2 cores). A run whose folder
already holds a report of the same resolved recipe is reused, a run interrupted part-way is
resumed, so the command can be stopped and started again (and span several sittings). Claims 1,
2 and 5 run each row with every seed of ``claims.SEEDS`` (``runs/experiments/NAME-seedN``, each
on the base run of its seed). Every figure of docs/results.md is
read from the runs' ``report.json``; the verdicts are computed by experiments/claims.py.

A finished run is also copied to ``experiments/records/NAME`` (experiments/records.py), which
is committed: a fresh checkout puts those records back into ``runs/experiments`` and reuses
them, so the sittings need not share a disk. A run the engine's dead-network guard stops is a
result too: it is recorded (``stopped.json``) and shown on the page as stopped.

Usage (from the repository root)::

    .venv/bin/python experiments/results.py [--only 1,2] [--jobs 2] [--runs runs/experiments]
        [--page-only]

``--page-only`` starts no run and writes the page from the runs already finished (a claim
with a run missing says which), to look at the results part-way through.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from claims import BASES, Run, all_bases, claims, seeded_runs  # noqa: E402
from records import RESTORED, recorded, restore, save, stopped  # noqa: E402
from results_doc import write_docs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
RECIPES = ROOT / "recipes" / "experiments"
CLI = Path(sys.executable).parent / "robust-compress"
log = logging.getLogger("results")


SMOKE = False  # --smoke: every run on a slice of the data, to test this script


def overrides(run: Run, runs_dir: Path) -> list[str]:
    """The ``--set`` overrides of a run: its args and the path of its base's checkpoint."""
    sets = [f"args.{k}={v}" for k, v in run.args]
    if run.seed:
        sets.append(f"seed={run.seed}")
    if run.base:
        sets.append(f"args.base={runs_dir / run.base / 'checkpoints' / 'last.pt'}")
    return sets + (smoke_sets(run) if SMOKE else [])


def smoke_sets(run: Run) -> list[str]:
    """Overrides that shrink a run to 512 training and 256 test images, 64 audited."""
    from robust_compress.recipe.loader import load_recipe

    recipe = load_recipe(RECIPES / f"{run.recipe}.yaml", [f"args.{k}={v}" for k, v in run.args])
    sets = ["data.train_subset=512", "data.test_subset=256"]
    for i, stage in enumerate(recipe.stages):
        if stage.kind == "audit":
            sets.append(f"stages.{i}.audit.samples=64")
    return sets


def is_done(run: Run, folder: Path, runs_dir: Path) -> bool:
    """True when ``folder`` holds a finished run of exactly this resolved recipe.

    The run's ``recipe.resolved.yaml`` is read back through today's schema first, so a new
    option with a default (one the old run could not have set) does not count as a change.
    """
    from robust_compress.errors import UserError
    from robust_compress.recipe.loader import dump_resolved, load_recipe, parse_recipe

    resolved = folder / "recipe.resolved.yaml"
    result = (folder / "report.json").is_file() or stopped(folder) is not None
    if not result or not resolved.is_file():
        return False
    now = dump_resolved(load_recipe(RECIPES / f"{run.recipe}.yaml", overrides(run, runs_dir)))
    try:
        then = dump_resolved(parse_recipe(resolved.read_text(), str(resolved)))
    except UserError:  # an option since removed or renamed: run it again
        return False
    return _same_place(then) == _same_place(now)


def _same_place(resolved: str) -> str:
    """``resolved`` with the runs folder of every base checkpoint path cut off.

    A record made in another checkout names its base by that checkout's absolute path; the
    base run (by name) is what must match.
    """
    return re.sub(r"[^\s'\"]*/([^/\s'\"]+/checkpoints/last\.pt)", r"\1", resolved)


def execute(run: Run, runs_dir: Path) -> dict:
    """Run (or reuse, or resume) one run; return its report.json with the wall seconds.

    A finished run is saved to ``experiments/records`` (a stale restored record is removed
    before its run starts again). A run the dead-network guard stops returns its stop.
    """
    folder = runs_dir / run.name
    if restore(folder, run.name):
        log.info("%s: restored from experiments/records", run.name)
    if is_done(run, folder, runs_dir):
        log.info("%s: reused (same recipe, finished)", run.name)
        if not recorded(run.name):  # finished before records were kept
            save(folder, run.name, base=_is_base(run))
        return _report(folder)
    if (folder / RESTORED).is_file():
        shutil.rmtree(folder)  # a record of another recipe, copied in above: not a run
    (folder / "stopped.json").unlink(missing_ok=True)  # a stop of another recipe
    cmd = [str(CLI), "run", str(RECIPES / f"{run.recipe}.yaml"), "--out", str(folder), "--quiet"]
    for s in overrides(run, runs_dir):
        cmd += ["--set", s]
    if (folder / "manifest.json").is_file():
        cmd.append("--resume" if (folder / "checkpoints" / "last.pt").is_file() else "--force")
    log.info("%s: running", run.name)
    start = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    from robust_compress.engine.guard import MARK

    output = (done.stderr or done.stdout).strip().splitlines()
    if done.returncode != 0 and any(MARK in line for line in output):
        message = [line for line in output if MARK in line][-1].removeprefix("failed: ")
        (folder / "stopped.json").write_text(json.dumps({"seed": run.seed, "stopped": message}))
        log.warning("%s: stopped by the dead-network guard: %s", run.name, message)
    elif done.returncode != 0:
        tail = "\n".join(output[-5:])
        raise RuntimeError(f"{run.name} failed (exit {done.returncode}):\n{tail}")
    else:
        log.info("%s: done in %.0f s", run.name, time.perf_counter() - start)
    save(folder, run.name, base=_is_base(run))
    return _report(folder)


def _is_base(run: Run) -> bool:
    return run.name.split("-seed")[0] in BASES


def _report(folder: Path) -> dict:
    """The run's report.json (or its guard stop) with the spans of its invocations."""
    report = stopped(folder) or json.loads((folder / "report.json").read_text())
    report["log_spans"] = log_spans(folder / "run.log") if (folder / "run.log").is_file() else []
    return report


def log_spans(path: Path) -> list[tuple[str, str]]:
    """When each invocation recorded in a run's log ran: its first and last timestamps.

    A resumed run appends to its log; every invocation logs the CLI's "run folder" line at its
    start (runs logged before that line came first may have a few lines of their own just
    before it: those within a minute of it count as the new invocation's). So the hours
    between a stopped run and its resumption count as no run's time.
    """
    from datetime import datetime

    stamps = [line for line in path.read_text().splitlines() if line[:4].isdigit()]
    when = [datetime.strptime(line[:19], "%Y-%m-%d %H:%M:%S") for line in stamps]
    starts = [0] + [i for i, line in enumerate(stamps) if i and "cli.run INFO run folder" in line]
    for k in range(1, len(starts)):
        i = starts[k]
        while i - 1 > starts[k - 1] and (when[starts[k]] - when[i - 1]).total_seconds() <= 60:
            i -= 1
        starts[k] = i
    ends = [*starts[1:], len(stamps)]
    return [
        (stamps[a][:19], stamps[b - 1][:19]) for a, b in zip(starts, ends, strict=True) if a < b
    ]


def run_all(runs: list[Run], runs_dir: Path, jobs: int) -> dict[str, dict]:
    """Run the bases first, then the rest, ``jobs`` at a time; reports keyed by run name.

    The rest run seed by seed (every claim's seed-0 runs, then seed 1, ...), so a sitting that
    stops part-way leaves whole seeds, which the page can show for every row.
    """
    reports: dict[str, dict] = {}
    bases = {r.base for r in runs if r.base}
    rest = sorted((r for r in runs if r.name not in bases), key=lambda r: r.seed)
    levels = [[r for r in runs if r.name in bases], rest]
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        for level in levels:
            futures = {r.name: pool.submit(execute, r, runs_dir) for r in level}
            for name, future in futures.items():
                try:
                    reports[name] = future.result()
                except RuntimeError as exc:  # the others go on; the page says what is missing
                    log.error("%s", exc)
    return reports


def finished(runs: list[Run], runs_dir: Path) -> dict[str, dict]:
    """The reports of the runs already finished with today's recipe, keyed by run name.

    Records of runs missing from ``runs_dir`` are restored first.
    """
    for r in runs:
        restore(runs_dir / r.name, r.name)
    return {
        r.name: _report(runs_dir / r.name) for r in runs if is_done(r, runs_dir / r.name, runs_dir)
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """Command-line options."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--runs", type=Path, default=ROOT / "runs" / "experiments")
    p.add_argument("--jobs", type=int, default=2, help="runs at a time (one thread each)")
    p.add_argument("--only", default="", help="comma-separated claim numbers (default: all)")
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    p.add_argument("--smoke", action="store_true", help="tiny data, to test the script")
    p.add_argument(
        "--page-only",
        action="store_true",
        help="start no run: write the page from the runs already finished (the others are "
        "listed as not measured yet)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the experiments and write docs/results.md, docs/results.json and docs/img/."""
    global SMOKE
    args = parse_args(argv)
    SMOKE = args.smoke
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    chosen = [c for c in claims() if not args.only or str(c.number) in args.only.split(",")]
    runs = list(
        {r.name: r for c in chosen for label, _ in c.rows for r in seeded_runs(c, label)}.values()
    )
    bases = all_bases(chosen)
    runs += [bases[b] for b in sorted({r.base for r in runs if r.base} - {r.name for r in runs})]
    start = time.perf_counter()
    unique = list({r.name: r for r in runs}.values())
    if args.page_only:
        reports = finished(unique, args.runs.resolve())
    else:
        reports = run_all(unique, args.runs.resolve(), args.jobs)
    elapsed = time.perf_counter() - start
    path = write_docs(chosen, reports, args.docs, elapsed, " ".join(sys.argv[1:]))
    log.info("wrote %s (%.0f s)", path, elapsed)


if __name__ == "__main__":
    main()
