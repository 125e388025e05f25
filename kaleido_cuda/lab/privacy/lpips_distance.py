"""The paper's visual-privacy metric: min-LPIPS, the mean over synthetic images of the smallest
LPIPS distance (Zhang et al. 2018, the `lpips` package, AlexNet backbone) to any training image,
beside the same figure for held-out real images (the level of an image that copies nothing).

Nothing is downloaded: the AlexNet backbone is torchvision's ImageNet weights, read from the torch
hub cache (where torchvision puts them) or from a file given by the user; LPIPS's own linear heads
ship with the package. Without weights the report says, in one line, that LPIPS was skipped and why.
"""
from __future__ import annotations

import os
from typing import Optional, Tuple

import torch

ALEXNET_FILE = "alexnet-owt-7be5be79.pth"  # torchvision's AlexNet ImageNet weights, as torch.hub names them
HELDOUT_SAMPLE = 100  # held-out images scored for the reference level (the full split costs 5x more)


def find_weights(path: Optional[str] = None) -> Tuple[Optional[str], str]:
    """(the AlexNet weights file, "") or (None, why LPIPS is skipped). A given path that is not a
    file is a ValueError: the user asked for LPIPS."""
    if path is not None:
        if not os.path.isfile(path):
            raise ValueError(f"--lpips-weights: no such file {path}")
        return path, ""
    try:
        import lpips  # noqa: F401
    except ImportError:
        return None, "the lpips package is not installed (pip install lpips)"
    cached = os.path.join(torch.hub.get_dir(), "checkpoints", ALEXNET_FILE)
    if os.path.isfile(cached):
        return cached, ""
    return None, f"no AlexNet weights in the torch hub cache ({cached}) and no --lpips-weights given; nothing is downloaded"


def load_metric(path: str):
    """lpips.LPIPS on AlexNet with the backbone read from `path` (a torchvision AlexNet state dict);
    a ValueError names a file that is not one."""
    import lpips

    metric = lpips.LPIPS(net="alex", pretrained=True, pnet_rand=True, verbose=False)  # heads from the package
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # noqa: BLE001: any unreadable file is the same user error
        raise ValueError(f"--lpips-weights: {path} is not a torch weights file ({type(e).__name__})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else None
    target = metric.net.state_dict()  # keys 'sliceN.I.weight' for torchvision's 'features.I.weight'
    wanted = {k: "features." + k.split(".", 1)[1] for k in target}
    if state is None or any(v not in state for v in wanted.values()):
        raise ValueError(f"--lpips-weights: {path} does not hold torchvision AlexNet weights (features.*)")
    try:
        metric.net.load_state_dict({k: state[v] for k, v in wanted.items()})
    except RuntimeError:
        raise ValueError(f"--lpips-weights: {path} holds weights of another shape than AlexNet's") from None
    return metric.eval()


MIN_SIDE = 32  # AlexNet's five stages need at least this many pixels a side


def _lpips_input(images01: torch.Tensor) -> torch.Tensor:
    """[0, 1] images of 1 or 3 channels as LPIPS reads them: 3 channels in [-1, 1], and smaller
    than 32 x 32 (MNIST's 28) upsampled bilinearly to 32 a side."""
    if images01.shape[1] not in (1, 3):
        raise ValueError(f"min-LPIPS needs 1- or 3-channel images, got {images01.shape[1]} channels")
    if min(images01.shape[-2:]) < MIN_SIDE:
        images01 = torch.nn.functional.interpolate(images01, size=(MIN_SIDE, MIN_SIDE), mode="bilinear",
                                                   align_corners=False)
    return images01.expand(-1, 3, -1, -1) * 2 - 1


@torch.no_grad()
def min_lpips(metric, queries01: torch.Tensor, references01: torch.Tensor, batch: int = 1024) -> torch.Tensor:
    """For each query image, the smallest LPIPS distance to any reference image (both in [0, 1])."""
    q, r = _lpips_input(queries01.float()), _lpips_input(references01.float())
    best = torch.empty(len(q))
    for i in range(len(q)):
        distances = [metric(q[i:i + 1].expand(len(part), -1, -1, -1), part).flatten()
                     for part in r.split(batch)]
        best[i] = torch.cat(distances).min()
    return best


def lpips_report(images01: torch.Tensor, train01: torch.Tensor, heldout01: torch.Tensor,
                 weights: Optional[str] = None) -> dict:
    """metrics.json's LPIPS figures for a synthetic set, or {"lpips": "skipped: ..."}."""
    path, why = find_weights(weights)
    if path is None:
        return {"lpips": f"skipped: {why}"}
    metric = load_metric(path)
    syn = min_lpips(metric, images01, train01)
    held = min_lpips(metric, heldout01[:HELDOUT_SAMPLE], train01)
    return {"min_lpips_mean": float(syn.mean()), "min_lpips_min": float(syn.min()),
            "heldout_min_lpips_mean": float(held.mean()), "lpips_weights": path}
