import gzip
import struct

import pytest
import torch

from robust_compress.data import sources as data_mod
from robust_compress.data.datasets import load_dataset
from robust_compress.errors import DataNotFoundError, UserError


def _write_idx(path, array: torch.Tensor):
    header = struct.pack(">BBBB", 0, 0, 0x08, array.dim()) + struct.pack(
        f">{array.dim()}I", *array.shape
    )
    with gzip.open(path, "wb") as f:
        f.write(header + array.to(torch.uint8).numpy().tobytes())


@pytest.fixture
def idx_dir(tmp_path):
    gen = torch.Generator().manual_seed(0)
    for split, n in (("train", 12), ("t10k", 5)):
        _write_idx(
            tmp_path / f"{split}-images-idx3-ubyte.gz",
            torch.randint(0, 256, (n, 28, 28), generator=gen),
        )
        _write_idx(
            tmp_path / f"{split}-labels-idx1-ubyte.gz", torch.randint(0, 10, (n,), generator=gen)
        )
    return tmp_path


def test_reads_idx_from_given_folder(idx_dir):
    ds = load_dataset("fashion-mnist", "train", root=idx_dir)
    assert ds.x.shape == (12, 1, 28, 28) and ds.x.dtype == torch.float32
    assert 0.0 <= ds.x.min() and ds.x.max() <= 1.0 and ds.x.max() > 0.5
    assert ds.y.dtype == torch.long and len(ds.y) == 12
    assert len(load_dataset("fashion-mnist", "test", root=idx_dir)) == 5


def test_given_folder_wins_over_debian(idx_dir):
    # 12 examples proves the user folder was read, not Debian's 60,000.
    assert len(load_dataset("fashion-mnist", "train", root=idx_dir)) == 12


def test_torchvision_layout(idx_dir, tmp_path_factory):
    root = tmp_path_factory.mktemp("tv")
    raw = root / "FashionMNIST" / "raw"
    raw.mkdir(parents=True)
    for f in idx_dir.iterdir():
        (raw / f.name).write_bytes(f.read_bytes())
    assert len(load_dataset("fashion-mnist", "test", root=root)) == 5


def test_missing_data_lists_three_ways(tmp_path, monkeypatch):
    monkeypatch.setattr(data_mod, "DEBIAN_DIR", tmp_path / "nope")
    monkeypatch.setattr(data_mod, "CACHE_DIR", tmp_path / "cache")
    monkeypatch.delenv(data_mod.ENV_VAR, raising=False)
    with pytest.raises(DataNotFoundError) as err:
        load_dataset("fashion-mnist", "train", root=tmp_path / "empty")
    msg = str(err.value)
    assert "apt-get install -y dataset-fashion-mnist" in msg
    assert "RC_FASHION_MNIST" in msg and "download" in msg


def test_truncated_idx_is_an_error(idx_dir):
    path = idx_dir / "t10k-images-idx3-ubyte.gz"
    raw = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(raw[:-10]))
    with pytest.raises(UserError, match="truncated"):
        load_dataset("fashion-mnist", "test", root=idx_dir)


def test_synthetic_is_deterministic_and_subset():
    a = load_dataset("synthetic", "train")
    b = load_dataset("synthetic", "train", subset=10)
    assert torch.equal(a.x[:10], b.x) and len(b) == 10
    assert a.x.shape[1:] == (1, 28, 28) and set(a.y.tolist()) == set(range(10))


def test_unknown_dataset_and_split():
    with pytest.raises(UserError, match="fashion-mnist"):
        load_dataset("fashion_mnist")
    with pytest.raises(UserError, match="split"):
        load_dataset("synthetic", "valid")
    with pytest.raises(UserError, match="positive"):
        load_dataset("synthetic", subset=0)


def test_batches_cover_everything_once(synthetic_train):
    seen = torch.cat([y for _, y in synthetic_train.batches(100, shuffle=True, seed=3)])
    assert len(seen) == len(synthetic_train)
    assert sorted(seen.tolist()) == sorted(synthetic_train.y.tolist())


@pytest.mark.skipif(not data_mod.DEBIAN_DIR.is_dir(), reason="Debian's Fashion-MNIST missing")
def test_real_fashion_mnist_shapes():
    ds = load_dataset("fashion-mnist", "test")
    assert ds.x.shape == (10000, 1, 28, 28) and ds.num_classes == 10
    assert torch.bincount(ds.y).tolist() == [1000] * 10


def test_empty_dataset_is_a_clear_error(tmp_path):
    for split in ("train", "t10k"):
        _write_idx(tmp_path / f"{split}-images-idx3-ubyte.gz", torch.zeros(0, 28, 28))
        _write_idx(tmp_path / f"{split}-labels-idx1-ubyte.gz", torch.zeros(0))
    with pytest.raises(UserError, match="is empty"):
        load_dataset("fashion-mnist", "test", root=tmp_path)
