"""Scale-out with PyTorch's DistributedDataParallel, started by ``torchrun``.

``torchrun --nproc_per_node=N -m robust_compress run recipe.yaml --out DIR`` starts N
processes; torchrun gives each its ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ``MASTER_ADDR`` and
``MASTER_PORT``, and :func:`init_from_env` joins them into one process group. Every helper here
is a no-op (or the trivial answer) when the process group is not initialised, so the same code
runs in a single process unchanged.

The backend is ``gloo`` on a machine without CUDA and ``cpu:gloo,cuda:nccl`` with CUDA (CPU
tensors go through gloo, CUDA tensors through NCCL); ``RC_DIST_BACKEND`` overrides it.
``RC_DIST_TIMEOUT_MIN`` (default 180) is how long a rank waits for the others at a collective,
e.g. while rank 0 alone runs a long audit. See docs/scaling.md.
"""

from __future__ import annotations

import datetime
import logging
import os
from collections.abc import Callable
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import Tensor, nn

from robust_compress.errors import RunError, UserError

log = logging.getLogger(__name__)
T = TypeVar("T")
ENV_BACKEND = "RC_DIST_BACKEND"
ENV_TIMEOUT = "RC_DIST_TIMEOUT_MIN"


def env_world_size() -> int:
    """``WORLD_SIZE`` as torchrun sets it (1 when absent)."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def default_backend() -> str:
    """``RC_DIST_BACKEND`` if set, else gloo (plus NCCL for CUDA tensors when CUDA exists)."""
    given = os.environ.get(ENV_BACKEND)
    if given:
        return given
    return "cpu:gloo,cuda:nccl" if torch.cuda.is_available() else "gloo"


def init_from_env() -> bool:
    """Join the process group torchrun describes; False (and nothing done) for one process.

    Raises:
        UserError: ``WORLD_SIZE`` > 1 but torchrun's other variables are missing.
    """
    if env_world_size() <= 1 or is_distributed():
        return is_distributed()
    missing = [v for v in ("RANK", "MASTER_ADDR", "MASTER_PORT") if v not in os.environ]
    if missing:
        raise UserError(
            f"WORLD_SIZE is {env_world_size()} but {', '.join(missing)} is not set; start "
            "distributed runs with torchrun (see docs/scaling.md)."
        )
    backend = default_backend()
    if torch.cuda.is_available() and "nccl" in backend:
        torch.cuda.set_device(local_rank())
    minutes = float(os.environ.get(ENV_TIMEOUT, "180"))
    dist.init_process_group(
        backend, init_method="env://", timeout=datetime.timedelta(minutes=minutes)
    )
    log.info("rank %d of %d joined the process group (%s)", rank(), world_size(), backend)
    return True


def shutdown() -> None:
    """Leave the process group (no-op when not distributed)."""
    if is_distributed():
        dist.destroy_process_group()


def is_distributed() -> bool:
    """True inside an initialised process group of more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank() -> int:
    """This process's rank (0 when not distributed)."""
    return dist.get_rank() if is_distributed() else 0


def world_size() -> int:
    """Number of processes (1 when not distributed)."""
    return dist.get_world_size() if is_distributed() else 1


def local_rank() -> int:
    """This process's index on its machine (torchrun's ``LOCAL_RANK``; 0 when absent)."""
    return int(os.environ.get("LOCAL_RANK", "0"))


def is_main() -> bool:
    """True on rank 0, the only rank that writes files."""
    return rank() == 0


def barrier() -> None:
    """Wait for every rank (no-op when not distributed)."""
    if is_distributed():
        dist.barrier()


def all_gather(obj: T) -> list[T]:
    """Every rank's ``obj`` (picklable), in rank order; ``[obj]`` when not distributed."""
    if not is_distributed():
        return [obj]
    gathered: list = [None] * world_size()
    dist.all_gather_object(gathered, obj)
    return gathered


def broadcast(obj: T, src: int = 0) -> T:
    """Rank ``src``'s ``obj`` (picklable) on every rank; ``obj`` itself when not distributed."""
    if not is_distributed():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def on_main(func: Callable[[], T]) -> T:
    """Call ``func`` on rank 0 only and give every rank its (picklable) result."""
    return broadcast(func() if is_main() else None)


def mean(value: float) -> float:
    """The mean of ``value`` over the ranks."""
    if not is_distributed():
        return value
    t = torch.tensor([float(value)], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t.item()) / world_size()


def all_finite(loss: Tensor) -> bool:
    """True when ``loss`` is finite on every rank (so all ranks stop together on a NaN)."""
    ok = bool(torch.isfinite(loss).all())
    if not is_distributed():
        return ok
    flag = torch.tensor([1 if ok else 0], dtype=torch.int32)
    dist.all_reduce(flag, op=dist.ReduceOp.MIN)
    return bool(flag.item())


def param_shapes(model: nn.Module) -> list[tuple[str, tuple[int, ...]]]:
    """Names and shapes of ``model``'s parameters."""
    return [(name, tuple(p.shape)) for name, p in model.named_parameters()]


def check_same_shapes(model: nn.Module, where: str) -> None:
    """Raise :class:`RunError` when the ranks' models do not have the same parameter shapes.

    Pruning decisions are identical on every rank by construction (same seeds, batches and
    weights); this checks it, so a divergence stops the run with a clear message instead of
    a hang or an obscure error inside DistributedDataParallel.
    """
    if not is_distributed():
        return
    shapes = all_gather(param_shapes(model))
    for r, other in enumerate(shapes[1:], start=1):
        if other != shapes[0]:
            diff = [f"{a} vs {b}" for a, b in zip(shapes[0], other, strict=False) if a != b]
            raise RunError(
                f"{where}: rank {r}'s model differs from rank 0's after a pruning or quantization "
                f"step ({len(shapes[0])} vs {len(other)} parameters; first differences: "
                f"{'; '.join(diff[:3]) or 'parameter count'}). Ranks must take identical "
                "decisions; report this with the recipe."
            )


def sync_buffers(model: nn.Module, src: int = 0) -> None:
    """Copy rank ``src``'s buffers (e.g. BatchNorm running statistics) to every rank."""
    if not is_distributed():
        return
    with torch.no_grad():
        for buf in model.buffers():
            dist.broadcast(buf, src=src)


def wrap(model: nn.Module) -> nn.Module:
    """``model`` wrapped in DistributedDataParallel; ``model`` itself when not distributed.

    The wrapper broadcasts rank 0's parameters and buffers when built and rank 0's buffers
    (BatchNorm statistics) before every forward pass (DDP's default buffer sync), and averages the
    gradients over the ranks.
    """
    if not is_distributed():
        return model
    from torch.nn.parallel import DistributedDataParallel

    first = next(model.parameters(), None)
    on_cuda = first is not None and first.is_cuda
    return DistributedDataParallel(
        model,
        device_ids=[first.device.index] if on_cuda else None,
        # buffers are synced from rank 0 before every forward by default (torch 2.14 renamed
        # the flag from broadcast_buffers, now deprecated, to forward_sync_buffers)
        # every trainable parameter gets a gradient, Brevitas' fake-quant models included
        # (checked: w8a8 per-channel QAT); so no extra traversal of the autograd graph
        find_unused_parameters=False,
    )


def per_rank_batch(batch_size: int) -> int:
    """Examples per step on each rank for a recipe's (global) ``batch_size``."""
    return max(1, -(-batch_size // world_size()))
