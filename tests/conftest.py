import pytest
import torch

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


@pytest.fixture(scope="session")
def synthetic_train():
    from robust_compress.data.datasets import load_dataset

    return load_dataset("synthetic", "train")


@pytest.fixture(scope="session")
def synthetic_test():
    from robust_compress.data.datasets import load_dataset

    return load_dataset("synthetic", "test")


@pytest.fixture(scope="session")
def trained_small(synthetic_train):
    """cnn_small trained naturally for 2 epochs on synthetic data (read-only: copy before use)."""
    from robust_compress.models.specs import build_model
    from robust_compress.training.loop import TrainConfig, train

    model = build_model("builtin:cnn_small")
    train(model, synthetic_train, TrainConfig(epochs=2, batch_size=64, lr=0.05))
    return model.eval()
