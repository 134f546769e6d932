"""The ``quantize`` stage: the backend's fake-quant model, calibration, then QAT under attack."""

from __future__ import annotations

import logging

from robust_compress.quantization.registry import build_quantizer
from robust_compress.training.fit import fit

log = logging.getLogger(__name__)


def make_quantized(session, float_model, options: dict, calib=None):
    """Return a calibrated fake-quant copy of ``float_model`` on the session's device.

    Args:
        session: The session (its training data calibrates when ``calib`` is None).
        float_model: The float model.
        options: The backend's options (:meth:`QuantizeStage.quantizer_options`).
        calib: Calibration batches (default: the training data's).
    """
    if calib is None:
        calib = (x for x, _ in session.train_data.batches(session.recipe.data.batch_size))
    return session.place(build_quantizer(options).prepare(float_model, calib))


def quantize_model(session, stage, calib=None):
    """Switch ``session.model`` to its fake-quant twin; keep the float model beside it."""
    if session.quant_config is not None:
        return session.model
    options = _with_searched_bits(session, stage.quantizer_options())
    float_model = session.model.eval()
    session.model = make_quantized(session, float_model, options, calib)
    session.float_model = float_model
    session.quant_config = options
    return session.model


def _with_searched_bits(session, options: dict) -> dict:
    """The options, with a search stage's per-layer bits when the stage sets none itself."""
    searched = (session.results.get("search") or {}).get("layer_bits")
    if "layer_bits" in options and not options["layer_bits"] and searched:
        log.info("per-layer weight bits from the search: %s", searched)
        return {**options, "layer_bits": dict(searched)}
    return options


def run(session, stage, label: str) -> None:
    """Quantize, then fine-tune under attack for ``qat_epochs`` epochs."""
    session.snapshot_dense()
    quantize_model(session, stage)
    if stage.qat_epochs:
        adversary = session.adversary_for(session.stage_index)
        fit(session, label, stage.qat_epochs, stage.optimizer, "cosine", adversary)
