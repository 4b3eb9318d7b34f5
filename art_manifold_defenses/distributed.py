"""Scale-out with PyTorch's own ``torch.distributed``, launched by ``torchrun`` (NCCL on GPUs, Gloo on CPUs).

The package never starts processes itself: ``torchrun --nproc_per_node=K -m art_manifold_defenses certify
...`` (or ``evaluate``, ``train``) starts ``K`` copies and sets ``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``,
``MASTER_ADDR`` and ``MASTER_PORT``; the helpers here read them. Without those variables every helper is the
single-process identity (world size 1, rank 0, barrier a no-op), so one code path serves both.

* :func:`init_distributed` / :func:`destroy_distributed`: the default process group, Gloo on CPU and NCCL on
  CUDA, and the device of this process (``cuda:LOCAL_RANK`` for a CUDA device, so each process uses its own
  GPU).
* :func:`shard` : the positions a rank works on, round-robin over fixed blocks of global positions (a result
  that depends only on the blocks, never on the number of processes).
* :func:`derive_seed`: a seed from ``(global seed, image index, ...)``, the same on every process.
* :func:`barrier`, :func:`gather_objects`, :func:`broadcast_object`, :func:`all_reduce_sum`: collectives that
  fall back to the identity in a single process.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import torch.distributed as dist

__all__ = [
    "DistributedInfo",
    "all_reduce_sum",
    "barrier",
    "broadcast_object",
    "derive_seed",
    "destroy_distributed",
    "process_device",
    "gather_objects",
    "init_distributed",
    "is_distributed",
    "local_rank",
    "rank",
    "shard",
    "world_size",
]

#: Timeout of collectives (certifying or attacking an unbalanced shard can keep one rank busy long after the
#: others).
DEFAULT_TIMEOUT = datetime.timedelta(hours=12)


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    try:
        return int(value)
    except ValueError as exc:
        raise ValueError(f"environment variable {name} must be an integer, got {value!r}") from exc


def is_distributed() -> bool:
    """True when the default process group is initialised with more than one process."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def world_size() -> int:
    """Number of processes: the process group's, else ``WORLD_SIZE`` (set by torchrun), else 1."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_world_size())
    return _env_int("WORLD_SIZE", 1)


def rank() -> int:
    """Global rank of this process: the process group's, else ``RANK``, else 0."""
    if dist.is_available() and dist.is_initialized():
        return int(dist.get_rank())
    return _env_int("RANK", 0)


def local_rank() -> int:
    """Rank of this process on its node (``LOCAL_RANK``, set by torchrun; 0 otherwise): the index of its
    GPU."""
    return _env_int("LOCAL_RANK", 0)


@dataclass(frozen=True)
class DistributedInfo:
    """Where this process stands: ``rank`` of ``world_size`` processes, ``local_rank`` on its node, its
    ``device``, the ``backend`` (``None`` in a single process) and whether :func:`init_distributed` created
    the group."""

    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    backend: str | None
    created_group: bool

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def process_device(device: str | torch.device | None) -> torch.device:
    """The device of this process for a requested ``device``: under torchrun with ``WORLD_SIZE > 1``, a CUDA
    request becomes ``cuda:LOCAL_RANK`` (one GPU per process); CPU (and single-process runs) are returned
    unchanged."""
    from .utils import resolve_device

    dev = resolve_device(device)
    if dev.type == "cuda" and world_size() > 1:
        wanted = torch.device("cuda", local_rank())
        if dev.index is not None and dev.index != wanted.index:
            warnings.warn(
                f"device {dev} ignored under torchrun: process with LOCAL_RANK={local_rank()} uses {wanted}",
                stacklevel=2,
            )
        if local_rank() >= torch.cuda.device_count():
            raise ValueError(
                f"LOCAL_RANK={local_rank()} but only {torch.cuda.device_count()} CUDA device(s) are visible; "
                "use --nproc_per_node <= the number of GPUs"
            )
        torch.cuda.set_device(wanted)
        return wanted
    return dev


