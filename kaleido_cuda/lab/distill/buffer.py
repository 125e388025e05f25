"""Expert trajectories for trajectory matching (MTT; Cazenavette et al., "Dataset Distillation by
Matching Training Trajectories", CVPR 2022): `kaleido buffer`.

An expert is a network trained on the real training set with DSA augmentation; its trajectory is
its flat parameter vector at the start and after every epoch, shape (epochs + 1, P). A buffer is a
folder:

    buffer.json        what made it (dataset, model, image shape, config) and each finished expert's test
                       accuracy; written before training starts and after every finished expert
    expert_K.pt        {"trajectory": (epochs + 1, P) float32, "test_accuracy": float}, one per finished expert
    partial_K.pt       expert K while it trains: its trajectory so far, model and optimizer state

Every random choice of (expert k, epoch e) is seeded from (seed, k, e), so an interrupted `kaleido
buffer` resumed with the same options writes the same trajectories as an uninterrupted one, and
under torchrun, where each rank trains the experts it owns (contiguous blocks of indices), the
buffer is the same for any number of ranks. Each rank writes its own experts' files, so the folder
must be on a file system every rank sees; rank 0 writes buffer.json.
"""
from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Callable, Dict, List, Optional, Tuple

import torch
import torch.nn.functional as F

from ...dsa import DEFAULT_STRATEGY, DiffAugment, ParamDiffAug
from ..distributed import SINGLE, World, check_ranks_for, gather_keyed
from ..files.atomic import atomic_path, write_json_atomic
from ..files.layout import BufferFolder
from ..train.evaluate import accuracy
from ..train.models import get_model
from .common import iteration_seed


@dataclass
class BufferConfig:
    experts: int = 5
    epochs: int = 20
    lr: float = 0.01               # MTT's teacher learning rate
    momentum: float = 0.0          # MTT's experts: plain SGD
    weight_decay: float = 0.0
    batch_size: int = 32           # small: the digits have 1,257 images, 40 steps per epoch
    model: str = "convnet"
    width: int = 128
    depth: Optional[int] = None
    augment: str = "fused"         # DSA (mode 'S') while the experts train; 'eager' or 'none'
    seed: int = 0

    def check(self) -> None:
        if self.experts < 1 or self.epochs < 1 or self.batch_size < 1 or not self.lr > 0:
            raise ValueError("buffer: experts, epochs and batch size must be >= 1 and lr > 0")
        if self.augment not in ("fused", "eager", "none"):
            raise ValueError(f"buffer: augment must be fused, eager or none, got {self.augment!r}")


def flat_parameters(model: torch.nn.Module) -> torch.Tensor:
    return torch.cat([p.detach().reshape(-1) for p in model.parameters()])


def unflatten(model: torch.nn.Module, flat: torch.Tensor) -> Dict[str, torch.Tensor]:
    """The named parameters of `model` as views of `flat` (for torch.func.functional_call)."""
    total = sum(p.numel() for p in model.parameters())
    if total != flat.numel():
        raise ValueError(f"a flat parameter vector of {flat.numel()} values does not fit this model ({total})")
    out, start = {}, 0
    for name, p in model.named_parameters():
        out[name] = flat[start:start + p.numel()].view_as(p)
        start += p.numel()
    return out


def _meta(cfg: BufferConfig, dataset: str, images: torch.Tensor, num_classes: int) -> dict:
    return {"dataset": dataset, "channels": images.shape[1], "size": list(images.shape[-2:]),
            "num_classes": num_classes, "config": asdict(cfg)}


def _options(meta: dict) -> dict:
    """What must match for a folder to be extended: everything but the expert count and list."""
    return {**{k: v for k, v in meta.items() if k != "experts"},
            "config": {k: v for k, v in meta["config"].items() if k != "experts"}}


def missing_buffer_error(path: str, dataset: Optional[str], model: str) -> FileNotFoundError:
    return FileNotFoundError(f"no expert buffer in {path!r}: make one with `kaleido buffer --dataset "
                             f"{dataset or 'NAME'} --model {model} --out {path}`")


def _listing(accuracies: Dict[int, float]) -> List[dict]:
    return [{"file": os.path.basename(BufferFolder("").expert(k)), "test_accuracy": accuracies[k]}
            for k in sorted(accuracies)]


def _save(path: str, obj) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def _open_buffer(folder: BufferFolder, meta: dict, world: World) -> Dict[int, float]:
    """The finished experts' accuracies listed in the folder's buffer.json (none for a new folder),
    after checking that it was made with these options; rank 0 then writes buffer.json before any
    training, so that an interrupted buffer also refuses other options."""
    finished: Dict[int, float] = {}
    if os.path.exists(folder.meta):
        saved = json.load(open(folder.meta))
        if _options(saved) != _options(meta):
            raise ValueError(f"buffer: {folder.root} holds trajectories made with other options ({saved}); "
                             "use another --out")
        meta["experts"] = saved["experts"]
        finished = {BufferFolder.expert_index(e["file"]): e["test_accuracy"] for e in saved["experts"]}
    if world.main:
        write_json_atomic(folder.meta, meta)
    return finished


