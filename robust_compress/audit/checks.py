"""Sanity checks of the audit: signs that the attacks, not the model, are weak.

Each check returns ``{"name", "title", "passed", "skipped", "detail"}``; ``detail`` holds the
numbers behind the verdict. A check that cannot run on a target (e.g. gradient checks on an
ONNX file without a torch twin) is ``skipped`` and counts as passed; the report says so.
The thresholds below are the documented ones (docs/audit.md).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from robust_compress.attacks.torch_attacks import frozen_for_attack
from robust_compress.audit.attacks import AttackBudget, Target, audit_config, craft
from robust_compress.audit.predict import predicted_labels
from robust_compress.devices import model_device

log = logging.getLogger(__name__)

TOL_SINGLE_STEP = 0.01
"""PGD may be at most this much (1 point) less effective than FGSM."""
TOL_BLACK_BOX = 0.01
"""Square may break at most this share (1 point) of examples the white-box ensemble missed."""
TOL_MONOTONE = 0.02
"""Accuracy may rise by at most 2 points from one sweep eps to the next larger one."""
LARGE_EPS_MAX_ACC = 0.10
"""Accuracy allowed at the sweep's large eps (any image reaches the grey image there)."""
TOL_DOUBLE_STEPS = 0.01
"""Doubling PGD's iterations may change its accuracy by at most 1 point (2 of 200 examples)."""
ZERO_GRAD_MAX_SHARE = 0.05
"""At most 5% of the examples may have an all-zero (or non-finite) input gradient."""
MIN_TWIN_AGREEMENT = 0.99
"""The deployed integer file must predict its fake-quant twin's class on 99% of the images
(one disagreement is always allowed, so that a check on fewer than 100 images can pass)."""


def _check(name: str, title: str, passed: bool, detail: str, skipped: bool = False) -> dict:
    return {
        "name": name,
        "title": title,
        "passed": bool(passed),
        "skipped": skipped,
        "detail": detail,
    }


def _skip(name: str, title: str, why: str) -> dict:
    return _check(name, title, True, f"skipped: {why}", skipped=True)


def _pct(value: float) -> str:
    return f"{100 * value:.1f}%"


def check_threat_model(max_delta: float, max_out_of_box: float, eps: float, norm: str) -> dict:
    """Every adversarial example lies in the eps-ball (under ``norm``) and in [0, 1]."""
    ok = max_delta <= eps * (1 + 1e-5) + 1e-6 and max_out_of_box <= 1e-6
    detail = (
        f"largest {norm} perturbation {max_delta:.6g} (eps {eps:g}); largest step outside "
        f"[0, 1] {max_out_of_box:.3g}"
    )
    return _check("threat_model", "adversarial examples inside the threat model", ok, detail)


def check_pgd_vs_fgsm(per_attack: dict) -> dict:
    """PGD (iterative) is at least as strong as FGSM (single step), within a tolerance."""
    title = "iterative attack at least as strong as single-step"
    fgsm, pgd = per_attack.get("fgsm"), per_attack.get("pgd")
    if not fgsm or not pgd or fgsm.get("accuracy") is None or pgd.get("accuracy") is None:
        return _skip("pgd_vs_fgsm", title, "needs both fgsm and pgd in the attack list")
    ok = pgd["accuracy"] <= fgsm["accuracy"] + TOL_SINGLE_STEP
    detail = (
        f"PGD {_pct(pgd['accuracy'])} vs FGSM {_pct(fgsm['accuracy'])} (both alone on all "
        f"examples; PGD may exceed FGSM by at most {100 * TOL_SINGLE_STEP:.0f} point)"
    )
    return _check("pgd_vs_fgsm", title, ok, detail)


