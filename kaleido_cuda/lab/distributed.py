"""Runs under `torchrun`: the process group from torchrun's environment, and the few collectives
the sharded loops need.

Without torchrun (no WORLD_SIZE in the environment, or WORLD_SIZE=1) nothing here starts a process
group and every helper is a no-op, so single-process runs are unchanged. Under torchrun the backend
is NCCL when the run's device is CUDA (each rank on the GPU of its LOCAL_RANK) and gloo on the CPU.
Work is split by key (a class, a model index), never by arrival order, so that every result is the
same whatever the number of ranks.
"""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Callable, List, Sequence

import torch

# A rank that waits longer than this on a collective gives up with an error instead of hanging
# (a killed peer, a peer stuck elsewhere). KALEIDO_DIST_TIMEOUT_S overrides it.
DEFAULT_TIMEOUT_S = 600.0


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def main(self) -> bool:
        """Rank 0: the only rank that writes run outputs and shows progress."""
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    def owner(self, key: int, keys: int) -> int:
        """The rank that owns key in range(keys): contiguous blocks, the first ones one larger."""
        base, extra = divmod(keys, self.size)
        cut = extra * (base + 1)
        return key // (base + 1) if key < cut else extra + (key - cut) // max(base, 1)

    def owned(self, keys: int) -> List[int]:
        return [k for k in range(keys) if self.owner(k, keys) == self.rank]


SINGLE = World()


def _env_world() -> World:
    size = int(os.environ.get("WORLD_SIZE", "1"))
    return World(rank=int(os.environ.get("RANK", "0")), size=size, local_rank=int(os.environ.get("LOCAL_RANK", "0")))


_alone_depth = 0  # > 0 inside alone(): keyed work that one rank does by itself


def check_ranks_for(world: World, keys: int, what: str) -> None:
    """Work split by key needs a key for every rank: one clear error when there are fewer."""
    if world.size > keys:
        raise ValueError(f"torchrun: {world.size} ranks but only {keys} {what} to split among them; "
                         f"use at most {keys} processes")


def current_world() -> World:
    """The world of the process group this process joined (SINGLE without one, or inside alone())."""
    import torch.distributed as dist

    if _alone_depth == 0 and dist.is_available() and dist.is_initialized():
        return World(rank=dist.get_rank(), size=dist.get_world_size(), local_rank=_env_world().local_rank)
    return SINGLE


@contextlib.contextmanager
def alone():
    """Inside it current_world() is SINGLE: for a whole pipeline that one rank runs by itself as one
    key of gather_keyed (a LiRA shadow's distillation), which must not split its classes again."""
    global _alone_depth
    _alone_depth += 1
    try:
        yield
    finally:
        _alone_depth -= 1


def init_world(device: str = "cpu") -> World:
    """Joins the process group torchrun describes in the environment (once), or returns SINGLE."""
    env = _env_world()
    if env.size <= 1:
        return SINGLE
    import torch.distributed as dist

    if not dist.is_available():
        raise ValueError("WORLD_SIZE > 1 but this torch has no torch.distributed")
    if not dist.is_initialized():
        timeout = float(os.environ.get("KALEIDO_DIST_TIMEOUT_S", DEFAULT_TIMEOUT_S))
        backend = "gloo"
        if str(device).startswith("cuda"):
            torch.cuda.set_device(env.local_rank)
            backend = "nccl"
        dist.init_process_group(backend=backend, timeout=timedelta(seconds=timeout))
    return current_world()


def close_world() -> None:
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def check_same_options(world: World, options: dict) -> None:
    """Raises ValueError on every rank when the ranks were launched with different options."""
    if not world.distributed:
        return
    import torch.distributed as dist

    digest = hashlib.sha256(json.dumps(options, sort_keys=True, default=str).encode()).hexdigest()
    digests: List[str] = [""] * world.size
    dist.all_gather_object(digests, digest)
    if len(set(digests)) > 1:
        differing = [r for r, d in enumerate(digests) if d != digests[0]]
        raise ValueError(f"torchrun: ranks {differing} were launched with other options than rank 0; "
                         "launch every rank with the same command")


def all_sum(world: World, value: float) -> float:
    """The sum over ranks of a float (float64 on the wire)."""
    if not world.distributed:
        return value
    import torch.distributed as dist

    t = torch.tensor([value], dtype=torch.float64)
    dist.all_reduce(t)
    return float(t)


def main_decides(world: World, flag: bool) -> bool:
    """Rank 0's flag, on every rank (one collective): for decisions such as "checkpoint now" that
    must be the same everywhere but come from a clock."""
    if not world.distributed:
        return flag
    import torch.distributed as dist

    t = torch.tensor([1 if flag else 0], dtype=torch.int64)
    dist.broadcast(t, src=0)
    return bool(t)


def sync_rows(world: World, tensor: torch.Tensor, row_owner: Sequence[int]) -> None:
    """Copies, in place on every rank, each row of `tensor` from the rank that owns it
    (row_owner[i] is the owner of row i): after it every rank holds the same tensor, bit for bit."""
    if not world.distributed:
        return
    import torch.distributed as dist

    owner = torch.as_tensor(list(row_owner))
    for r in range(world.size):
        rows = torch.nonzero(owner == r).flatten().to(tensor.device)
        if len(rows) == 0:
            continue
        part = tensor.detach()[rows].contiguous()
        dist.broadcast(part, src=r)
        with torch.no_grad():
            tensor[rows] = part


def gather_keyed(world: World, keys: int, compute: Callable[[int], object]) -> List[object]:
    """[compute(0), ..., compute(keys - 1)] on every rank, each key computed once, by its owner
    (keyed work such as model k trained from seed + k: the list is the same for any number of
    ranks). compute runs inside alone(), so the loops it calls do not use collectives."""
    if not world.distributed:
        return [compute(k) for k in range(keys)]
    import torch.distributed as dist

    with alone():  # a key's work is one rank's own: a loop inside it must not split again
        mine = {k: compute(k) for k in world.owned(keys)}
    parts: List[dict] = [{} for _ in range(world.size)]
    dist.all_gather_object(parts, mine)
    merged = {k: v for part in parts for k, v in part.items()}
    return [merged[k] for k in range(keys)]
