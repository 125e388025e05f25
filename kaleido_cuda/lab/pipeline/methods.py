"""What `kaleido distill` does before and instead of a loop, per method: the checks that need the
data (run before anything is written), the initial set with the canaries it records, and RDED,
which builds its set from the observer's crops instead of optimising one.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

import torch

from ...init import initial_indices, initialize
from ..distill.common import History
from ..distill.datm import default_label_init, eligible_images, resolved
from ..distill.observer import network, observer_for, save_observer
from ..distill.rded import rded_set
from ..files.layout import RunFolder
from .config import RunConfig


@dataclass
class Prepared:
    """What the data-dependent checks computed, for the run to use."""
    eligible: Optional[torch.Tensor] = None   # DATM: the images the first expert classifies correctly
    observer: Optional[dict] = None           # RDED: the observer checkpoint's content
    observer_source: str = ""
    notes: dict = field(default_factory=dict)


# DATM's options that resolve() fills in when they are left None: on --resume from the folder's
# config.json, else from the IPC (the window) or the initialisation (label_init).
DATM_RESOLVED = ("min_start_epoch", "initial_max_start_epoch", "max_start_epoch", "expansion_end", "label_init")


def resolve(cfg: RunConfig, size, saved: Optional[dict] = None) -> None:
    """Fills in the options that depend on the IPC, the buffer and the iterations (DATM's window)
    or the image side (RDED's factor), and DATM's label_init (by cfg.init), checked. saved: the
    config.json of the run being resumed, whose values fill in DATM's options left None (a run
    resumed with more iterations keeps its schedule)."""
    if cfg.method == "rded":
        cfg.rded.resolve_factor(tuple(size))
    if cfg.method != "datm":
        return
    if saved is not None:
        saved = RunConfig.from_dict(saved).datm  # a folder from before label_init: DATM's rule
        for name in DATM_RESOLVED:
            if getattr(cfg.datm, name) is None:
                setattr(cfg.datm, name, getattr(saved, name))
    if cfg.datm.label_init is None:
        cfg.datm.label_init = default_label_init(cfg.init)
    cfg.datm = resolved(cfg.datm, cfg.ipc)


def prepare(cfg: RunConfig, ds, x: torch.Tensor, y: torch.Tensor) -> Prepared:
    """Checks what needs the data, raising a ValueError naming the problem before the run writes
    anything (cfg already `resolve`d)."""
    out = Prepared()
    if cfg.method == "datm":
        out.eligible = eligible_images(cfg.datm, x, y, ds.num_classes)
        if cfg.init != "noise":  # raises when a class has too few eligible images
            initial_indices(ds.train_labels, cfg.ipc, cfg.init, ds.num_classes, cfg.seed, out.eligible)
        out.notes["eligible"] = int(out.eligible.sum())
    if cfg.method == "rded":
        r = cfg.rded
        r.check(tuple(x.shape[-2:]))
        r.check_ipc(cfg.ipc, torch.bincount(ds.train_labels, minlength=ds.num_classes).tolist())
        out.observer, out.observer_source = observer_for(
            r.observer, (x, y, ds.test_images.to(x.device), ds.test_labels.to(x.device)), ds.num_classes,
            cfg.dataset, r.model, r.width, r.depth, r.observer_epochs, cfg.seed)
    return out


def initial_set(cfg: RunConfig, ds, x: torch.Tensor, y: torch.Tensor, prepared: Prepared):
    """(initial images, labels, init_indices) of an optimising method: init_indices are the
    training images the initialisation selected, the canaries of an audit."""
    syn, syn_labels = initialize(x, y, cfg.ipc, cfg.init, strength=cfg.strength, seed=cfg.seed,
                                 num_classes=ds.num_classes, views=cfg.kt_views, families=cfg.kt_families,
                                 eligible=prepared.eligible)
    indices = initial_indices(ds.train_labels, cfg.ipc, cfg.init, ds.num_classes, cfg.seed, prepared.eligible)
    return syn, syn_labels, indices


def loop_inputs(cfg: RunConfig, x: torch.Tensor, init_indices: list) -> dict:
    """The inputs a loop takes beyond the common ones: DATM's label_init 'sources' labels each
    image from the training image it was made from (row-aligned with the initial set)."""
    if cfg.method == "datm" and cfg.datm.label_init == "sources":
        return {"sources": x[torch.as_tensor(init_indices, dtype=torch.long, device=x.device)]}
    return {}


def rded_run(cfg: RunConfig, ds, x: torch.Tensor, y: torch.Tensor, prepared: Prepared, out: str):
    """RDED's set: (images, labels, history, learned, init_indices). The observer is saved in the
    run folder (observer.pt), the teacher of the evaluation; learned records the source training
    image of every tile ("tile_sources", (N, factor^2), -1 for noise tiles)."""
    start = time.perf_counter()
    observer = network(prepared.observer, x.device)
    images, syn_labels, sources = rded_set(observer, x, y, cfg.ipc, ds.num_classes, cfg.rded, cfg.init,
                                           cfg.strength, cfg.kt_views, cfg.kt_families)
    history = History(seconds=time.perf_counter() - start)
    save_observer(RunFolder(out).observer, prepared.observer)
    canaries = sorted({int(i) for i in sources.flatten().tolist() if i >= 0})
    learned = {"tile_sources": sources.cpu(), "teacher": "observer.pt",
               "observer": {**prepared.observer["meta"], "source": prepared.observer_source}}
    return images, syn_labels, history, learned, canaries
