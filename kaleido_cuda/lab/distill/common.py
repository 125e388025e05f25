"""What every distillation loop shares: per-iteration seeding, augmentation, timing, checkpoints.

Every random choice of iteration `it` (network initialisation, real batches, augmentation seeds)
comes from a generator seeded with (seed, it), so a run resumed from a checkpoint takes exactly the
same steps as one that was never interrupted.
"""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch

from ...dsa import DEFAULT_STRATEGY, DiffAugment, ParamDiffAug
from ..distributed import SINGLE, World, check_ranks_for, main_decides, sync_rows
from ..files.atomic import atomic_path



@dataclass
class LoopOptions:
    """The options every method's configuration has (DMConfig, DCConfig and MTTConfig add theirs)."""
    iterations: int = 300
    model: str = "convnet"         # network used for matching
    width: int = 128
    depth: Optional[int] = None    # None: follows the image size
    augment: str = "fused"         # DSA through the fused op, 'eager' (DSA's chain) or 'none'
    seed: int = 0
    checkpoint_every_s: float = 120.0


def iteration_seed(seed: int, iteration: int) -> int:
    return (int(seed) * 1_000_003 + int(iteration)) % (2**63)


def class_generator(seed: int, iteration: int, c: int) -> torch.Generator:
    """The generator of class c's random draws at an iteration: keyed by (seed, iteration, class),
    so a class draws the same numbers whichever rank owns it and in whatever order classes run."""
    return torch.Generator().manual_seed((iteration_seed(seed, iteration) * 1_000_033 + int(c) + 1) % (2**63))


def shard_classes(world: World, syn_labels: torch.Tensor, num_classes: int) -> Tuple[List[int], List[int]]:
    """The classes this rank matches, and the owner rank of every synthetic image row (for
    run_iterations), for the loops that split their classes across ranks."""
    check_ranks_for(world, num_classes, "classes")
    return world.owned(num_classes), [world.owner(int(c), num_classes) for c in syn_labels.cpu()]


@dataclass
class Augmenter:
    """DSA augmentation with one seed shared by a real and a synthetic batch (siamese), through the
    fused op or the eager chain; it also adds up the time spent augmenting (forward only)."""
    impl: str = "fused"           # 'fused', 'eager' or 'none'
    strategy: str = DEFAULT_STRATEGY
    aug_mode: str = "S"
    seconds: float = 0.0

    def __post_init__(self):
        if self.impl not in ("fused", "eager", "none"):
            raise ValueError(f"augmentation must be 'fused', 'eager' or 'none', got {self.impl!r}")
        self.param = ParamDiffAug()
        self.param.aug_mode = self.aug_mode

    def __call__(self, x: torch.Tensor, seed: int) -> torch.Tensor:
        if self.impl == "none":
            return x
        start = time.perf_counter()
        y = DiffAugment(x, self.strategy, seed=seed, param=self.param, impl=self.impl)
        self.seconds += time.perf_counter() - start
        return y


@dataclass
class History:
    losses: List[float] = field(default_factory=list)
    iteration_seconds: List[float] = field(default_factory=list)
    seconds: float = 0.0               # wall time of the iterations run so far (all sessions)
    augment_seconds: float = 0.0       # of which in augmentation forward calls
    extra: Dict[str, object] = field(default_factory=dict)  # other learned values (MTT's rate, DATM's labels)
    dp: Dict = field(default_factory=dict)  # DP-DM: the accountant's report (dp/accounting.py); empty otherwise

    def as_dict(self) -> Dict:
        return asdict(self)


def save_checkpoint(path: str, state: Dict) -> None:
    """Writes atomically: an interrupted save leaves the previous checkpoint intact."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path: str) -> Optional[Dict]:
    if not os.path.exists(path):
        return None
    return torch.load(path, map_location="cpu", weights_only=False)


class CheckpointClock:
    """Says when a checkpoint is due: every `every_s` seconds of wall time (0: every call)."""

    def __init__(self, every_s: float):
        self.every_s = every_s
        self.last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self.last >= self.every_s:
            self.last = time.monotonic()
            return True
        return False


def class_rows(labels: torch.Tensor, num_classes: int) -> List[torch.Tensor]:
    """Indices of each class's rows."""
    return [torch.nonzero(labels == c).flatten() for c in range(num_classes)]


