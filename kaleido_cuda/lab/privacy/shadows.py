"""LiRA's shadow models (Carlini et al. 2022, adapted to distillation as in the dataset-distillation
privacy critiques): each shadow repeats the audited pipeline on a random half of the pooled
candidates (members and non-members), then trains a model (on its distilled set, for a run) and
records every candidate's statistic on that model. The pipeline is the caller's
(pipeline/audit.py repeats a distillation run, pipeline/references.py a training run).

- Shadows 2j and 2j + 1 train on complementary random halves (a generator seeded by (seed, j)),
  so every candidate is in half of them and out of the others.
- Each finished shadow is saved as RUN/shadows/shadow_S.pt (its half and its statistics), written
  atomically; RUN/shadows/shadows.json holds the options, written before the first shadow, and a
  folder made with other options is refused (a larger K reuses the shadows already made). An
  interrupted audit resumes at the next shadow, and an interrupted shadow's distillation resumes
  from its checkpoint (RUN/shadows/shadow_S_checkpoint.pt).
- Cost: one pipeline (a distillation and a model, for a run) per shadow.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Callable, Optional, Tuple

import torch

from ..distributed import current_world, gather_keyed
from ..files.atomic import atomic_path, write_json_atomic
from ..files.layout import RunFolder
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


def _half(shadow_cfg: ShadowConfig, s: int, pool_size: int) -> torch.Tensor:
    """Shadow s's training half. Shadows come in pairs with complementary halves, so with an even
    K every candidate is "in" for exactly K/2 shadows and "out" for the others (online LiRA needs
    both for every candidate)."""
    g = torch.Generator().manual_seed(shadow_cfg.seed * 100003 + s // 2)
    mask = torch.zeros(pool_size, dtype=torch.bool)
    mask[torch.randperm(pool_size, generator=g)[: pool_size // 2]] = True
    return mask if s % 2 == 0 else ~mask


def cached_shadows(run: RunFolder, record: dict, pool_images: torch.Tensor, pool_labels: torch.Tensor,
                   shadow_cfg: ShadowConfig, pipeline: Callable, device: torch.device,
                   progress: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """The shadow cache behind every LiRA audit, in the shadows/ folder of `run`: shadow s trains
    `pipeline(s, x, y, checkpoint)` on its half (x, y) of the pool and is saved as shadow_s.pt with
    its in-mask and every candidate's statistic. `record` describes the pipeline; a folder made for
    another is refused."""
    world = current_world()
    folder, meta_path = run.shadows, run.shadow_meta
    os.makedirs(folder, exist_ok=True)
    if os.path.exists(meta_path):
        old = json.load(open(meta_path))
        if old != json.loads(json.dumps(record)):
            raise ValueError(f"{folder} holds shadows made with other options ({old.get('shadow', old)}); move it "
                             "away or use the same --shadow-iterations, --shadow-epochs and --seed")
    elif world.main:
        write_json_atomic(meta_path, record)

    def shadow(s: int) -> dict:
        """Shadow s's in-mask and statistics, trained now (by the rank that owns s) or read back."""
        path, checkpoint = run.shadow(s), run.shadow_checkpoint(s)
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