def check_sweep(sweep: list[dict], large: float) -> list[dict]:
    """Accuracy does not rise with eps, and is near 0 at the large eps."""
    title_m = "accuracy non-increasing over the eps sweep"
    title_l = f"accuracy near 0 at large eps ({large:g})"
    if not sweep:
        return [
            _skip("eps_monotone", title_m, "no eps sweep"),
            _skip("large_eps", title_l, "no eps sweep"),
        ]
    main = sweep[0]["attack"]  # the main sweep attack's curve decides the checks
    points = sorted((r for r in sweep if r["attack"] == main), key=lambda r: r["eps"])
    rises = [(a, b) for a, b in zip(points, points[1:], strict=False)]
    worst = max(rises, key=lambda ab: ab[1]["accuracy"] - ab[0]["accuracy"], default=None)
    rise = worst[1]["accuracy"] - worst[0]["accuracy"] if worst else 0.0
    curve = ", ".join(f"{r['eps']:g}: {_pct(r['accuracy'])}" for r in points)
    n, name = points[0]["samples"], points[0]["attack"]
    change = f"largest rise {100 * rise:.1f} points" if rise > 0 else "no rise"
    detail_m = f"{name} alone on {n} examples: {curve}; {change} (tolerance "
    detail_m += f"{100 * TOL_MONOTONE:.0f} points)"
    last = points[-1]
    if last["eps"] < large * (1 - 1e-6):
        check_l = _skip("large_eps", title_l, f"the sweep stops at eps {last['eps']:g}")
    else:
        ok = last["accuracy"] <= LARGE_EPS_MAX_ACC
        detail_l = (
            f"{name} at eps {last['eps']:g}: {_pct(last['accuracy'])} of {n} (limit "
            f"{_pct(LARGE_EPS_MAX_ACC)}: at this eps every image can be turned into the same "
            "grey image)"
        )
        check_l = _check("large_eps", title_l, ok, detail_l)
    return [_check("eps_monotone", title_m, rise <= TOL_MONOTONE, detail_m), check_l]


def check_black_box(per_attack: dict, n: int) -> dict:
    """Square breaks few examples that the gradient (or transfer) attacks left robust."""
    title = "black-box not stronger than white-box"
    square = per_attack.get("square")
    gradient = [a for k, a in per_attack.items() if k != "square" and a.get("accuracy") is not None]
    if not square or square.get("accuracy") is None or not gradient:
        return _skip("black_box_vs_white_box", title, "needs square and a gradient attack")
    before = square["cumulative"] + square["newly_broken"] / n
    share = square["newly_broken"] / n
    ok = share <= TOL_BLACK_BOX
    detail = (
        f"worst case of the gradient attacks {_pct(before)}; with Square "
        f"{_pct(square['cumulative'])}: Square broke {square['newly_broken']} of the "
        f"{square['attacked']} examples they left robust ({100 * share:.1f} points of {n}; "
        f"tolerance {100 * TOL_BLACK_BOX:.0f})"
    )
    if not ok:
        detail += " -- gradient masking suspected"
    return _check("black_box_vs_white_box", title, ok, detail)


def check_double_steps(
    target: Target, x: Tensor, y: Tensor, clean: Tensor, budget: AttackBudget, base: dict | None
) -> dict:
    """PGD with twice the iterations changes the accuracy by less than a point."""
    title = "doubling PGD iterations changes little"
    if target.twin is None:
        return _skip("double_steps", title, "no torch model to take gradients from")
    idx = clean.nonzero().squeeze(1)
    accs = []
    for steps in ([budget.pgd_steps] if base is None else []) + [2 * budget.pgd_steps]:
        fooled = torch.zeros(len(y), dtype=torch.bool, device="cpu")
        if len(idx):
            cfg = audit_config("pgd", budget, steps=steps)
            adv = craft(target, cfg, x[idx], y[idx], budget, salt=1)
            fooled[idx] = ~target.correct(adv, y[idx], budget.batch_size)
        accs.append(float((clean & ~fooled).float().mean()))
    k_acc = base["accuracy"] if base is not None else accs[0]
    change = accs[-1] - k_acc
    ok = abs(change) <= TOL_DOUBLE_STEPS + 1e-9
    detail = (
        f"PGD-{budget.pgd_steps} {_pct(k_acc)} vs PGD-{2 * budget.pgd_steps} {_pct(accs[-1])} "
        f"on {len(y)} examples ({100 * change:+.1f} points; limit "
        f"{100 * TOL_DOUBLE_STEPS:.0f} point)"
    )
    return _check("double_steps", title, ok, detail)


