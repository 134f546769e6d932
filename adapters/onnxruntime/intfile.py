"""The last steps of an integer ONNX file: short names, 4-bit storage, the saturation check.

Part of the ONNX Runtime adapter. The Brevitas adapter writes a QCDQ file as a draft and hands
it to :func:`finish` before moving it into place.
"""

from __future__ import annotations

import logging
from pathlib import Path

from robust_compress.adapters.onnxruntime import lowbit as ort_lowbit
from robust_compress.adapters.onnxruntime import saturation as ort_saturation
from robust_compress.errors import UserError

log = logging.getLogger(__name__)


def finish(draft: Path, path: Path, pack_low_bits: bool, vnni_only_full_range: bool) -> dict:
    """Shorten the value names of ``draft``, pack its low-bit weights, check the bound.

    Args:
        draft: The file as the exporter wrote it; rewritten in place.
        path: Where the file will go (named in messages).
        pack_low_bits: Store weights that fit 4 bits as INT4.
        vnni_only_full_range: Allow kernels that can saturate without VNNI (with a warning).

    Returns:
        ``{"weight_storage", "kernels", "saturation_safe", "bytes_int8_container"}``.

    Raises:
        UserError: A kernel can saturate without VNNI and ``vnni_only_full_range`` is off.
    """
    ort_lowbit.compact_value_names(draft)
    container_bytes = draft.stat().st_size
    storage = ort_lowbit.pack_low_bit_weights(draft) if pack_low_bits else []
    kernels = ort_saturation.saturation_report(draft)
    refuse_saturation(kernels, path, vnni_only_full_range)
    return {
        "weight_storage": ort_saturation.as_dicts(storage),
        "kernels": ort_saturation.as_dicts(kernels),
        "saturation_safe": not ort_saturation.unsafe_kernels(kernels),
        "bytes_int8_container": container_bytes,
    }


def refuse_saturation(kernels: list, path: Path, vnni_only_full_range: bool) -> None:
    """Raise unless every kernel is within the bound; only warn for a VNNI-only file.

    Raises:
        UserError: A kernel can saturate without VNNI and ``vnni_only_full_range`` is off.
    """
    unsafe = ort_saturation.describe_unsafe(kernels)
    if not unsafe:
        return
    if vnni_only_full_range:
        log.warning(
            "%s uses full-range int8 weights (vnni_only_full_range): correct on VNNI and ARM "
            "CPUs only; x86 CPUs without VNNI saturate in %s",
            path,
            unsafe,
        )
        return
    raise UserError(
        f"refusing to write {path}: its integer kernels can overflow 16-bit sums on x86 "
        f"CPUs without VNNI (AVX2, AVX-512 without VNNI), so the file would answer "
        f"differently there: {unsafe}. Keep weights within |w| <= "
        f"{ort_saturation.SAFE_WEIGHT_MAX} (weight_bits 8 does so by default), or set "
        "vnni_only_full_range=True if the file only ever runs on VNNI or ARM CPUs (or in "
        "ONNX Runtime sessions with the option session.x64quantprecision=1)."
    )
