"""Data for the benchmarks: a slice of Fashion-MNIST, or the synthetic set when it is missing."""

from __future__ import annotations

from robust_compress.data.datasets import TensorData, load_dataset
from robust_compress.errors import DataNotFoundError


def train_and_test(
    train_images: int, test_images: int = 1000
) -> tuple[TensorData, TensorData, str]:
    """The first ``train_images`` / ``test_images`` of Fashion-MNIST and a note saying so."""
    try:
        train_set = load_dataset("fashion-mnist", "train", subset=train_images)
        test_set = load_dataset("fashion-mnist", "test", subset=test_images)
    except DataNotFoundError:
        synthetic = load_dataset("synthetic", "train"), load_dataset("synthetic", "test")
        return (*synthetic, "synthetic data (Fashion-MNIST not found)")
    note = f"Fashion-MNIST ({train_images:,} train images, first {test_images:,} test images)"
    return train_set, test_set, note
