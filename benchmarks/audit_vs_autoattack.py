"""The project's audit against AutoAttack standard (torchattacks) on the quickstart's models.

Loads the dense snapshot and the final (fake-quant int8) model of a run folder (``make demo``
makes runs/quickstart), runs the audit (``run_audit``: default strength, sanity checks off) and
torchattacks' ``AutoAttack(version="standard")`` (APGD-CE, APGD-T with 9 targets, FAB-T with 9
targets, Square with 5,000 queries) on the same first test images, and reports both robust
accuracies, their difference, both times, and per example how many images AutoAttack broke that
the audit left robust (and which of its attacks broke them).

torchattacks' ``AutoAttack`` builds its APGD, APGD-T and FAB-T with torchattacks' default of
10 iterations; AutoAttack's reference standard runs 100. ``--aa-steps`` (100 by default) sets
them; ``--aa-steps 10`` runs torchattacks' constructor as it is.

torchattacks is a benchmark-only extra: ``pip install --no-deps 'torchattacks==3.5.1'`` (its
metadata pins requests 2.25, which would downgrade the environment's; the attacks need only
torch, numpy and scipy). It is imported here and nowhere else.

Run: .venv/bin/python benchmarks/audit_vs_autoattack.py [--run runs/quickstart]
     [--samples 1000] [--out docs/audit-vs-autoattack.md] [--resume]

``--resume`` keeps the rows already in ``--out``'s .json (written after each model) and runs
only the models missing from it.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch import nn

from robust_compress.audit.runner import run_audit
from robust_compress.data.datasets import TensorData, load_dataset

ROOT = Path(__file__).resolve().parent.parent


def parse_args() -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--run", type=Path, default=ROOT / "runs" / "quickstart")
    p.add_argument("--samples", type=int, default=1000)
    p.add_argument("--eps", type=float, default=0.1)
    p.add_argument("--aa-steps", type=int, default=100, help="APGD/APGD-T/FAB-T iterations")
    p.add_argument("--batch-size", type=int, default=500)
    p.add_argument("--models", default="final,dense", help="comma-separated: final, dense")
    p.add_argument("--out", type=Path, default=None, help="write the markdown table here")
    p.add_argument(
        "--resume",
        action="store_true",
        help="keep the rows of models already in --out's .json and run only the others",
    )
    return p.parse_args()


def load_models(run: Path) -> dict[str, nn.Module]:
    """The run folder's final model and its dense snapshot, as the audit command loads them."""
    from robust_compress.engine import state as session_state
    from robust_compress.engine.runfolder import RunFolder
    from robust_compress.engine.session import Session
    from robust_compress.recipe.loader import load_run_recipe

    recipe = load_run_recipe(run / "recipe.resolved.yaml")
    session = Session(recipe, RunFolder(run, resume=True))
    session.setup()
    if not session_state.restore_latest(session):
        raise SystemExit(f"{run} has no checkpoint; run `make demo` first")
    return {"final": session.model.eval(), "dense": session.dense_model().eval()}


def project_audit(model: nn.Module, data: TensorData, args) -> dict:
    """The audit at its default strength, without the sanity checks."""
    t0 = time.perf_counter()
    r = run_audit(
        model,
        data,
        eps=args.eps,
        samples=args.samples,
        sanity_checks=False,
        seed=0,
        batch_size=args.batch_size,
    )
    robust = torch.tensor([c == "1" for c in r["robust_mask"]])
    per_attack = {
        k: (e["newly_broken"], round(e["seconds"], 1)) for k, e in r["per_attack"].items()
    }
    return {
        "robust": robust,
        "seconds": time.perf_counter() - t0,
        "per_attack": per_attack,
        "clean": r["clean"],
    }


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, args) -> dict:
    """torchattacks' AutoAttack standard, attack by attack on the examples still robust.

    The same chain as its ``MultiAttack``, timed per attack and recording which one broke each
    example.
    """
    import torchattacks

    aa = torchattacks.AutoAttack(
        model, norm="Linf", eps=args.eps, version="standard", n_classes=10, seed=0
    )
    attacks = aa._autoattack.attacks
    for attack in attacks:
        if hasattr(attack, "steps"):
            attack.steps = args.aa_steps
    t0 = time.perf_counter()
    robust = predict(model, x, args.batch_size) == y
    broken_by = [""] * len(y)
    per_attack = {}
    for attack in attacks:
        t1, idx = time.perf_counter(), robust.nonzero().squeeze(1)
        fooled = torch.zeros(len(y), dtype=torch.bool)
        for i in range(0, len(idx), args.batch_size):
            chunk = idx[i : i + args.batch_size]
            adv = attack(x[chunk], y[chunk])
            fooled[chunk] = predict(model, adv, args.batch_size) != y[chunk]
        for i in fooled.nonzero().squeeze(1).tolist():
            broken_by[i] = attack.attack
        robust &= ~fooled
        per_attack[attack.attack] = (int(fooled.sum()), round(time.perf_counter() - t1, 1))
    return {
        "robust": robust,
        "seconds": time.perf_counter() - t0,
        "per_attack": per_attack,
        "broken_by": broken_by,
    }


