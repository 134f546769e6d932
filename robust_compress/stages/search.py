"""The ``search`` stage: prune in steps towards an objective target while a budget holds.

1. Measure the starting model on the validation split, and its robust sensitivity.
2. Each step aims at a smaller objective (geometric from the start to ``target``), chooses
   per-group ratios for it from the sensitivity curves (:mod:`allocate`), prunes the model to
   them and fine-tunes it under attack (with distillation if ``distill`` is set).
3. The step's model is measured; within budget it is accepted, otherwise the last accepted
   model comes back and the step is retried smaller (``retries`` times in all); then the
   search stops, saying so.
4. The accepted model's weight bit widths are chosen per layer from its bit sensitivity and
   handed to the following quantize stage.

Every step is checkpointed (the search state lives in ``session.progress.method_state``), so
a killed search resumes at the step and epoch it was at; with a seed it is deterministic.
"""

from __future__ import annotations

import logging

from robust_compress.pruning.size import size_of
from robust_compress.search import sensitivity as sens
from robust_compress.search.allocate import allocate_until, curves
from robust_compress.search.batchnorm import calibrator
from robust_compress.search.objective import PROXY, objective_value, proxy_value
from robust_compress.search.validation import validator_for
from robust_compress.stages.contract import StageResult
from robust_compress.training.fit import fit

log = logging.getLogger(__name__)
KEY = "search"


def run(session, stage, label: str) -> StageResult:
    """Run (or resume) the search; leave the accepted model in ``session.model``."""
    from robust_compress.errors import UserError

    if session.quant_config is not None:
        raise UserError(f"stage {label}: search before quantizing (it prunes the float model).")
    session.snapshot_dense()
    measure = validator_for(session, stage)
    state = session.progress.method_state.get(KEY) or _begin(session, stage, measure)
    while state["level"] <= stage.steps and state["stopped"] is None:
        if state["phase"] == "prune":
            _prune_step(session, stage, state)
        adversary = session.adversary_for(session.stage_index, stage.adversary)
        fit(session, label, stage.finetune_epochs, stage.optimizer, stage.lr_schedule, adversary)
        _judge(session, stage, state, measure)
    return StageResult(KEY, _finish(session, stage, state, measure))


def _save(session, state: dict) -> None:
    session.progress.method_state = {KEY: state}
    session.epoch = 0
    session.checkpoint()


def _begin(session, stage, measure) -> dict:
    from robust_compress.adapters.torch_pruning.pruner import pruned_state

    model, example = session.model.eval(), session.example()
    calibrate = calibrator(session, stage.bn_batches, stage.val_attack)
    report = sens.measure_sensitivity(
        model, example, measure, stage, session.recipe.seed, calibrate
    )
    report["attack"] = measure.describe()
    start = {**report["start"], **_objective(session, stage)}
    groups = sens.prunable_groups(model, example, stage.ignore, session.recipe.seed)
    state = {
        "start": start,
        "attack": measure.describe(),
        "sensitivity": report,
        "channels": {g["name"]: g["channels"] for g in groups},
        "step": 1,
        "level": 1,
        "aim": None,
        "retries_left": stage.retries,
        "phase": "prune",
        "ratios": {},
        "accepted": {"step": 0, "ratios": {}, "fraction": 1.0, "state": pruned_state(model)},
        "candidates": [{"step": 0, "accepted": True, **start, "ratios": {}}],
        "stopped": None,
    }
    log.info(
        "search starts at robust %.3f (%s), %s %.4g",
        start["robust"],
        state["attack"],
        stage.objective,
        start["objective"],
    )
    _save(session, state)
    return state


def _objective(session, stage) -> dict:
    model, example = session.float_reference(), session.example()
    return {
        "objective": objective_value(model, example, stage.objective, stage.latency_batch),
        **size_of(model, example),
    }


def _prune_step(session, stage, state: dict) -> None:
    """Choose the step's cumulative ratios and prune ``session.model`` to them."""
    example, seed = session.example(), session.recipe.seed
    start = state["start"]
    proxy = PROXY[stage.objective]
    fraction = state["aim"] or _level_aim(stage, state["level"])
    group_curves = curves(state["sensitivity"]["prune"], start[proxy], proxy)
    now = {g["name"]: g["channels"] for g in sens.prunable_groups(session.model, example, (), seed)}
    relative = {}

    def real(ratios: dict[str, float]) -> float:
        relative.clear()
        relative.update(_relative(state["channels"], now, ratios))
        twin = sens.pruned_copy(
            session.model, example, relative, stage.importance, stage.ignore, seed
        )
        return proxy_value(twin, example, stage.objective)

    ratios, value = allocate_until(
        group_curves,
        state["accepted"]["ratios"],
        start[proxy],
        fraction * start[proxy],
        stage.max_layer_ratio,
        real,
    )
    pruner = sens.pruner_for(stage.importance, relative, stage.ignore, seed)
    pruner.prepare(session.model, example)
    pruner.step()
    session.results["prune"] = pruner.report()
    log.info(
        "search step %d: %s %.4g (%.0f%% of the start)",
        state["step"],
        proxy,
        value,
        100 * value / start[proxy],
    )
    state.update(phase="finetune", ratios=ratios, aim=fraction, fraction=value / start[proxy])
    _save(session, state)


