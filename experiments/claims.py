"""The five research claims of docs/results.md: which runs test each, and how each is judged.

A :class:`Run` is one shipped recipe of ``recipes/experiments/`` with ``args`` overrides; a
:class:`Claim` lists its runs with a row label each and a verdict function over the measured
rows. Verdicts compare the audit's worst-case robust accuracy (1,000 test images), never a
number typed here. Claims 1, 2 and 5 run every row with :data:`SEEDS` (each seed on a base
trained with that seed); a row's figure is the mean over its seeds, and a difference counts
when it exceeds two standard errors of the difference (:func:`margin`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, replace

#: The smallest difference a verdict may call real, whatever the standard errors say.
MARGIN = 0.01
#: The significance level of the paired test behind every verdict.
LEVEL = 0.05
#: The seeds of the claims that run several (1, 2 and 5).
SEEDS = (0, 1, 2)


@dataclass(frozen=True)
class Run:
    """One recipe of ``recipes/experiments`` with its ``args`` overrides."""

    recipe: str
    args: tuple[tuple[str, object], ...] = ()
    base: str | None = None  # the run whose last checkpoint is this run's ${base}
    seed: int = 0

    @property
    def name(self) -> str:
        """The run's folder name: the recipe, its arguments and its seed (when not 0)."""
        tail = "".join(f"-{k}{v}" for k, v in self.args)
        return f"{self.recipe}{tail}" + (f"-seed{self.seed}" if self.seed else "")


BASE_PGD = Run("base-pgd")
BASE_NATURAL = Run("base-natural")
BASES = {r.name: r for r in (BASE_PGD, BASE_NATURAL)}


def base_of(seed: int, name: str) -> Run:
    """The base run ``name`` (a seed-0 base's name, or a seeded one's) trained with ``seed``."""
    plain = name.split("-seed")[0]
    return replace(BASES[plain], seed=seed)


def _on(base: Run, recipe: str, **args) -> Run:
    return Run(recipe, tuple(args.items()), base.name)


@dataclass
class Claim:
    """A claim, the rows that test it, and how to judge them."""

    number: int
    title: str
    source: str
    rows: list[tuple[str, Run]]
    judge: Callable[[dict[str, dict]], tuple[str, str]]
    note: str = ""
    plot: str = ""
    #: shown when the verdict is not "holds": what may explain it here, from the measured rows
    why: str | Callable[[dict[str, dict]], str] = ""
    seeds: tuple[int, ...] = (0,)


def seeded_runs(claim: Claim, label: str) -> list[Run]:
    """The runs of the row ``label``, one per seed of the claim (each on its seed's base)."""
    run = dict(claim.rows)[label]
    out = []
    for seed in claim.seeds:
        if run.name in BASES:  # a base row: the base itself, with the seed
            out.append(base_of(seed, run.name))
        else:
            base = base_of(seed, run.base).name if run.base else None
            out.append(replace(run, seed=seed, base=base))
    return out


def all_bases(claims: list[Claim]) -> dict[str, Run]:
    """Every base run the claims' seeded runs start from, by name."""
    seeds = {s for c in claims for s in c.seeds}
    return {b.name: b for s in seeds for b in (base_of(s, n) for n in BASES)}


def robust(rows: dict[str, dict], label: str) -> float:
    """The audit's worst-case robust accuracy of the row ``label`` (mean over its seeds)."""
    return rows[label]["robust"]


def margin(rows: dict[str, dict], a: str, b: str) -> float:
    """Two standard errors of ``robust(a) - robust(b)``, and at least :data:`MARGIN`.

    The fallback of :func:`compare` for rows without per-image outcomes. A row's ``se`` is
    the standard error of its mean (from the spread over seeds, or the binomial error of one
    figure on its images); a row without one counts as exact.
    """
    se = math.hypot(rows[a].get("se", 0.0), rows[b].get("se", 0.0))
    return max(MARGIN, 2 * se)


