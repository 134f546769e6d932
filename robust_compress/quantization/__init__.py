"""Quantization: the quantize stage's config and the quantizer backends (Brevitas first)."""