def _level_aim(stage, level: int) -> float:
    """The objective fraction step ``level`` of the schedule aims at."""
    return stage.target ** (level / stage.steps)


def _relative(start: dict[str, int], now: dict[str, int], ratios: dict[str, float]) -> dict:
    """Ratios of the start's channels (``start``), as ratios of the current ones (``now``)."""
    relative = {}
    for name, ratio in ratios.items():
        keep = round(start[name] * (1 - ratio))
        if name in now and now[name] > keep >= 1:  # the epsilon: Torch-Pruning floors the kept
            relative[name] = 1 - (keep + 1e-6) / now[name]
    return relative


def _judge(session, stage, state: dict, measure) -> None:
    """Measure the step's model; accept it, or bring back the last accepted model.

    A step over budget is retried halfway (geometrically) between the last accepted figure and
    its aim while ``retries`` last; then the search stops with the last accepted model.
    """
    figures = {**measure(session.model), **_objective(session, stage)}
    drop = 100 * (state["start"]["robust"] - figures["robust"])
    within = drop <= stage.max_robust_drop
    row = {
        "step": state["step"],
        "accepted": within,
        **figures,
        "drop": drop,
        "aim": state["aim"],
        "ratios": dict(state["ratios"]),
    }
    state["candidates"].append(row)
    if within:
        _accept(session, stage, state)
    else:
        _reject(session, state, drop, stage.max_robust_drop)
    state.update(step=state["step"] + 1, phase="prune")
    _save(session, state)


def _accept(session, stage, state: dict) -> None:
    from robust_compress.adapters.torch_pruning.pruner import pruned_state

    state["accepted"] = {
        "step": state["step"],
        "ratios": dict(state["ratios"]),
        "fraction": state["fraction"],
        "state": pruned_state(session.model),
    }
    if state["aim"] <= _level_aim(stage, state["level"]) * 1.001:
        state["level"] += 1  # this level's aim is reached; a retry's aim was short of it
    state["aim"] = None


def _reject(session, state: dict, drop: float, budget: float) -> None:
    session.model = session.rebuild(state["accepted"]["state"])
    what = f"step {state['step']} lost {drop:.1f} points (budget {budget:g})"
    if state["retries_left"] > 0:
        state["retries_left"] -= 1
        state["aim"] = (state["accepted"]["fraction"] * state["aim"]) ** 0.5
        log.info("search: %s; retrying at %.0f%% of the start", what, 100 * state["aim"])
        return
    state["stopped"] = f"{what}; kept step {state['accepted']['step']}, the last within budget"
    log.warning("search: %s", state["stopped"])


def _finish(session, stage, state: dict, measure) -> dict:
    """The report section; the accepted model's per-layer bits for the quantize stage."""
    accepted = state["accepted"]
    bits_rows, layer_bits, bits_robust = [], {}, None
    if stage.bits:
        base = next(
            c["robust"]
            for c in state["candidates"]
            if c["step"] == accepted["step"] and c["accepted"]
        )
        model = session.model.eval()
        bits_rows = sens.bits_sensitivity(model, measure, base, list(stage.bits))
        floor = state["start"]["robust"] - stage.max_robust_drop / 100
        layer_bits, bits_robust = sens.fit_bits(
            model, measure, choose_bits(bits_rows, stage.max_bits_drop), bits_rows, floor
        )
    reached = state["stopped"] is None
    result = {
        "objective": stage.objective,
        "budget": {"max_robust_drop": stage.max_robust_drop, "attack": state["attack"]},
        "start": state["start"],
        "steps": state["candidates"],
        "accepted_step": accepted["step"],
        "layer_ratios": accepted["ratios"],
        "layer_bits": layer_bits,
        "bits_robust": bits_robust,
        "bits_sensitivity": bits_rows,
        "sensitivity": state["sensitivity"],
        "stopped": state["stopped"] or _ended(stage, state),
        "reached_target": reached,
        "finetune_epochs_used": (len(state["candidates"]) - 1) * stage.finetune_epochs,
    }
    from robust_compress.search.plots import write_search_plots

    write_search_plots(session, result)
    return result


def _ended(stage, state: dict) -> str:
    """How a search that never ran out of budget ended: the aim and the figure reached."""
    proxy = PROXY[stage.objective]
    retried = sum(not c["accepted"] for c in state["candidates"])
    return (
        f"ran to the last aim ({stage.target:g} of the start's {proxy}) and reached "
        f"{state['accepted']['fraction']:.3f}; {retried} step(s) over budget were retried smaller"
    )


def choose_bits(rows: list[dict], max_drop: float) -> dict[str, int]:
    """Per layer, the fewest bits reached from 8 down while each drop stays within ``max_drop``.

    A layer whose widest measured width already costs more than ``max_drop`` keeps 8 bits.
    """
    by_layer: dict[str, list[dict]] = {}
    for row in rows:
        by_layer.setdefault(row["layer"], []).append(row)
    chosen = {}
    for layer, layer_rows in by_layer.items():
        chosen[layer] = 8
        for row in sorted(layer_rows, key=lambda r: -r["bits"]):
            if row["drop"] > max_drop:
                break
            chosen[layer] = row["bits"]
    return chosen
