"""The adversarial audit: an attack ensemble, the per-example worst case, and sanity checks.

:func:`run_audit` attacks the first ``samples`` examples of a dataset with an ensemble (FGSM,
PGD, APGD-CE, APGD-DLR, Square by default, through the ART adapter). An example counts as
robust only if it is classified correctly clean and every attack failed on it. FGSM and PGD
are cheap and run alone on every clean-correct example; APGD-CE, APGD-DLR and Square then
run, in that order, only on the examples still robust (AutoAttack's practice): that leaves the
worst case unchanged and makes their own figure cumulative. The report says which is which.

An ONNX file is audited as deployed: Square queries the ONNX Runtime session itself, and the
gradient attacks are crafted on a torch twin (when one is given) and evaluated on the session
(transfer). No gradient is ever taken from ONNX Runtime. See docs/audit.md.

Example::

    result = run_audit(model, load_dataset("fashion-mnist", "test"), AuditConfig(eps=0.1))
    print(result["robust"], result["passed"])
    print(result["markdown"])
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from robust_compress.attacks.registry import label, meta
from robust_compress.audit import checks
from robust_compress.audit import sweep as sweeps
from robust_compress.audit.attacks import (
    AttackBudget,
    Target,
    audit_config,
    craft,
    make_target,
    max_perturbation,
    ordered_attacks,
    settings,
)
from robust_compress.audit.options import (
    AuditConfig,
    check_sweep_values,
    make_budget,
)
from robust_compress.audit.stats import wilson
from robust_compress.data.datasets import TensorData
from robust_compress.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "robust-compress-audit/1"


def run_audit(
    model: nn.Module | None,
    data: TensorData,
    config: AuditConfig | None = None,
    *,
    onnx_path: Path | None = None,
    out_dir: Path | None = None,
    progress: Callable[[str], None] | None = None,
    deployed_file: Path | None = None,
    **options,
) -> dict:
    """Audit ``model`` (or the ONNX file ``onnx_path``) on the first ``config.samples`` of ``data``.

    Args:
        model: The torch model (on the CPU, returning logits), or None to audit an ONNX file
            alone. With ``onnx_path`` it is the ONNX file's torch twin (transfer attacks).
        data: The test set; its first ``samples`` examples are audited (deterministic).
        config: What the audit runs (:class:`~robust_compress.audit.options.AuditConfig`).
        onnx_path: Audit this ONNX file as deployed (ONNX Runtime).
        out_dir: Write ``audit.json``, ``audit.md`` and ``accuracy_vs_eps.png`` here.
        progress: Called with a short message before each phase.
        deployed_file: The integer ONNX file exported from ``model`` (a fake-quant model):
            their top-1 agreement on the audited images becomes a check. An ONNX target with
            a torch twin gets that check without it.
        **options: Instead of ``config``, its fields as keywords (``eps=0.1, samples=500``).

    Returns:
        Plain data (see docs/audit.md): ``robust``, ``clean``, ``samples``, ``per_attack``,
        ``checks``, ``passed``, ``eps_sweep``, ``markdown`` and the settings.

    Raises:
        UserError: Bad options, an unknown attack, or nothing to audit.
    """
    start = time.perf_counter()
    if config is not None and options:
        raise UserError("give run_audit a config or keyword options, not both.")
    config = config if config is not None else AuditConfig.from_options(options)
    plan = _Plan(
        names=ordered_attacks(config.attacks),
        budget=make_budget(data, config),
        sweep_extra=check_sweep_values(config.eps_sweep, config.norm),
        samples=config.samples,
        sanity=config.sanity_checks,
        say=_say(progress),
    )
    modes = [(m, m.training) for m in model.modules()] if isinstance(model, nn.Module) else []
    target = make_target(model, onnx_path)
    plan.pair = _twin_pair(target, deployed_file)
    try:
        result = _audit(target, data, plan)
    finally:
        for module, mode in modes:  # each submodule's own mode, not model.train(mode)
            module.training = mode
    result["seconds"] = time.perf_counter() - start
    from robust_compress.audit.report import audit_markdown, write_outputs

    result["markdown"] = audit_markdown(result)
    if out_dir is not None:
        write_outputs(result, Path(out_dir))
    log.info(
        "audit: robust %.4f clean %.4f on %d (%.0f s)",
        result["robust"],
        result["clean"],
        result["samples"],
        result["seconds"],
    )
    return result


@dataclass
class _Plan:
    """An audit's validated settings, as :func:`_audit` runs them."""

    names: list[str]
    budget: AttackBudget
    sweep_extra: list[float]
    samples: int
    sanity: bool
    say: Callable[[str], None]
    pair: tuple | None = None


def _twin_pair(target: Target, deployed_file: Path | None) -> tuple | None:
    """(fake-quant twin, file predictor) whose agreement the audit checks, or None."""
    if deployed_file is not None:
        if target.kind != "torch":
            raise UserError("deployed_file applies to the audit of a torch model, not of a file.")
        return target.twin, make_target(None, deployed_file).predict
    if target.kind == "onnx" and target.twin is not None:
        return target.twin, target.predict
    return None


