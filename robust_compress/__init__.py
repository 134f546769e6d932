"""robust-compress: small and adversarially robust PyTorch models, exported to ONNX Runtime.

Importing this package is cheap: it loads neither torch nor any adapter's library. Import
what you need from its modules, e.g. ``from robust_compress.models.specs import build_model``.
"""

__version__ = "0.1.0"