def run_iterations(method: str, cfg, images: torch.Tensor, labels: torch.Tensor, opt: torch.optim.Optimizer,
                   step: Callable[[int, torch.Generator], float], augment: Augmenter, checkpoint: Optional[str],
                   resume: bool, progress: bool, extra: Optional[Dict[str, torch.Tensor]] = None,
                   world: World = SINGLE, row_owner: Optional[Sequence[int]] = None,
                   stateful: Optional[Dict[str, object]] = None) -> History:
    """The loop every method shares: resume (refusing another configuration), one `step(it, g)` per
    iteration with g seeded from (cfg.seed, it) and torch's global RNG seeded the same way (network
    initialisation), timing, progress bar, atomic checkpoints every cfg.checkpoint_every_s seconds
    and at the end. `step` updates `images` (a leaf optimised by `opt`) and returns the loss.
    `extra`: other learned tensors (MTT's learning rate), saved and restored with the images.
    `stateful`: other state that `step` advances (DP-DM's privacy accountant): objects with
    state_dict() and load_state_dict(), saved in every checkpoint and restored on resume.

    Sharded (world.size > 1): each rank's step updates the image rows it owns (row_owner[i] is the
    rank of row i) and returns the loss summed over all ranks. Rank 0's clock decides when to
    checkpoint; the owners' rows of the images and of the optimiser's momentum are then copied to
    every rank and rank 0 writes the whole state, so a checkpoint resumes under any number of ranks.
    Progress bars only on rank 0."""
    extra, stateful = extra or {}, stateful or {}
    if world.distributed and row_owner is None:
        raise ValueError("run_iterations: a sharded run needs the owner rank of every image row")
    from tqdm.auto import tqdm

    history, start = History(), 0
    state = load_checkpoint(checkpoint) if (resume and checkpoint) else None
    if state is not None:
        history, start = _restore(state, checkpoint, method, cfg, images, opt, extra, stateful)
    clock = CheckpointClock(cfg.checkpoint_every_s)
    bar = tqdm(range(start, cfg.iterations), initial=start, total=cfg.iterations, desc=method.upper(),
               disable=not (progress and world.main))
    synced = start  # the iteration at which every rank last held the whole set (a loaded state is whole)
    for it in bar:
        t0, aug0 = time.perf_counter(), augment.seconds
        g = torch.Generator().manual_seed(iteration_seed(cfg.seed, it))
        torch.manual_seed(iteration_seed(cfg.seed, it))
        history.losses.append(float(step(it, g)))
        history.iteration_seconds.append(time.perf_counter() - t0)
        history.seconds += history.iteration_seconds[-1]
        history.augment_seconds += augment.seconds - aug0
        bar.set_postfix(loss=f"{history.losses[-1]:.3g}")
        if checkpoint and main_decides(world, clock.due() or it + 1 == cfg.iterations):
            _sync_shards(world, images, opt, row_owner)
            synced = it + 1
            if world.main:
                save_checkpoint(checkpoint, {"method": method, "config": asdict(cfg), "iteration": it + 1,
                                             "images": images.detach().cpu(), "labels": labels.cpu(),
                                             "extra": {k: v.detach().cpu() for k, v in extra.items()},
                                             "optimizer": opt.state_dict(), "history": history.as_dict(),
                                             "state": {k: v.state_dict() for k, v in stateful.items()}})
    if synced != cfg.iterations:  # every rank returns the whole set
        _sync_shards(world, images, opt, row_owner)
    return history


def _restore(state: Dict, checkpoint: str, method: str, cfg, images: torch.Tensor, opt: torch.optim.Optimizer,
             extra: Dict[str, torch.Tensor], stateful: Dict[str, object]) -> Tuple[History, int]:
    """Loads a checkpoint's images, extra tensors, optimiser and stateful objects in place, after
    checking that the same method and configuration (but for the iteration count) made it;
    returns its history and the iteration to continue from."""
    saved = {k: v for k, v in state["config"].items() if k != "iterations"}
    mine = {k: v for k, v in asdict(cfg).items() if k != "iterations"}
    if state.get("method") != method or saved != mine:
        raise ValueError(f"resume: the checkpoint {checkpoint} was made by {state.get('method')} with another "
                         f"configuration ({saved} vs {mine})")
    with torch.no_grad():
        images.copy_(state["images"].to(images.device))
        for name, tensor in extra.items():
            tensor.copy_(state["extra"][name].to(tensor.device))
    opt.load_state_dict(state["optimizer"])
    for name, obj in stateful.items():
        if name not in state.get("state", {}):
            raise ValueError(f"resume: the checkpoint {checkpoint} has no {name} state")
        obj.load_state_dict(state["state"][name])
    return History(**state["history"]), int(state["iteration"])


def _sync_shards(world: World, images: torch.Tensor, opt: torch.optim.Optimizer, row_owner) -> None:
    """Copies each owner's rows of the images and of their per-element optimiser state to every rank."""
    if not world.distributed:
        return
    sync_rows(world, images, row_owner)
    for value in opt.state.get(images, {}).values():
        if isinstance(value, torch.Tensor) and value.shape == images.shape:
            sync_rows(world, value, row_owner)