def compare(rows: dict[str, dict], a: str, b: str) -> dict:
    """Row ``a`` against row ``b``: the difference of the means and whether it is real.

    With per-image outcomes (``masks``, one per seed, the audit's ``robust_mask`` on the same
    first 1,000 test images) the image is the unit: over the seeds both rows ran, an image
    counts for the row that keeps it robust in more seeds (an image's seeds are not
    independent), and the exact two-sided sign test at :data:`LEVEL` decides; with one seed
    that is McNemar's test (``sign`` +1: ``a`` is more robust, -1: less, 0: the difference
    may be chance). Rows without them fall back to :func:`margin` (two standard errors).
    """
    from robust_compress.audit.stats import sign_test

    diff = robust(rows, a) - robust(rows, b)
    pairs = _paired_masks(rows[a], rows[b])
    if pairs:
        paired = sign_test([x for x, _ in pairs], [y for _, y in pairs])
        only_a, only_b, p = paired.only_a, paired.only_b, paired.p_value
        sign = 0 if p >= LEVEL or only_a == only_b else (1 if only_a > only_b else -1)
        return {
            "a": a,
            "b": b,
            "diff": diff,
            "only_a": only_a,
            "only_b": only_b,
            "p": p,
            "sign": sign,
            "seeds": len(pairs),
            "test": "sign test" if len(pairs) > 1 else "McNemar",
        }
    m = margin(rows, a, b)
    sign = 1 if diff > m else -1 if diff < -m else 0
    return {"a": a, "b": b, "diff": diff, "margin": m, "sign": sign, "test": "2 SE"}


def describe(c: dict) -> str:
    """One comparison in words, with the numbers behind its verdict."""
    if c["test"] == "McNemar":
        return (
            f"{100 * c['diff']:+.1f} points (images kept only by the first {c['only_a']}, only "
            f"by the second {c['only_b']}, McNemar p = {c['p']:.2g})"
        )
    if c["test"] == "sign test":
        return (
            f"{100 * c['diff']:+.1f} points (images robust in more of the {c['seeds']} seeds "
            f"for the first {c['only_a']}, for the second {c['only_b']}, sign test "
            f"p = {c['p']:.2g})"
        )
    return f"{100 * c['diff']:+.1f} points (margin {100 * c['margin']:.1f})"


def _paired_masks(a: dict, b: dict) -> list[tuple[str, str]]:
    """The two rows' outcome masks of the seeds both ran (empty when either has none).

    A seed the dead-network guard stopped made no model: its mask is right on no image.
    """
    ma, mb = _masks_by_seed(a), _masks_by_seed(b)
    out = []
    for seed in sorted(ma.keys() & mb.keys()):
        x, y = ma[seed], mb[seed]
        if x == _STOPPED and y == _STOPPED:
            continue
        x = "0" * len(y or "") if x == _STOPPED else x
        y = "0" * len(x or "") if y == _STOPPED else y
        if x and y:
            out.append((x, y))
    return out if out and all(len(x) == len(y) for x, y in out) else []


_STOPPED = "stopped"


def _masks_by_seed(row: dict) -> dict:
    stopped = {s["seed"] for s in row.get("stopped", [])}
    pairs = zip(row.get("seeds", []), row.get("masks", []), strict=False)
    return {seed: _STOPPED if seed in stopped else mask for seed, mask in pairs}


def _judge_concurrent(rows):
    a = "ADMM: prune while training adversarially"
    others = {
        "the small model trained from scratch": "small dense model from scratch",
        "the inherited-weights model": "inherited weights (L1 prune + fine-tune)",
    }
    found = {k: compare(rows, a, b) for k, b in others.items()}
    text = "; ".join(f"ADMM - {k}: {describe(c)}" for k, c in found.items())
    beaten = [k for k, c in found.items() if c["sign"] >= 0]
    if all(c["sign"] > 0 for c in found.values()):
        return "holds", f"ADMM is significantly more robust than both alternatives; {text}"
    if beaten:
        return "holds only partly", f"ADMM is at least level with {' and '.join(beaten)}; {text}"
    return "does not hold", f"both alternatives are significantly more robust; {text}"


RATIOS = (0.5, 0.7, 0.9)
CRITERIA = ("hydra", "robust_taylor", "l1", "random")


def _judge_hydra(rows):
    found = [(r, compare(rows, f"hydra {r:.0%}", f"l1 {r:.0%}")) for r in RATIOS]
    text = "; ".join(f"{r:.0%}: HYDRA - L1 = {describe(c)}" for r, c in found)
    same = compare(rows, "hydra 50%", "l1 50%, 2 fine-tune epochs")
    text += f"; 50% against L1 with as many adversarial epochs: {describe(same)}"
    high = [c["sign"] for r, c in found if r >= 0.7]
    if all(s > 0 for s in high):
        return "holds", text
    if any(s > 0 for s in high) or all(s >= 0 for s in high):
        return "holds only partly", text
    return "does not hold", text


