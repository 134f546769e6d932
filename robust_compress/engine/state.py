"""Save and restore a :class:`~robust_compress.engine.session.Session` (checkpoints for --resume).

A checkpoint is plain data (tensors, numbers, strings, lists, dicts), written atomically and
recorded with its SHA-256 in the run folder's manifest; it is loaded with
``torch.load(..., weights_only=True)`` only after its checksum matches.
"""

from __future__ import annotations

import io
import logging
from pathlib import Path

import torch

from robust_compress.errors import CheckpointError, UserError
from robust_compress.stages.contract import Progress, from_old_extra

log = logging.getLogger(__name__)
FORMAT = "robust-compress-run/1"
LAST = "checkpoints/last.pt"


def _payload(session, optimizer, seconds: float) -> dict:
    from robust_compress.adapters.torch_pruning.pruner import pruned_state

    quant = None
    if session.quant_config is not None:
        quant = {
            "config": dict(session.quant_config),
            "state_dict": {k: v.detach().clone() for k, v in session.model.state_dict().items()},
        }
    return {
        "format": FORMAT,
        "recipe": session.recipe.name,
        "stage_index": session.stage_index,
        "epoch": session.epoch,
        "model": pruned_state(session.float_reference()),
        "quant": quant,
        "optimizer": optimizer.state_dict() if optimizer is not None else None,
        "dense": session.dense_state,
        "records": session.records,
        "progress": session.progress.to_plain(),
        "results": session.results,
        "generators": _generator_states(session),
        "torch_rng": torch.get_rng_state(),
    }


def _generator_states(session) -> dict:
    states = {}
    for index, adversary in session._adversaries.items():
        gen = getattr(adversary, "generator", None)
        if isinstance(gen, torch.Generator):
            states[index] = gen.get_state()
    return states


def save(session, optimizer=None, seconds: float = 0.0, stage_done: bool = False) -> None:
    """Write the session's state to ``checkpoints/last.pt``, and a copy when a stage is done."""
    buffer = io.BytesIO()
    torch.save(_payload(session, optimizer, seconds), buffer)
    data = buffer.getvalue()
    session.out.write_bytes(LAST, data)
    if stage_done:
        session.out.write_bytes(f"checkpoints/stage-{session.stage_index:02d}.pt", data)


def load(session, path) -> dict:
    """Verify and load a checkpoint of ``session``'s run folder."""
    session.out.verify(path)
    try:
        payload = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # noqa: BLE001 - torch raises many types for bad files
        raise CheckpointError(f"{path} cannot be loaded safely: {exc}") from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a robust-compress run checkpoint.")
    if payload["recipe"] != session.recipe.name:
        raise UserError(
            f"{path} belongs to recipe {payload['recipe']!r}, not {session.recipe.name!r}; "
            "resume with the recipe that started the run, or --force to start over."
        )
    return payload


def latest_checkpoint(folder: Path) -> Path | None:
    """``checkpoints/last.pt``, or the newest per-stage copy when a user deleted it; else None."""
    last = folder / LAST
    if last.exists():
        return last
    stages = sorted((folder / "checkpoints").glob("stage-*.pt"))
    if stages:
        log.info("%s is absent: resuming from %s", last, stages[-1].name)
    return stages[-1] if stages else None


def restore_latest(session) -> bool:
    """Restore the last checkpoint into ``session``; False when there is none yet."""
    path = latest_checkpoint(session.out.path)
    if path is None:
        log.info("no checkpoint in %s: starting from the first stage", session.out.path)
        return False
    payload = load(session, path)
    _restore_model(session, payload)
    session.stage_index, session.epoch = payload["stage_index"], payload["epoch"]
    session.dense_state, session.records = payload["dense"], list(payload["records"])
    if "extra" in payload:  # written before the typed stage contract
        session.progress, session.results = from_old_extra(payload["extra"])
    else:
        session.progress = Progress.from_plain(payload["progress"])
        session.results = dict(payload["results"])
    session.progress.optimizer_state = payload["optimizer"]
    torch.set_rng_state(payload["torch_rng"])
    _restore_generators(session, payload["generators"])
    log.info("resumed at stage %d, epoch %d", session.stage_index, session.epoch)
    return True


def _restore_model(session, payload: dict) -> None:
    from robust_compress.adapters.torch_pruning.pruner import restore_pruned
    from robust_compress.stages.quantize import make_quantized

    float_model = restore_pruned(session._fresh_model(), payload["model"])
    session.model, session.float_model, session.quant_config = float_model, None, None
    quant = payload["quant"]
    if quant is not None:
        _refuse_full_range_int8(quant["config"])
        qmodel = make_quantized(session, float_model.eval(), quant["config"])
        qmodel.load_state_dict(quant["state_dict"])
        session.model, session.float_model = qmodel, float_model
        session.quant_config = quant["config"]


def _refuse_full_range_int8(config: dict) -> None:
    """Refuse an 8-bit model quantized before int8 weights moved to the 7-bit grid.

    Configs of older runs lack the keys added since; with fewer weight bits the grid did not
    change, and the missing keys take their defaults when the quantizer is rebuilt.
    """
    if "vnni_only_full_range" not in config and config.get("weight_bits", 8) == 8:
        raise CheckpointError(
            "this run's checkpoint holds a model quantized by an older robust-compress, with "
            "full-range int8 weights that give other answers on CPUs without VNNI; it cannot "
            "be resumed or audited as it was. Rerun the recipe (robust-compress run RECIPE "
            "--out NEW_FOLDER) to quantize on the safe 7-bit grid."
        )


def _restore_generators(session, generator_states: dict) -> None:
    """Rebuild the adversaries of stages already begun and set their generators' state."""
    for index, state in generator_states.items():
        adversary = session.adversary_for(int(index))
        gen = getattr(adversary, "generator", None)
        if isinstance(gen, torch.Generator):
            gen.set_state(state)