def _audit(target: Target, data: TensorData, plan: _Plan) -> dict:
    budget, say = plan.budget, plan.say
    n = min(plan.samples, len(data))
    head = data.head(n)
    x = head.x.detach().to(torch.float32).contiguous()
    y = head.y.detach().long()
    say(f"clean accuracy on {n} examples")
    clean = target.correct(x, y, budget.batch_size)
    ens = run_ensemble(target, plan.names, x, y, clean, budget, say)
    sweep, found = [], []
    if plan.sanity or plan.sweep_extra:
        numel = math.prod(x.shape[1:])
        defaults = sweeps.default_sweep(budget.eps, budget.norm, numel) if plan.sanity else []
        eps_list = sorted({*plan.sweep_extra, budget.eps, *defaults})
        m = min(sweeps.SWEEP_SAMPLES, n)
        sweep = sweeps.run_sweep(target, x[:m], y[:m], clean[:m], budget, eps_list, say, plan.names)
    if plan.sanity:
        found = checks.run_checks(target, ens, sweep, (x, y, clean), budget, say)
    if plan.pair is not None:
        say(f"agreement of the integer file with its fake-quant twin on {n} examples")
        found.append(checks.check_twin_agreement(*plan.pair, x, y, budget.batch_size))
    return {
        "format": FORMAT,
        "target": target.describe(),
        "target_kind": target.kind,
        "onnx_path": str(target.onnx_path) if target.onnx_path else None,
        "dataset": data.name,
        "samples": n,
        "eps": budget.eps,
        "norm": budget.norm,
        "seed": budget.seed,
        "clean": float(clean.float().mean()),
        "clean_correct": int(clean.sum()),
        "robust": float(ens["robust"].float().mean()),
        "robust_count": int(ens["robust"].sum()),
        "attacks": plan.names,
        "per_attack": ens["per_attack"],
        "budget": {k: getattr(budget, k) for k in budget.__dataclass_fields__},
        "eps_sweep": sweep,
        "checks": found,
        "sanity_checks": bool(plan.sanity),
        "passed": all(c["passed"] for c in found),
        "robust_mask": _mask(ens["robust"]),
        "clean_mask": _mask(clean),
        "clean_ci": list(wilson(int(clean.sum()), n)),
        "robust_ci": list(wilson(int(ens["robust"].sum()), n)),
    }


def _mask(flags: Tensor) -> str:
    """Per-example flags as a ``"1"``/``"0"`` string (compact in audit.json)."""
    return "".join("1" if v else "0" for v in flags.tolist())


def run_ensemble(
    target: Target,
    names: list[str],
    x: Tensor,
    y: Tensor,
    clean: Tensor,
    budget: AttackBudget,
    say: Callable[[str], None],
) -> dict:
    """Run the attacks in order; return the robust mask and the per-attack figures.

    Attacks whose registry entry says ``alone`` run on every clean-correct example (their
    ``accuracy`` is their own); the others run on the examples still robust (their
    ``accuracy`` is cumulative).
    """
    import robust_compress.adapters.art.adversary  # noqa: F401 - import ART before timing

    n = len(y)
    robust = clean.clone()
    per_attack: dict[str, dict] = {}
    worst_delta, worst_box = 0.0, 0.0
    for name in names:
        source = target.source(name)
        if source is None:
            per_attack[name] = {
                "accuracy": None,
                "cumulative": None,
                "skipped": True,
                "source": "not run: no torch twin",
            }
            continue
        mode = "alone" if meta(name, "alone", False) else "cumulative"
        idx = (clean if mode == "alone" else robust).nonzero().squeeze(1)
        say(f"{label(name)} ({source}) on {len(idx)} examples")
        t0 = time.perf_counter()
        fooled = torch.zeros(n, dtype=torch.bool, device="cpu")
        if len(idx):
            adv = craft(target, audit_config(name, budget), x[idx], y[idx], budget)
            worst_delta = max(worst_delta, max_perturbation(adv, x[idx], budget.norm))
            worst_box = max(worst_box, float((adv - adv.clamp(0, 1)).abs().max()))
            fooled[idx] = ~target.correct(adv, y[idx], budget.batch_size)
        newly = int((robust & fooled).sum())
        robust &= ~fooled
        cumulative = float(robust.float().mean())
        alone = float((clean & ~fooled).float().mean())
        per_attack[name] = {
            "accuracy": alone if mode == "alone" else cumulative,
            "mode": mode,
            "cumulative": cumulative,
            "attacked": len(idx),
            "fooled": int(fooled.sum()),
            "newly_broken": newly,
            "seconds": time.perf_counter() - t0,
            "source": source,
            "settings": settings(name, budget),
        }
        log.info(
            "audit: %s (%s) %s accuracy %.4f on %d",
            name,
            source,
            mode,
            per_attack[name]["accuracy"],
            n,
        )
    return {
        "robust": robust,
        "per_attack": per_attack,
        "max_delta": worst_delta,
        "max_box": worst_box,
    }


def _say(progress: Callable[[str], None] | None) -> Callable[[str], None]:
    def say(message: str) -> None:
        log.info("audit: %s", message)
        if progress is not None:
            progress(message)

    return say