BITS = (8, 4, 2)


def _judge_compressed(rows):
    c = compare(rows, "compressed: 50% pruned + int8", "compact: int8")
    curve = ", ".join(
        f"{b} bits {100 * robust(rows, f'compressed, {b}-bit weights'):.1f}%" for b in BITS
    )
    text = f"compressed - compact = {describe(c)}; robust by bit width: {curve}"
    return {1: "holds", 0: "holds only partly", -1: "does not hold"}[c["sign"]], text


COMPRESSIONS = (("prune 50%", "prune", 0.5), ("prune 70%", "prune", 0.7))
COMPRESSIONS += (("int8", "quant", 8), ("int4", "quant", 4))
FINETUNES = ("none", "natural", "adv")


def _judge_finetune(rows):
    ref = robust(rows, "reference: adversarial training from the start")
    better, close = 0, 0
    for label, _, _ in COMPRESSIONS:
        adv = f"{label}, fine-tune adv"
        others = [f"{label}, fine-tune {f}" for f in ("none", "natural")]
        better += all(compare(rows, adv, o)["sign"] > 0 for o in others)
        close += robust(rows, adv) >= ref - 0.05
    text = (
        f"adversarial fine-tuning is significantly more robust than both no and natural "
        f"fine-tuning for {better} of {len(COMPRESSIONS)} compressions and comes within 5 "
        f"points of the reference for {close}"
    )
    if better == len(COMPRESSIONS) and close == len(COMPRESSIONS):
        return "holds", text
    if better:
        return "holds only partly", text
    return "does not hold", text


def _judge_tickets(rows):
    c = compare(rows, "lottery ticket 80%", "random re-initialisation 80% (control)")
    popup, trained = (
        robust(rows, "edge-popup 50% of random weights"),
        robust(rows, "dense, trained"),
    )
    text = (
        f"ticket - control at 80% = {describe(c)}; edge-popup reaches "
        f"{100 * popup:.1f}% against {100 * trained:.1f}% for the trained dense model"
    )
    return {1: "holds", 0: "holds only partly", -1: "does not hold"}[c["sign"]], text


def _seed_values(row: dict, method: str, key: str) -> list:
    """``key`` of the prune method's report (report.json ``prune.METHOD``), one per seed."""
    return [m[method][key] for m in row.get("methods", []) if key in m.get(method, {})]


def _why_concurrent(rows) -> str:
    residuals = _seed_values(
        rows["ADMM: prune while training adversarially"], "admm", "residual_before_prune"
    )
    inherit = robust(rows, "inherited weights (L1 prune + fine-tune)")
    dense = robust(rows, "dense (the large model, before pruning)")
    said = ", ".join(f"{r:.3f}" for r in residuals) or "not reported"
    return (
        f"ADMM runs 2 epochs here, the paper tens; the relative residual ||W - Z|| / ||W|| "
        f"just before the hard prune was {said} (per seed; near 0 the hard prune removes what "
        f"ADMM had already switched off, far from 0 ADMM acts mostly as a fine-tune from a "
        f"perturbed start). At 50% of the channels the inherited weights keep "
        f"{100 * inherit:.1f}% against the dense model's {100 * dense:.1f}%"
    )


def _why_hydra(rows) -> str:
    losses, epochs = [], set()
    for r in RATIOS:
        row = rows[f"hydra {r:.0%}"]
        epochs |= set(_seed_values(row, "hydra", "score_epochs"))
        lasts = [x[-1] for x in _seed_values(row, "hydra", "score_loss") if x]
        if lasts:
            losses.append(f"{sum(lasts) / len(lasts):.2f} at {r:.0%}")
    said = ", ".join(losses) or "not reported"
    spent = "/".join(str(e) for e in sorted(epochs)) or "few"
    return (
        f"HYDRA learns its scores for {spent} epoch(s) here (adversarial score-learning loss of "
        f"the last score epoch {said}, mean over seeds; chance is ln 10 = 2.30); the paper "
        f"learns scores for about as long as pre-training and reports its gains mostly for "
        f"unstructured, very sparse networks"
    )


def _why_finetune(rows) -> str:
    ref = robust(rows, "reference: adversarial training from the start")
    adv = [robust(rows, f"{label}, fine-tune adv") for label, _, _ in COMPRESSIONS]
    return (
        f"one epoch of adversarial fine-tuning reaches {100 * min(adv):.1f}-{100 * max(adv):.1f}% "
        f"against {100 * ref:.1f}% for adversarial training from the start (the reference row); "
        f"the study fine-tunes longer"
    )


