"""RDED's observer: a network trained on the real training split that scores crops (rded.py) and,
at evaluation, teaches the models trained on the distilled set (protocol 'kd').

A checkpoint is a torch file {"state_dict": ..., "meta": {dataset, channels, size, num_classes,
model, width, depth, epochs, test_accuracy}}. `observer_for` reads the one given (after checking
that it was made for this data), else the shared cache's (KALEIDO_CACHE_DIR/observers, keyed by the
training data's bytes, the training code and the options, as files/cache.py keys its entries), else
trains one with the evaluation protocol (hard labels, DSA) and stores it there.
"""
from __future__ import annotations

import os
from typing import Tuple

import torch

from ..files.atomic import atomic_path
from ..files.cache import cache_dir, content_key
from ..train import evaluate as evaluate_module
from ..train.evaluate import EvalConfig, accuracy, train_model
from ..train.models import get_model


def _meta_wanted(dataset: str, images: torch.Tensor, num_classes: int) -> dict:
    return {"dataset": dataset, "channels": int(images.shape[1]), "size": list(images.shape[-2:]),
            "num_classes": int(num_classes)}


def check_observer_file(path: str, dataset: str, images: torch.Tensor, num_classes: int) -> dict:
    """The checkpoint's content, after checking that it exists and was made for this data."""
    if not os.path.isfile(path):
        raise FileNotFoundError(f"rded: no observer checkpoint at {path!r}")
    try:
        saved = torch.load(path, map_location="cpu", weights_only=False)
        meta = saved["meta"]
        saved["state_dict"]
    except Exception as exc:  # any unreadable or foreign file: one clear line
        raise ValueError(f"rded: {path!r} is not an observer checkpoint ({type(exc).__name__}: {exc})") from None
    want = _meta_wanted(dataset, images, num_classes)
    have = {k: meta.get(k) for k in want}
    if have != want:
        raise ValueError(f"rded: the observer in {path!r} was made for {have}, this run needs {want}")
    return saved


def network(saved: dict, device) -> torch.nn.Module:
    """The observer network of a checkpoint's content, in eval mode."""
    meta = saved["meta"]
    net = get_model(meta["model"], meta["channels"], meta["num_classes"], tuple(meta["size"]), meta["width"],
                    meta["depth"])
    net.load_state_dict(saved["state_dict"])
    return net.to(device).eval()


def train_observer(images: torch.Tensor, labels: torch.Tensor, test_images: torch.Tensor, test_labels: torch.Tensor,
                   num_classes: int, dataset: str, model: str, width: int, depth, epochs: int, seed: int) -> dict:
    """A new observer checkpoint's content: the evaluation protocol on the real training split."""
    cfg = EvalConfig(model=model, width=width, depth=depth, epochs=epochs, runs=1)
    net = train_model(images, labels, num_classes, cfg, seed=seed)
    meta = {**_meta_wanted(dataset, images, num_classes), "model": model, "width": width, "depth": depth,
            "epochs": epochs, "seed": seed, "test_accuracy": accuracy(net, test_images, test_labels)}
    return {"state_dict": {k: v.cpu() for k, v in net.state_dict().items()}, "meta": meta}


def observer_for(path: str, data: Tuple[torch.Tensor, ...], num_classes: int, dataset: str, model: str, width: int,
                 depth, epochs: int, seed: int) -> Tuple[dict, str]:
    """(checkpoint content, where it came from): the file `path` if given, else the shared cache's
    observer for this data and these options, trained and cached on a miss."""
    images, labels, test_images, test_labels = data
    if path:
        return check_observer_file(path, dataset, images, num_classes), path
    options = {"kind": "rded observer", "dataset": dataset, "model": model, "width": width, "depth": depth,
               "epochs": epochs, "seed": seed, "classes": num_classes}
    key = content_key((images.cpu(), labels.cpu()), (evaluate_module,), options)
    cached = os.path.join(cache_dir(), "observers", f"{key[:24]}.pt")
    if os.path.exists(cached):
        try:
            return check_observer_file(cached, dataset, images, num_classes), cached
        except ValueError:  # a damaged entry: train again
            pass
    saved = train_observer(images, labels, test_images, test_labels, num_classes, dataset, model, width, depth,
                           epochs, seed)
    try:
        os.makedirs(os.path.dirname(cached), exist_ok=True)
        save_observer(cached, saved)
    except OSError:  # a read-only cache: the run keeps its own copy all the same
        return saved, "trained (not cached)"
    return saved, cached


def save_observer(path: str, saved: dict) -> None:
    with atomic_path(path) as tmp:
        torch.save(saved, tmp)
