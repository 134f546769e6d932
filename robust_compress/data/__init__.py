"""Datasets by name (Fashion-MNIST, synthetic, plugins') as ``TensorData``."""
