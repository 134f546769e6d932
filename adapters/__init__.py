"""Adapters: one package per foreign library (art, torch_pruning, brevitas, onnxruntime).

Each module imports its library only when it is imported itself, so ``import
robust_compress`` stays light. Import the adapter you need, e.g.
``from robust_compress.adapters.art.adversary import ArtAdversary``.
"""
