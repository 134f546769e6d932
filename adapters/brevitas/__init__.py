"""Brevitas adapter: fake-quant models, calibration, QAT and integer ONNX export."""