def claims() -> list[Claim]:
    """The five claims in the order of docs/results.md."""
    c2 = [(f"{c} {r:.0%}", _on(BASE_PGD, f"c2-{c}", ratio=r)) for r in RATIOS for c in CRITERIA]
    c2.insert(4, ("l1 50%, 2 fine-tune epochs", _on(BASE_PGD, "c2-l1", ratio=0.5, epochs=2)))
    c4 = [("reference: adversarial training from the start", BASE_PGD)]
    for label, kind, value in COMPRESSIONS:
        key = "ratio" if kind == "prune" else "bits"
        for ft in FINETUNES:
            run = _on(BASE_NATURAL, f"c4-{kind}-{ft}", **{key: value})
            c4.append((f"{label}, fine-tune {ft}", run))
    return [
        Claim(
            1,
            "Concurrent adversarial training and pruning beats the alternatives",
            "Ye et al., ICCV 2019",
            [
                ("dense (the large model, before pruning)", BASE_PGD),
                ("ADMM: prune while training adversarially", _on(BASE_PGD, "c1-admm")),
                ("small dense model from scratch", Run("c1-scratch")),
                ("inherited weights (L1 prune + fine-tune)", _on(BASE_PGD, "c1-inherit")),
            ],
            _judge_concurrent,
            "All three small models have 47,610 parameters; each gets 3 adversarial epochs "
            "after the step that makes it small (ADMM: after its hard prune, which follows its 2 "
            "ADMM epochs; inherited weights: after the L1 prune; the scratch model: 7 in all, "
            "the dense model's 4 + 3).",
            "claim1.png",
            _why_concurrent,
            seeds=SEEDS,
        ),
        Claim(
            2,
            "Robust pruning beats magnitude pruning at high sparsity",
            "Sehwag et al. (HYDRA), NeurIPS 2020",
            c2,
            _judge_hydra,
            "Every criterion gets 1 adversarial fine-tuning epoch, its learning rate warmed up "
            "over the first 20% of the steps (onecycle); HYDRA also spends 1 epoch "
            "learning its scores, so one L1 row gets 2 fine-tuning epochs: the same adversarial "
            "epochs as HYDRA. 30% was left out of the grid to fit the CPU budget.",
            "claim2.png",
            _why_hydra,
            seeds=SEEDS,
        ),
        Claim(
            3,
            "Compressed beats compact",
            '"Towards Robust Compressed Convolutional Neural Networks" (Wijayanto et al.)',
            [
                ("compressed: 50% pruned + int8", _on(BASE_PGD, "c3-compressed", bits=8)),
                ("compact: int8", Run("c3-compact")),
                *[
                    (f"compressed, {b}-bit weights", _on(BASE_PGD, "c3-compressed", bits=b))
                    for b in BITS
                ],
            ],
            _judge_compressed,
            "Same parameter count (47,610); both trained adversarially. Bit widths are of the "
            "weights; activations stay 8-bit.",
            "claim3.png",
        ),
        Claim(
            4,
            "Adversarial fine-tuning of compressed models",
            "the 2024 study of adversarial fine-tuning of compressed models",
            c4,
            _judge_finetune,
            "A naturally trained model, compressed, then fine-tuned for 1 epoch (or not); the "
            "compute column adds the naturally trained base's time.",
            "claim4.png",
            _why_finetune,
        ),
        Claim(
            5,
            "Lottery tickets and hidden subnetworks under attack",
            "Frankle and Carbin 2019; Ramanujan et al. 2020 (EPFL project's questions)",
            [
                ("dense, trained", BASE_PGD),
                ("lottery ticket 50%", Run("c5-lottery", (("ratio", 0.5),))),
                ("lottery ticket 80%", Run("c5-lottery", (("ratio", 0.8),))),
                ("random re-initialisation 80% (control)", Run("c5-lottery-reinit")),
                ("edge-popup 50% of random weights", Run("c5-edge-popup")),
            ],
            _judge_tickets,
            "Unstructured sparsity: MACs and ONNX size are those of the dense model.",
            "claim5.png",
            "two short rounds (one epoch each) are far from the paper's full training per "
            "round, and edge-popup learned its scores for 4 epochs where the paper takes 100",
            seeds=SEEDS,
        ),
    ]
