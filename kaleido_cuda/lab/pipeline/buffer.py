"""`kaleido buffer`: expert trajectories for MTT (distill/buffer.py), on a dataset, in a buffer
folder (by default runs/buffers/DATASET_MODEL, where `kaleido distill --method mtt` looks)."""
from __future__ import annotations

import dataclasses
import os
from typing import Optional

import torch

from ..distill import BufferConfig, train_buffer
from ..distributed import check_same_options, init_world
from ..files.layout import default_buffer
from ..train.data import load_dataset


def buffer_run(cfg: BufferConfig, dataset: str = "digits", data_root: Optional[str] = None, device: str = "cpu",
               out: Optional[str] = None, progress: bool = True) -> dict:
    """Trains (or completes) the buffer; returns buffer.json's content with "out", its folder. Under
    torchrun the experts are split across the ranks."""
    cfg.check()
    ds = load_dataset(dataset, data_root)
    dev = torch.device(device)
    out = out or default_buffer(dataset, cfg.model)
    world = init_world(device)
    check_same_options(world, {"config": dataclasses.asdict(cfg), "dataset": dataset, "out": os.path.abspath(out)})
    meta = train_buffer(ds.train_images.to(dev), ds.train_labels.to(dev), ds.test_images.to(dev),
                        ds.test_labels.to(dev), ds.num_classes, cfg, out, dataset=dataset, progress=progress,
                        world=world)
    return {**meta, "out": out}
