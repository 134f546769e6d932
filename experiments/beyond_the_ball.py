"""Beyond the ball: the corruption audit and randomized smoothing of the quickstart's models.

Loads a finished run folder (read only: nothing is written into it), takes its dense snapshot
(torch) and its deployed file ``model.int8.onnx`` (ONNX Runtime), and runs on both

- the corruption audit: the first 1,000 test images under every registered corruption at
  severities 1-5 (robust_compress.audit.corruption_audit), and
- randomized-smoothing certification (robust_compress.audit.smoothing) at each sigma,

then writes docs/beyond-the-ball.md, docs/beyond-the-ball.json and docs/img/beyond-the-ball.png.

    python experiments/beyond_the_ball.py [--run runs/quickstart]     # or: make beyond
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "experiments"))

from beyond_doc import write_page  # noqa: E402

from robust_compress.audit.corruption_audit import CorruptionConfig, evaluate_corruptions  # noqa: E402
from robust_compress.audit.predict import as_predictor  # noqa: E402
from robust_compress.audit.smoothing import SmoothingConfig, certify  # noqa: E402

log = logging.getLogger("beyond")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line (defaults: the figures in docs/beyond-the-ball.md)."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    p.add_argument("--samples", type=int, default=1000, help="test images, corruptions")
    p.add_argument("--smooth-samples", type=int, default=200, help="test images, smoothing")
    p.add_argument("--sigmas", default="0.12,0.25", help="noise levels of the smoothing")
    p.add_argument("--n0", type=int, default=100)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--alpha", type=float, default=0.001)
    p.add_argument("--radii", default="0,0.1,0.25,0.5,0.75,1.0")
    p.add_argument("--scan-sigmas", default="0.12,0.25,0.5", help="noise of the base-model scan")
    p.add_argument("--docs", type=Path, default=ROOT / "docs")
    return p.parse_args(argv)


def load_subjects(run: Path) -> tuple[dict, object, dict]:
    """``({"dense": model, "int8_onnx": path}, test data, run facts)`` of a run folder."""
    from types import SimpleNamespace

    from robust_compress.cli.beyond import open_run
    from robust_compress.stages.audit_beyond import targets

    session = open_run(run, read_only=True)
    subjects = dict(targets(session, SimpleNamespace(onnx=True, dense=True)))
    if set(subjects) != {"dense", "int8_onnx"}:
        raise SystemExit(f"{run}: expected a dense snapshot and model.int8.onnx")
    facts = {
        "recipe": session.recipe.name,
        "run": f"runs/{run.name}",
        "threat": session.recipe.threat.model_dump(),
        "machine": machine(),
    }
    return subjects, session.test_data, facts


def machine() -> dict:
    """What the figures were measured with."""
    import platform

    import onnxruntime
    import torch

    return {
        "cpu": _cpu_name() or platform.machine(),
        "torch_threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "onnxruntime": onnxruntime.__version__,
    }


def _cpu_name() -> str:
    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.is_file() else []
    return next((line.split(":", 1)[1].strip() for line in lines if "model name" in line), "")


def run_all(args: argparse.Namespace) -> dict:
    """Every figure of the page, as plain data."""
    subjects, data, facts = load_subjects(args.run.resolve())
    corruptions = CorruptionConfig(samples=args.samples)
    radii = [float(r) for r in args.radii.split(",")]
    smoothing = [
        SmoothingConfig(
            sigma=float(s),
            n0=args.n0,
            n=args.n,
            alpha=args.alpha,
            radii=radii,
            samples=args.smooth_samples,
        )
        for s in args.sigmas.split(",")
    ]
    scan = [float(s) for s in args.scan_sigmas.split(",")]
    found = {"facts": facts, "corruptions": {}, "noise_scan": {}, "smoothing": []}
    for key, subject in subjects.items():
        with as_predictor(subject) as predict:
            log.info("corruptions: %s", key)
            found["corruptions"][key] = evaluate_corruptions(predict, data, corruptions)
            found["noise_scan"][key] = noise_scan(predict, data, scan, args.samples)
    for config in smoothing:
        by_model = {}
        for key, subject in subjects.items():
            with as_predictor(subject) as predict:
                log.info("smoothing: %s, sigma %g", key, config.sigma)
                by_model[key] = certify(predict, data, config)
        found["smoothing"].append(by_model)
    return found


def noise_scan(predict, data, sigmas: list[float], samples: int) -> list[dict]:
    """The base model's accuracy with one Gaussian noise draw per image, at each sigma.

    The draws are seeded by sigma alone, so every model sees the same noise.
    """
    import numpy as np
    import torch

    from robust_compress.audit.predict import predicted_labels
    from robust_compress.audit.stats import wilson

    head = data.head(min(samples, len(data)))
    x, y, n = head.x.float(), head.y.long(), len(head.y)
    found = []
    for sigma in sigmas:
        rng = np.random.default_rng([round(sigma * 1e6)])
        noise = torch.from_numpy(rng.standard_normal(tuple(x.shape), dtype=np.float32))
        hits = int((predicted_labels(predict, x + sigma * noise, 500) == y).sum())
        found.append({"sigma": sigma, "samples": n, "accuracy": hits / n, "ci": wilson(hits, n)})
    return found


def main(argv: list[str] | None = None) -> None:
    """Run the audits and write the page, its data and its plot."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")
    args = parse_args(argv)
    start = time.perf_counter()
    found = run_all(args)
    found["seconds"] = time.perf_counter() - start
    given = argv if argv is not None else sys.argv[1:]
    shown = [a for a in given if not a.startswith("--run") and a != str(args.run)]
    found["command"] = " ".join(["python experiments/beyond_the_ball.py", *shown])
    (args.docs / "beyond-the-ball.json").write_text(json.dumps(found, indent=1) + "\n")
    write_page(found, args.docs)
    log.info("wrote %s (%.0f s)", args.docs / "beyond-the-ball.md", found["seconds"])


if __name__ == "__main__":
    main()