@torch.no_grad()
def predict(model: nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Predicted classes, in batches."""
    return torch.cat([model(x[i : i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])


def compare(name: str, model: nn.Module, data: TensorData, args) -> dict:
    """One model: the audit, then AutoAttack, and the paired per-example comparison."""
    head = data.head(min(args.samples, len(data)))
    x, y = head.x.to(torch.float32), head.y.long()
    ours = project_audit(model, data, args)
    print(
        f"{name}: audit {ours['robust'].float().mean():.1%} in {ours['seconds']:.0f} s "
        f"{ours['per_attack']}",
        flush=True,
    )
    theirs = autoattack(model, x, y, args)
    print(
        f"{name}: AutoAttack {theirs['robust'].float().mean():.1%} in "
        f"{theirs['seconds']:.0f} s {theirs['per_attack']}",
        flush=True,
    )
    only_aa = (ours["robust"] & ~theirs["robust"]).nonzero().squeeze(1).tolist()
    only_audit = (theirs["robust"] & ~ours["robust"]).nonzero().squeeze(1).tolist()
    return {
        "model": name,
        "settings": settings(args),
        "samples": len(y),
        "clean": ours["clean"],
        "audit": float(ours["robust"].float().mean()),
        "autoattack": float(theirs["robust"].float().mean()),
        "audit_seconds": ours["seconds"],
        "autoattack_seconds": theirs["seconds"],
        "audit_per_attack": ours["per_attack"],
        "autoattack_per_attack": theirs["per_attack"],
        "only_autoattack_broke": only_aa,
        "only_autoattack_broke_by": {i: theirs["broken_by"][i] for i in only_aa},
        "only_audit_broke": only_audit,
    }


def markdown(rows: list[dict], args) -> str:
    """The side-by-side table and the paired counts."""
    lines = [
        "# The audit against AutoAttack standard",
        "",
        "Generated by `benchmarks/audit_vs_autoattack.py` (`make bench-autoattack`); see "
        "[audit.md](audit.md#against-autoattack-standard).",
        "",
        "| model | audit robust | AutoAttack robust | difference (points) | audit s | "
        "AutoAttack s | time ratio (audit / AA) | broken by AA only | broken by audit only |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        by = {}
        for attack in r["only_autoattack_broke_by"].values():
            by[attack] = by.get(attack, 0) + 1
        detail = ", ".join(f"{k} {v}" for k, v in sorted(by.items()))
        lines.append(
            f"| {r['model']} | {100 * r['audit']:.1f}% | {100 * r['autoattack']:.1f}% | "
            f"{100 * (r['audit'] - r['autoattack']):+.1f} | {r['audit_seconds']:.0f} | "
            f"{r['autoattack_seconds']:.0f} | {r['audit_seconds'] / r['autoattack_seconds']:.2f} | "
            f"{len(r['only_autoattack_broke'])}{f' ({detail})' if detail else ''} | "
            f"{len(r['only_audit_broke'])} |"
        )
    n = rows[0]["samples"] if rows else args.samples
    lines += [
        "",
        f"First {n} Fashion-MNIST test images, L-inf eps {args.eps}; AutoAttack: torchattacks "
        f"standard with {args.aa_steps} iterations for APGD-CE, APGD-T and FAB-T (9 targets "
        f"each), Square 5000 queries, seed 0. Per attack (examples broken, seconds):",
        "",
    ]
    for r in rows:
        lines.append(
            f"- {r['model']}: audit {_per_attack(r['audit_per_attack'])}; "
            f"AutoAttack {_per_attack(r['autoattack_per_attack'])}"
        )
    return "\n".join(lines)


def _per_attack(found: dict) -> str:
    """``{"pgd": (17, 6.9), ...}`` as ``pgd 17 (6.9 s), ...``."""
    return ", ".join(f"{name} {broken} ({seconds} s)" for name, (broken, seconds) in found.items())


def settings(args) -> dict:
    """What a row was measured with; a kept row counts only under the same settings."""
    return {
        "run": args.run.name,
        "samples": args.samples,
        "eps": args.eps,
        "aa_steps": args.aa_steps,
    }


def finished_rows(args) -> list[dict]:
    """With ``--resume``, the rows an earlier run wrote to ``--out``'s .json (else none).

    AutoAttack standard takes about 20 minutes to an hour per model on 2 CPU cores, so a run
    that stops after one model can be finished later without measuring that model again. Rows
    of models not named in ``--models`` are kept too; a row measured with other settings (run
    folder, samples, eps, AutoAttack iterations) is dropped, and measured again when named.
    """
    path = None if args.out is None else args.out.with_suffix(".json")
    if not args.resume or path is None or not path.is_file():
        return []
    kept = []
    for row in json.loads(path.read_text()):
        if row.get("settings") == settings(args):
            kept.append(row)
        else:
            print(f"not kept from {path}: {row['model']} (measured with {row.get('settings')})")
    print(f"kept from {path}: {', '.join(r['model'] for r in kept) or 'nothing'}")
    return kept


def main() -> None:
    args = parse_args()
    torch.manual_seed(0)
    # imported before any timing: neither library's import is part of an attack's time
    import torchattacks  # noqa: F401

    import robust_compress.adapters.art.adversary  # noqa: F401

    models = load_models(args.run)
    data = load_dataset("fashion-mnist", "test")
    rows = finished_rows(args)
    done = {r["model"] for r in rows}
    for name in [m for m in args.models.split(",") if m not in done]:
        rows.append(compare(name, models[name], data, args))
        write(rows, args)  # after each model, so a long run leaves what it finished
    if len(rows) == len(done):  # nothing new ran: render the kept rows
        write(rows, args)


def write(rows: list[dict], args) -> None:
    """Print the table, and write it with its data to ``--out`` when given."""
    text = markdown(rows, args)
    print(text, flush=True)
    if args.out is not None:
        args.out.write_text(text + "\n")
        args.out.with_suffix(".json").write_text(json.dumps(rows, indent=2) + "\n")


if __name__ == "__main__":
    main()