def init_distributed(
    device: str | torch.device | None = "cpu",
    *,
    backend: str | None = None,
    timeout: datetime.timedelta = DEFAULT_TIMEOUT,
) -> DistributedInfo:
    """Join the process group torchrun describes (a no-op without ``WORLD_SIZE > 1``) and pick this process's
    device.

    Args:
        device: the requested device (``"cpu"``, ``"cuda"``, ``"cuda:N"``); see :func:`process_device`.
        backend: ``"gloo"`` or ``"nccl"``; default NCCL for a CUDA device, Gloo otherwise.
        timeout: timeout of every collective.

    Returns:
        A :class:`DistributedInfo`; call :func:`destroy_distributed` with it when done.
    """
    if backend is not None and backend not in ("gloo", "nccl"):
        raise ValueError(f"backend must be 'gloo', 'nccl' or None, got {backend!r}")
    if not isinstance(timeout, datetime.timedelta):
        raise TypeError(f"timeout must be a datetime.timedelta, got {type(timeout).__name__}")
    dev = process_device(device)
    size = world_size()
    if size < 1:
        raise ValueError(f"WORLD_SIZE must be >= 1, got {size}")
    created = False
    chosen: str | None = None
    if size > 1:
        if not dist.is_available():
            raise RuntimeError("torch.distributed is not available in this PyTorch build")
        chosen = backend or ("nccl" if dev.type == "cuda" else "gloo")
        if chosen == "nccl" and dev.type != "cuda":
            raise ValueError("backend 'nccl' needs a CUDA device; use --device cuda or backend='gloo'")
        if not dist.is_initialized():
            missing = [v for v in ("MASTER_ADDR", "MASTER_PORT", "RANK") if v not in os.environ]
            if missing:
                raise ValueError(f"WORLD_SIZE={size} but {missing} are not set: launch with torchrun")
            kwargs: dict[str, Any] = {"backend": chosen, "timeout": timeout}
            if dev.type == "cuda":
                kwargs["device_id"] = dev
            dist.init_process_group(**kwargs)
            created = True
        else:
            chosen = str(dist.get_backend())
    return DistributedInfo(
        rank=rank(),
        world_size=world_size(),
        local_rank=local_rank(),
        device=dev,
        backend=chosen,
        created_group=created,
    )


def destroy_distributed(info: DistributedInfo | None = None) -> None:
    """Leave the process group (only if :func:`init_distributed` created it, or always when ``info`` is
    None)."""
    if dist.is_available() and dist.is_initialized() and (info is None or info.created_group):
        dist.destroy_process_group()


def barrier() -> None:
    """Wait for every process (no-op in a single process)."""
    if is_distributed():
        dist.barrier()


def gather_objects(obj: Any, *, dst: int = 0) -> list[Any] | None:
    """Picklable ``obj`` of every rank, in rank order, on ``dst`` (``None`` elsewhere); ``[obj]`` in one
    process."""
    if not is_distributed():
        return [obj]
    out: list[Any] | None = [None] * dist.get_world_size() if dist.get_rank() == dst else None
    dist.gather_object(obj, out, dst=dst)
    return out


def broadcast_object(obj: Any, *, src: int = 0) -> Any:
    """``obj`` of rank ``src`` on every rank (picklable); ``obj`` itself in one process."""
    if not is_distributed():
        return obj
    box = [obj if dist.get_rank() == src else None]
    dist.broadcast_object_list(box, src=src)
    return box[0]


def all_reduce_sum(values: Sequence[float], *, device: torch.device | str = "cpu") -> list[float]:
    """Element-wise sum of ``values`` over ranks (float64); ``values`` in one process."""
    if not is_distributed():
        return [float(v) for v in values]
    tensor = torch.tensor([float(v) for v in values], dtype=torch.float64, device=torch.device(device))
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return [float(v) for v in tensor.cpu()]


def shard(
    count: int, *, rank_index: int | None = None, size: int | None = None, block: int = 1
) -> np.ndarray:
    """Positions ``0..count-1`` this rank works on: blocks ``[b*block, (b+1)*block)`` dealt round-robin (block
    ``b`` goes to rank ``b % size``). Deterministic and disjoint; the union over ranks is every position.

    Args:
        count: number of positions (images).
        rank_index, size: default this process's rank and the world size.
        block: positions per block (1 = round-robin image by image; the evaluation uses its batch size).
    """
    if isinstance(count, bool) or not isinstance(count, (int, np.integer)) or count < 0:
        raise ValueError(f"count must be a non-negative integer, got {count!r}")
    if isinstance(block, bool) or not isinstance(block, (int, np.integer)) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    r = rank() if rank_index is None else int(rank_index)
    w = world_size() if size is None else int(size)
    if w < 1 or not 0 <= r < w:
        raise ValueError(f"rank must be in [0, world size) and world size >= 1, got rank {r} of {w}")
    blocks = np.arange((int(count) + block - 1) // block)
    mine = blocks[blocks % w == r]
    if len(mine) == 0:
        return np.zeros(0, dtype=np.int64)
    positions = (mine[:, None] * block + np.arange(block)[None, :]).reshape(-1)
    return positions[positions < count].astype(np.int64)


def derive_seed(seed: int, *parts: Any) -> int:
    """A 62-bit seed from the global ``seed`` and ``parts`` (image index, attack settings, repeat, ...): a
    hash, so it is the same on every process and nearby indices give unrelated streams."""
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise TypeError(f"seed must be an integer, got {seed!r}")
    payload = json.dumps([int(seed), *parts], sort_keys=True, default=str).encode()
    return int.from_bytes(hashlib.sha256(payload).digest()[:8], "little") & ((1 << 62) - 1)