def _expert_epoch(model, opt, images: torch.Tensor, labels: torch.Tensor, cfg: BufferConfig, seed: int) -> None:
    """One epoch of an expert, every draw seeded by `seed`."""
    param = ParamDiffAug()
    param.aug_mode = "S"
    g = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)  # DSA's per-sample draws
    model.train()
    order = torch.randperm(len(images), generator=g).to(images.device)
    for s in range(0, len(images), cfg.batch_size):
        idx = order[s:s + cfg.batch_size]
        x = images[idx]
        if cfg.augment != "none":
            x = DiffAugment(x, DEFAULT_STRATEGY, seed=-1, param=param, impl=cfg.augment)
        loss = F.cross_entropy(model(x), labels[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def _train_expert(k: int, data: Tuple[torch.Tensor, ...], num_classes: int, cfg: BufferConfig,
                  folder: BufferFolder, tick: Callable[[int], None]) -> float:
    """Trains expert k (from its partial file, if an earlier session began it), saves its
    trajectory and returns its test accuracy. tick(n): n epochs done."""
    images, labels, test_images, test_labels = data
    torch.manual_seed(iteration_seed(cfg.seed, 1_000_000 * (k + 1)))
    model = get_model(cfg.model, images.shape[1], num_classes, tuple(images.shape[-2:]), cfg.width,
                      cfg.depth).to(images.device)
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay)
    trajectory, start = [flat_parameters(model).cpu()], 0
    if os.path.exists(folder.partial(k)):
        state = torch.load(folder.partial(k), map_location="cpu")
        model.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        trajectory, start = list(state["trajectory"]), len(state["trajectory"]) - 1
        tick(start)
    for epoch in range(start, cfg.epochs):
        _expert_epoch(model, opt, images, labels, cfg, iteration_seed(cfg.seed, 1_000_000 * (k + 1) + epoch + 1))
        trajectory.append(flat_parameters(model).cpu())
        _save(folder.partial(k), {"expert": k, "trajectory": torch.stack(trajectory), "model": model.state_dict(),
                                  "optimizer": opt.state_dict()})
        tick(1)
    acc = accuracy(model, test_images, test_labels)
    _save(folder.expert(k), {"trajectory": torch.stack(trajectory), "test_accuracy": acc})
    os.remove(folder.partial(k))
    return acc


def train_buffer(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                 num_classes: int, cfg: BufferConfig, out: str, dataset: str = "custom",
                 progress: bool = True, world: World = SINGLE) -> dict:
    """Trains cfg.experts experts on (images, labels) and stores their trajectories in `out`;
    finished experts are kept and an interrupted one continues from its last epoch. Returns
    buffer.json's content (on every rank). Under torchrun (`world`) each rank trains the experts it
    owns; rank 0 lists its own experts in buffer.json as they finish and the others' at the end."""
    from tqdm.auto import tqdm

    cfg.check()
    check_ranks_for(world, cfg.experts, "experts")
    folder = BufferFolder(out)
    os.makedirs(out, exist_ok=True)
    meta = json.loads(json.dumps(_meta(cfg, dataset, images, num_classes)))  # as it reads back
    meta["experts"] = []
    finished = _open_buffer(folder, meta, world)
    data = (images, labels, test_images, test_labels)
    bar = tqdm(total=len(world.owned(cfg.experts)) * cfg.epochs, desc="experts", disable=not (progress and world.main))

    def expert(k: int) -> float:
        """Expert k's test accuracy, after training it (or reading it if finished); rank 0 lists it."""
        if os.path.exists(folder.expert(k)):
            bar.update(cfg.epochs)
            acc = float(torch.load(folder.expert(k), map_location="cpu")["test_accuracy"])
        else:
            acc = _train_expert(k, data, num_classes, cfg, folder, bar.update)
            bar.set_postfix(test_accuracy=f"{acc:.3f}")
        if world.main:  # finished experts are usable at once
            finished[k] = acc
            meta["experts"] = _listing(finished)
            write_json_atomic(folder.meta, meta)
        return acc

    accuracies = gather_keyed(world, cfg.experts, expert)
    bar.close()
    meta["experts"] = _listing(dict(enumerate(accuracies)))
    if world.main:
        missing = [k for k in range(cfg.experts) if not os.path.exists(folder.expert(k))]
        if missing:
            raise FileNotFoundError(f"buffer: rank 0 does not see experts {missing} that other ranks wrote to {out}; "
                                    "under torchrun the buffer folder must be on a file system every rank sees")
        write_json_atomic(folder.meta, meta)
    return meta


def buffer_epochs(path: str, dataset: Optional[str], model: str) -> int:
    """How many epochs the experts of the buffer in `path` trained."""
    folder = BufferFolder(path)
    if not os.path.exists(folder.meta):
        raise missing_buffer_error(path, dataset, model)
    return int(json.load(open(folder.meta))["config"]["epochs"])


def load_buffer(path: str, dataset: Optional[str], images: torch.Tensor, num_classes: int, model: str, width: int,
                depth: Optional[int]) -> List[torch.Tensor]:
    """The trajectories of a finished buffer, after checking that it was made for this data and model."""
    folder = BufferFolder(path)
    if not os.path.exists(folder.meta):
        raise missing_buffer_error(path, dataset, model)
    meta = json.load(open(folder.meta))
    want = {"dataset": meta["dataset"] if dataset is None else dataset, "channels": images.shape[1],
            "size": list(images.shape[-2:]), "num_classes": num_classes, "model": model, "width": width,
            "depth": depth}
    have = {"dataset": meta["dataset"], "channels": meta["channels"], "size": meta["size"],
            "num_classes": meta["num_classes"], "model": meta["config"]["model"],
            "width": meta["config"]["width"], "depth": meta["config"]["depth"]}
    if want != have:
        raise ValueError(f"the buffer in {path!r} was made for {have}, this run needs {want}")
    if not meta.get("experts"):
        raise ValueError(f"the buffer in {path!r} has no finished expert (resume `kaleido buffer`)")
    return [torch.load(folder.expert(BufferFolder.expert_index(e["file"])), map_location="cpu")["trajectory"]
            for e in meta["experts"]]
