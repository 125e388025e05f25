"""LiRA's shadow pipelines for a run (Carlini et al. 2022, adapted to distillation as in the
dataset-distillation privacy critiques): each shadow repeats the run's whole pipeline on a random
half of the pooled candidates (members and non-members), then trains a model on its distilled set
and records every candidate's statistic on that model.

- Shadows 2j and 2j + 1 train on complementary random halves (a generator seeded by (seed, j)),
  so every candidate is in half of them and out of the others; each initialises as the run did
  (same method, init, IPC, strength) with seed + s, distils for `iterations` (default: the run's),
  and trains one model with the run's evaluation protocol for `epochs` (default: the run's).
- Each finished shadow is saved as RUN/shadows/shadow_S.pt (its half and its statistics), written
  atomically; RUN/shadows/shadows.json holds the options, written before the first shadow, and a
  folder made with other options is refused (a larger K reuses the shadows already made). An interrupted audit resumes at the next shadow, and
  an interrupted shadow's distillation resumes from its checkpoint.
- Cost: one distillation and one model per shadow. On this 2-core CPU, DM at IPC 10 on the digits
  takes about 2 s per iteration on a half pool and a 500-epoch model 2-3 minutes.
MTT runs are refused: each shadow would need its own expert buffer.
"""
from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import asdict, dataclass
from typing import Callable, Optional, Tuple

import torch

from ..atomic import atomic_path, write_json_atomic
from ..distill import LOOPS
from ..distributed import current_world, gather_keyed
from ..evaluate import train_model
from ..init import initialize
from .attacks import model_scores

STATISTIC = "logit_conf"  # LiRA's statistic


@dataclass
class ShadowConfig:
    shadows: int = 8
    iterations: Optional[int] = None   # default: the run's
    epochs: Optional[int] = None       # default: the run's evaluation epochs
    seed: int = 0

    def check(self) -> None:
        if self.shadows < 2:
            raise ValueError(f"LiRA needs at least 2 shadow models, got --shadows {self.shadows}")
        for name in ("iterations", "epochs"):
            value = getattr(self, name)
            if value is not None and value < (0 if name == "iterations" else 1):
                raise ValueError(f"--shadow-{name} must be positive, got {value}")


def _record(cfg, shadow_cfg: ShadowConfig, pool_size: int) -> dict:
    # The number of shadows is left out: shadow s is the same whatever K, so K may grow.
    shadow = {k: v for k, v in asdict(shadow_cfg).items() if k != "shadows"}
    return {"run": {k: v for k, v in asdict(cfg).items() if k not in ("device", "baselines", "full_epochs")},
            "shadow": shadow, "pool": pool_size, "statistic": STATISTIC}


def _half(shadow_cfg: ShadowConfig, s: int, pool_size: int) -> torch.Tensor:
    """Shadow s's training half. Shadows come in pairs with complementary halves, so with an even
    K every candidate is "in" for exactly K/2 shadows and "out" for the others (online LiRA needs
    both for every candidate)."""
    g = torch.Generator().manual_seed(shadow_cfg.seed * 100003 + s // 2)
    mask = torch.zeros(pool_size, dtype=torch.bool)
    mask[torch.randperm(pool_size, generator=g)[: pool_size // 2]] = True
    return mask if s % 2 == 0 else ~mask


def shadow_statistics(out: str, cfg, pool_images: torch.Tensor, pool_labels: torch.Tensor, num_classes: int,
                      shadow_cfg: ShadowConfig, progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """(statistics (K, P), in_mask (K, P)) over the P pooled candidates, from the cached shadows of
    the run in `out` (RunConfig `cfg`), training the missing ones."""
    shadow_cfg.check()
    if cfg.method == "mtt":
        raise ValueError("LiRA shadows are not available for MTT runs: each shadow would need its own expert buffer")
    loop_cfg = cfg.loop()
    if shadow_cfg.iterations is not None:
        loop_cfg = dataclasses.replace(loop_cfg, iterations=shadow_cfg.iterations)
    eval_cfg = dataclasses.replace(cfg.eval, epochs=shadow_cfg.epochs or cfg.eval.epochs)
    bars = progress and current_world().main  # progress bars on rank 0 only

    def pipeline(s: int, x: torch.Tensor, y: torch.Tensor, checkpoint: str) -> torch.nn.Module:
        syn, syn_labels = initialize(x, y, cfg.ipc, cfg.init, strength=cfg.strength, seed=cfg.seed + s,
                                     num_classes=num_classes)
        images, _ = LOOPS[cfg.method](syn, syn_labels, x, y, num_classes, loop_cfg, checkpoint=checkpoint,
                                      resume=True, progress=bars)
        return train_model(images.detach(), syn_labels, num_classes, eval_cfg, seed=cfg.seed + 7919 * (s + 1))

    return cached_shadows(os.path.join(out, "shadows"), _record(cfg, shadow_cfg, len(pool_images)), pool_images,
                          pool_labels, shadow_cfg, pipeline, torch.device(cfg.device), progress)


def cached_shadows(folder: str, record: dict, pool_images: torch.Tensor, pool_labels: torch.Tensor,
                   shadow_cfg: ShadowConfig, pipeline: Callable, device: torch.device,
                   progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The shadow cache behind every LiRA audit: shadow s trains `pipeline(s, x, y, checkpoint)`
    on its half (x, y) of the pool and is saved as folder/shadow_s.pt with its in-mask and every
    candidate's statistic. `record` describes the pipeline; a folder made for another is refused."""
    world = current_world()
    os.makedirs(folder, exist_ok=True)
    meta_path = os.path.join(folder, "shadows.json")
    if os.path.exists(meta_path):
        old = json.load(open(meta_path))
        if old != json.loads(json.dumps(record)):
            raise ValueError(f"{folder} holds shadows made with other options ({old.get('shadow', old)}); move it "
                             "away or use the same --shadow-iterations, --shadow-epochs and --seed")
    elif world.main:
        write_json_atomic(meta_path, record)

    def shadow(s: int) -> dict:
        """Shadow s's in-mask and statistics, trained now (by the rank that owns s) or read back."""
        path = os.path.join(folder, f"shadow_{s}.pt")
        checkpoint = os.path.join(folder, f"shadow_{s}_checkpoint.pt")
        if not os.path.exists(path):
            if progress:
                print(f"audit: shadow {s + 1}/{shadow_cfg.shadows}" +
                      (f" (rank {world.rank})" if world.distributed else ""), flush=True)
            mask = _half(shadow_cfg, s, len(pool_images))
            model = pipeline(s, pool_images[mask].to(device), pool_labels[mask].to(device), checkpoint)
            statistic = model_scores(model, pool_images.to(device), pool_labels.to(device))[STATISTIC]
            with atomic_path(path) as tmp:
                torch.save({"in_mask": mask, "statistic": statistic.cpu()}, tmp)
            if os.path.exists(checkpoint):
                os.remove(checkpoint)
        return torch.load(path, map_location="cpu", weights_only=False)

    # Under torchrun each rank makes the shadows it owns (the folder must be one every rank sees).
    saved = gather_keyed(world, shadow_cfg.shadows, shadow)
    return torch.stack([x["statistic"] for x in saved]), torch.stack([x["in_mask"] for x in saved])