def zero_gradient_share(model: nn.Module, x: Tensor, y: Tensor, batch_size: int) -> int:
    """How many examples have an all-zero or non-finite input gradient of the CE loss."""
    count = 0
    with frozen_for_attack(model), torch.enable_grad():
        for i in range(0, len(y), batch_size):
            xb = x[i : i + batch_size].detach().clone().requires_grad_(True)
            loss = F.cross_entropy(model(xb), y[i : i + batch_size], reduction="sum")
            (grad,) = torch.autograd.grad(loss, xb)
            flat = grad.flatten(1)
            bad = (flat == 0).all(1) | ~torch.isfinite(flat).all(1)
            count += int(bad.sum())
    return count


def check_zero_gradients(target: Target, x: Tensor, y: Tensor, batch_size: int) -> dict:
    """Few examples have a zero input gradient (a hard step or saturated softmax hides it)."""
    title = "input gradients non-zero"
    if target.twin is None:
        return _skip("zero_gradients", title, "no torch model to take gradients from")
    zeros = zero_gradient_share(target.twin, x, y, batch_size)
    share = zeros / max(1, len(y))
    where = "torch twin" if target.kind == "onnx" else "model"
    detail = (
        f"{zeros} of {len(y)} examples ({_pct(share)}) have an all-zero or non-finite "
        f"cross-entropy input gradient on the {where} (limit {_pct(ZERO_GRAD_MAX_SHARE)})"
    )
    return _check("zero_gradients", title, share <= ZERO_GRAD_MAX_SHARE, detail)


def check_twin_agreement(
    twin: nn.Module, file_predict: Callable[[Tensor], Tensor], x: Tensor, y: Tensor, batch: int
) -> dict:
    """The integer file as ONNX Runtime runs it predicts what its fake-quant twin predicts.

    A file whose integer kernels overflow on this CPU (or were exported wrongly) agrees with
    its twin on far fewer images; the audit of the twin then says nothing about the file.

    Args:
        twin: The fake-quant torch model the file was exported from.
        file_predict: The file's predictor (images in [0, 1] -> logits).
        x: The audited images.
        y: Their labels.
        batch: Images per forward pass.

    Returns:
        The check, with ``agreement``, ``file_clean``, ``twin_clean`` and ``samples`` added.
    """
    twin.eval()
    device = model_device(twin)

    def twin_predict(images: Tensor) -> Tensor:
        return twin(images.to(device)).cpu()

    twin_pred, file_pred = (predicted_labels(p, x, batch) for p in (twin_predict, file_predict))
    agreement = float((twin_pred == file_pred).float().mean())
    file_clean = float((file_pred == y).float().mean())
    twin_clean = float((twin_pred == y).float().mean())
    detail = (
        f"top-1 agreement {_pct(agreement)} on {len(y)} audited images (limit "
        f"{_pct(MIN_TWIN_AGREEMENT)}); clean accuracy of the file {_pct(file_clean)}, of the "
        f"twin {_pct(twin_clean)}"
    )
    passed = agreement >= MIN_TWIN_AGREEMENT or int((twin_pred != file_pred).sum()) <= 1
    found = _check(
        "twin_agreement", "integer ONNX file agrees with its fake-quant twin", passed, detail
    )
    figures = {"agreement": agreement, "file_clean": file_clean, "twin_clean": twin_clean}
    return {**found, **figures, "samples": len(y)}


def run_checks(target: Target, ens: dict, sweep: list[dict], examples, budget, say) -> list[dict]:
    """Every sanity check of one audit (``examples``: the audited x, y and clean mask)."""
    import math

    from robust_compress.audit import sweep as sweeps

    x, y, clean = examples
    n, m = len(y), min(sweeps.SWEEP_SAMPLES, len(y))
    large = sweeps.large_eps(budget.eps, budget.norm, math.prod(x.shape[1:]))
    base = next((r for r in sweep if r["eps"] == budget.eps and r["attack"] == "pgd"), None)
    say(f"sanity checks: PGD-{2 * budget.pgd_steps} on {m} examples, input gradients")
    found = [
        check_threat_model(ens["max_delta"], ens["max_box"], budget.eps, budget.norm),
        check_pgd_vs_fgsm(ens["per_attack"]),
        *check_sweep(sweep, large),
        check_black_box(ens["per_attack"], n),
        check_double_steps(target, x[:m], y[:m], clean[:m], budget, base),
        check_zero_gradients(target, x, y, budget.batch_size),
    ]
    for c in found:
        if not c["passed"]:
            log.warning("audit check FAILED: %s: %s", c["title"], c["detail"])
    return found
