"""Scale-out with DistributedDataParallel: sharding, helpers, and a real 2-process torchrun run."""

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp
from torch import nn

from robust_compress.data.datasets import TensorData
from robust_compress.errors import RunError
from robust_compress.training import distributed


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _indexed(n: int) -> TensorData:
    """Data whose every image holds its own index, so batches can be traced back."""
    x = torch.arange(n, dtype=torch.float32).view(n, 1, 1, 1)
    return TensorData(x, torch.arange(n) % 3, 3)


@pytest.mark.parametrize(("n", "world", "bs"), [(512, 2, 64), (10, 3, 4), (7, 2, 3), (2, 3, 1)])
def test_shards_cover_every_example_once_per_epoch(n, world, bs):
    data = _indexed(n)
    full = [int(v) for x, _ in data.batches(bs, True, seed=5) for v in x.flatten()]
    shards = []
    for rank in range(world):
        batches = list(data.batches(bs, True, seed=5, rank=rank, world=world))
        assert len(batches) == data.num_batches(bs, world)
        shards.append([int(v) for x, _ in batches for v in x.flatten()])
    sizes = [
        [len(x) for x, _ in data.batches(bs, True, 5, rank=r, world=world)] for r in range(world)
    ]
    assert all(s == sizes[0] for s in sizes)  # same batches, same sizes: no rank waits forever
    seen = [i for shard in shards for i in shard]
    assert sorted(set(seen)) == list(range(n))  # every example, on some rank
    assert len(seen) == -(-n // world) * world  # padded by wrapping, at most world - 1 repeats
    if n % world == 0:
        assert sorted(seen) == list(range(n))  # exactly once
    # the same permutation on every rank, each taking its strided share
    interleaved = [shards[r][i] for i in range(len(shards[0])) for r in range(world)]
    assert interleaved[:n] == full


def test_unsharded_batches_are_unchanged():
    data = _indexed(9)
    plain = [x.flatten().tolist() for x, _ in data.batches(4, True, seed=1)]
    same = [x.flatten().tolist() for x, _ in data.batches(4, True, seed=1, rank=0, world=1)]
    assert plain == same and data.num_batches(4) == 3 == data.num_batches(4, 1)


def test_helpers_are_no_ops_in_one_process():
    model = nn.Linear(3, 2)
    assert not distributed.is_distributed() and distributed.is_main()
    assert distributed.rank() == 0 and distributed.world_size() == 1
    assert distributed.all_gather({"a": 1}) == [{"a": 1}]
    assert distributed.broadcast(7) == 7 and distributed.on_main(lambda: 3) == 3
    assert distributed.mean(2.5) == 2.5
    assert distributed.all_finite(torch.tensor(1.0))
    assert not distributed.all_finite(torch.tensor(float("nan")))
    assert distributed.wrap(model) is model
    assert distributed.per_rank_batch(128) == 128
    distributed.check_same_shapes(model, "test")
    distributed.barrier()
    distributed.sync_buffers(nn.BatchNorm1d(3))
    assert distributed.init_from_env() is False  # WORLD_SIZE unset: nothing to join


def _worker(rank: int, world: int, port: int, out: str) -> None:
    os.environ.update(
        {"RANK": str(rank), "WORLD_SIZE": str(world), "LOCAL_RANK": str(rank)}
        | {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RC_DIST_BACKEND": "gloo"}
    )
    torch.set_num_threads(1)
    assert distributed.init_from_env()
    try:
        result = _collective_checks(rank, world)
        result |= _ddp_checks(rank, world)
        torch.save(result, Path(out) / f"rank{rank}.pt")
    finally:
        distributed.shutdown()


def _collective_checks(rank: int, world: int) -> dict:
    bn = nn.BatchNorm1d(4)
    bn.running_mean.fill_(float(rank + 1))
    distributed.sync_buffers(bn)
    with pytest.raises(RunError, match="rank 1's model differs"):
        distributed.check_same_shapes(nn.Linear(3, 4 + rank), "test")
    distributed.check_same_shapes(nn.Linear(3, 4), "test")
    return {
        "rank": distributed.rank(),
        "world": distributed.world_size(),
        "gathered": distributed.all_gather(rank * 10),
        "broadcast": distributed.broadcast("from 0" if rank == 0 else None),
        "on_main": distributed.on_main(lambda: distributed.rank() + 100),
        "mean": distributed.mean(float(rank)),
        "finite": distributed.all_finite(torch.tensor(float("nan") if rank else 1.0)),
        "bn_mean": bn.running_mean.clone(),
    }


def _ddp_checks(rank: int, world: int) -> dict:
    """One epoch of DDP training (PGD, then TRADES) on each rank's shard."""
    from robust_compress.attacks.adversaries import TorchPGD
    from robust_compress.data.datasets import load_dataset
    from robust_compress.models.specs import build_model
    from robust_compress.training.loop import EpochPlan, train_epoch
    from robust_compress.training.trades import Trades

    data = load_dataset("synthetic", "train", subset=64)
    torch.manual_seed(rank)  # different initial weights: the wrapper must sync them
    model = build_model("builtin:cnn_tiny")
    net = distributed.wrap(model)
    opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    losses = []
    for adversary in (TorchPGD(0.1, steps=2), Trades(0.1, 0.05, steps=2, beta=1.0)):
        losses.append(
            train_epoch(
                model, data, opt,
                EpochPlan(16, 3, lambda b: 0.05, shard=(rank, world), forward_model=net),
                adversary,
            )
        )  # fmt: skip
    distributed.sync_buffers(model)
    return {"state": {k: v.clone() for k, v in model.state_dict().items()}, "losses": losses}


def test_two_process_gloo_helpers_and_ddp_epoch(tmp_path):
    mp.spawn(_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for r, res in enumerate((r0, r1)):
        assert res["rank"] == r and res["world"] == 2
        assert res["gathered"] == [0, 10] and res["broadcast"] == "from 0"
        assert res["on_main"] == 100 and res["mean"] == 0.5
        assert res["finite"] is False  # rank 1's NaN stops both ranks
        assert torch.equal(res["bn_mean"], torch.ones(4))  # rank 0's statistics everywhere
    assert r0["losses"] != r1["losses"]  # each rank trained on its own shard...
    for key, value in r0["state"].items():  # ...yet the weights are identical on both
        assert torch.equal(value, r1["state"][key]), key


RECIPE = """
name: dist
seed: 0
model: {spec: builtin:cnn_small}
data: {name: synthetic, batch_size: 64, test_subset: 256}
threat: {norm: linf, eps: 0.1}
stages:
  - train: {method: pgd, epochs: 2, adversary: {attack: pgd, steps: 2},
            optimizer: {lr: 0.05}}
  - prune: {importance: l1, ratio: 0.5, finetune_epochs: 1, adversary: {attack: fgsm_rs},
            optimizer: {lr: 0.02}}
  - export: {}
"""


def _run(tmp_path: Path, out: Path, nproc: int, *more: str) -> subprocess.CompletedProcess:
    recipe = tmp_path / "recipe.yaml"
    recipe.write_text(textwrap.dedent(RECIPE))
    args = ["run", str(recipe), "--out", str(out), "--quiet", *more]
    if nproc == 1:
        cmd = [sys.executable, "-m", "robust_compress", *args]
    else:
        torchrun = str(Path(sys.executable).parent / "torchrun")
        cmd = [torchrun, f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1"]
        cmd += [f"--master_port={_free_port()}", "-m", "robust_compress", *args]
    env = {**os.environ, "RC_DIST_BACKEND": "gloo", "OMP_NUM_THREADS": "1"}
    return subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600, cwd=tmp_path)


def _rewind_to_stage_one(out: Path) -> None:
    """Make ``last.pt`` the checkpoint taken after stage 0, as if the run stopped there."""
    from robust_compress.engine.runfolder import sha256

    last = out / "checkpoints" / "last.pt"
    last.write_bytes((out / "checkpoints" / "stage-01.pt").read_bytes())
    manifest = json.loads((out / "manifest.json").read_text())
    manifest["files"]["checkpoints/last.pt"] = sha256(last)
    (out / "manifest.json").write_text(json.dumps(manifest))


def _shapes(out: Path) -> dict:
    ckpt = torch.load(out / "checkpoints" / "last.pt", map_location="cpu", weights_only=True)
    return {k: tuple(v.shape) for k, v in ckpt["model"]["state_dict"].items()}


@pytest.mark.slow  # two torchrun launches, over a minute on 2 cores: `make test-long`
def test_torchrun_two_processes_match_one(tmp_path):
    one, two = tmp_path / "one", tmp_path / "two"
    for out, nproc in ((one, 1), (two, 2)):
        done = _run(tmp_path, out, nproc)
        assert done.returncode == 0, done.stderr[-3000:]
    shapes = _shapes(one)
    assert shapes == _shapes(two)
    dense = torch.load(one / "checkpoints" / "stage-01.pt", weights_only=True)["model"]
    assert shapes != {k: tuple(v.shape) for k, v in dense["state_dict"].items()}  # pruned
    r1, r2 = (json.loads((o / "report.json").read_text()) for o in (one, two))
    assert r1["models"]["final"] == {
        **r2["models"]["final"],
        "onnx_bytes": r1["models"]["final"]["onnx_bytes"],
    }
    clean1, clean2 = r1["metrics"]["final"]["clean"], r2["metrics"]["final"]["clean"]
    print(f"1 process: clean {clean1:.4f}, 2 processes: clean {clean2:.4f}")
    assert clean1 > 0.5 and abs(clean1 - clean2) <= 0.02
    # rank 0 alone wrote: one manifest, every file in it, no temporaries or strays
    manifests = list(two.rglob("manifest.json"))
    assert manifests == [two / "manifest.json"]
    recorded = set(json.loads(manifests[0].read_text())["files"])
    on_disk = {str(p.relative_to(two)) for p in two.rglob("*") if p.is_file()}
    assert not [p for p in on_disk if p.endswith(".tmp") or "/." in "/" + p]
    assert on_disk - recorded <= {"manifest.json", "run.log"}
    assert {"model.onnx", "report.json", "checkpoints/last.pt"} <= recorded
    # resume under torchrun: every rank reads rank 0's checkpoint, rank 0 alone writes
    _rewind_to_stage_one(two)
    done = _run(tmp_path, two, 2, "--resume")
    assert done.returncode == 0, done.stderr[-3000:]
    resumed = json.loads((two / "report.json").read_text())
    assert [s["name"] for s in resumed["stages"]] == ["0:train", "1:prune", "2:export"]
    assert _shapes(two) == shapes
    assert resumed["per_stage"][0] == r2["per_stage"][0]  # stage 0 restored, not rerun


def test_read_only_folder_refuses_writes(tmp_path):
    from robust_compress.engine.runfolder import RunFolder

    RunFolder(tmp_path / "run").write_text("a.txt", "x")
    from robust_compress.engine.runfolder import ReadOnlyFolder

    view = ReadOnlyFolder(tmp_path / "run")
    assert "a.txt" in view.manifest()["files"]
    view.verify(tmp_path / "run" / "a.txt")
    with pytest.raises(RunError, match="only rank 0"):
        view.write_text("b.txt", "y")
    assert not (tmp_path / "run" / "b.txt").exists()
