"""Distilled sets made by other tools, for `kaleido audit --synthetic FILE --dataset NAME`.

Accepted files (torch.save'd):
- DC-benchmark's main_DM.py / main.py `data_save`: a list of [image_syn, label_syn] pairs, one
  per experiment (`index` picks one; the last by default);
- MTT's images_best.pt (a tensor) with labels_best.pt beside it;
- a dict with images under "images" or "image_syn" and labels under "labels" or "label_syn"
  (this project's synthetic.pt is one).
Pixels: "normalised" (default: the dataset's per-channel mean and std, which DC, DSA, DM and MTT
without ZCA use) or "01" (images in [0, 1]). ZCA-whitened sets are not supported. The pipeline
that made a foreign set is unknown, so its initialisation images are too: no canaries.
"""
from __future__ import annotations

import os
from typing import Tuple

import torch

PIXEL_RANGES = ("normalised", "01")


def _from_object(obj, path: str, index: int):
    if isinstance(obj, dict):
        images = next((obj[k] for k in ("images", "image_syn") if k in obj), None)
        labels = next((obj[k] for k in ("labels", "label_syn") if k in obj), None)
        if images is None or labels is None:
            raise ValueError(f"{path}: a dict without 'images'/'image_syn' and 'labels'/'label_syn' (keys: {sorted(obj)})")
        return images, labels
    if isinstance(obj, (list, tuple)) and len(obj) == 2 and all(torch.is_tensor(t) for t in obj):
        return obj[0], obj[1]
    if isinstance(obj, (list, tuple)) and obj and all(isinstance(e, (list, tuple)) and len(e) == 2 for e in obj):
        if not -len(obj) <= index < len(obj):
            raise ValueError(f"{path}: holds {len(obj)} experiments; --index {index} is not one of them")
        return obj[index][0], obj[index][1]
    if torch.is_tensor(obj):
        labels_path = os.path.join(os.path.dirname(path), "labels_best.pt")
        if not os.path.exists(labels_path):
            raise ValueError(f"{path}: a bare image tensor needs its labels beside it in labels_best.pt (as MTT saves)")
        return obj, torch.load(labels_path, map_location="cpu", weights_only=False)
    raise ValueError(f"{path}: not a distilled set this command reads (a DC-benchmark data_save list, MTT's "
                     "images_best.pt, or a dict of images and labels)")


def load_foreign_set(path: str, ds, pixel_range: str = "normalised", index: int = -1) -> Tuple[torch.Tensor, torch.Tensor]:
    """(images normalised as ds is, int64 labels) from a file made by another tool; ValueError on
    any mismatch with the dataset."""
    if pixel_range not in PIXEL_RANGES:
        raise ValueError(f"unknown pixel range {pixel_range!r}; choose {' or '.join(PIXEL_RANGES)}")
    if not os.path.exists(path):
        raise FileNotFoundError(f"{path}: no such file")
    images, labels = _from_object(torch.load(path, map_location="cpu", weights_only=False), path, index)
    images, labels = torch.as_tensor(images).detach().float().cpu(), torch.as_tensor(labels).detach().cpu()
    if labels.dim() == 2:  # soft or one-hot labels: their argmax
        labels = labels.argmax(1)
    if images.dim() != 4:
        raise ValueError(f"{path}: images must be (N, C, H, W), got shape {tuple(images.shape)}")
    if images.shape[1] != ds.channels or tuple(images.shape[2:]) != ds.size:
        raise ValueError(f"{path}: images are {tuple(images.shape[1:])} but {ds.name} images are "
                         f"{(ds.channels, *ds.size)}")
    if labels.shape != images.shape[:1] or labels.is_floating_point():
        raise ValueError(f"{path}: need one integer label per image, got labels of shape {tuple(labels.shape)}")
    if len(labels) and (int(labels.min()) < 0 or int(labels.max()) >= ds.num_classes):
        raise ValueError(f"{path}: labels span {int(labels.min())}..{int(labels.max())}, but {ds.name} has "
                         f"{ds.num_classes} classes")
    if not torch.isfinite(images).all():
        raise ValueError(f"{path}: images hold non-finite values")
    if pixel_range == "01":
        mean = torch.tensor(ds.mean).view(1, -1, 1, 1)
        std = torch.tensor(ds.std).view(1, -1, 1, 1)
        images = (images - mean) / std
    return images, labels.long()
