"""The ``quantize`` stage: Brevitas fake-quant, calibration, then QAT under attack."""

from __future__ import annotations

import logging

from robust_compress.protocols import Quantizer
from robust_compress.training.fit import fit

log = logging.getLogger(__name__)


def quantizer_config(stage) -> dict:
    """The quantizer's options as plain data (kept in checkpoints to rebuild the model)."""
    return {
        "weight_bits": stage.weight_bits,
        "act_bits": stage.act_bits,
        "per_channel": stage.per_channel,
        "calib_batches": stage.calib_batches,
        "bias_correction": stage.bias_correction,
        "vnni_only_full_range": stage.vnni_only_full_range,
        "pack_low_bits": stage.pack_low_bits,
    }


def make_quantizer(config: dict) -> Quantizer:
    """The quantizer a stage's plain-data config describes (see :func:`quantizer_config`)."""
    from robust_compress.adapters.brevitas.quantizer import BrevitasQuantizer

    return BrevitasQuantizer(**config)


def make_quantized(session, float_model, config: dict, calib=None):
    """Return a calibrated fake-quant copy of ``float_model`` (``float_model`` untouched)."""
    if calib is None:
        calib = (x for x, _ in session.train_data.batches(session.recipe.data.batch_size))
    return make_quantizer(config).prepare(float_model, calib)


def quantize_model(session, stage, calib=None):
    """Switch ``session.model`` to its fake-quant twin; keep the float model beside it."""
    if session.quant_config is not None:
        return session.model
    config = quantizer_config(stage)
    float_model = session.model.eval()
    session.model = make_quantized(session, float_model, config, calib)
    session.float_model = float_model
    session.quant_config = config
    return session.model


def run(session, stage, label: str) -> None:
    """Quantize, then fine-tune under attack for ``qat_epochs`` epochs."""
    session.snapshot_dense()
    quantize_model(session, stage)
    if stage.qat_epochs:
        adversary = session.adversary_for(session.stage_index, stage.adversary)
        fit(session, label, stage.qat_epochs, stage.optimizer, "cosine", adversary)
