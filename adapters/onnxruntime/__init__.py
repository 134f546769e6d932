"""ONNX Runtime adapter: export, inference, latency, integer-file checks (onnx, onnxruntime)."""
