"""Train K models of one architecture at once: the evaluation protocol of evaluate.train_model,
vectorised over models with torch.func (stack_module_state + functional_call + vmap).

Audits and evaluation train many small ConvNets; one after another, each step of each model pays
the per-op overhead of a small batch. Here one step runs all K models together. Each model keeps
everything it would have alone, so the result equals K calls of train_model with the same seeds
(to float tolerance; tests/test_batched.py):
- its initialisation (torch.manual_seed(seed) before building it);
- its data order (a torch.Generator seeded with its seed);
- its augmentation draws (DSA with per-sample draws from torch's global RNG: the RNG state of each
  model is swapped in around its own DiffAugment call);
- its own training subset (`subsets`, for shadow models trained on different halves);
- SGD with momentum and weight decay and the step-down of the learning rate halfway, written out
  as torch.optim.SGD and MultiStepLR compute them.
Models with buffers (batch norm) are refused: their running statistics are updated in place,
which vmap does not carry.

Measured on this project's 2-core CPU (benchmarks/results/bench_batched_cpu.md): 8 ConvNets
together are about 2x *slower* than one after another (0.46x; 3-5x slower on the machine of
2026-11-29). One model's step is already 93% kernels (60% convolutions), so running models together
can save at most the other 7% (a 1.07x ceiling), while vmap turns the convolutions into grouped
ones and the instance norm into a chain of elementwise ops that cost more than that. Nothing uses
this on the CPU for that reason; on a GPU, where one small model leaves most of the device idle,
it is unmeasured.
"""
from __future__ import annotations

import copy
from typing import Callable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch.func import functional_call, grad, stack_module_state, vmap

from .dsa import DEFAULT_STRATEGY, DiffAugment, ParamDiffAug
from .evaluate import EVAL_AUG_MODE, EvalConfig
from .models import get_model


def _build(cfg: EvalConfig, channels: int, num_classes: int, size, seed: int, device) -> torch.nn.Module:
    torch.manual_seed(seed)
    return get_model(cfg.model, channels, num_classes, size, cfg.width, cfg.depth).to(device)


def train_models(images: torch.Tensor, labels: torch.Tensor, num_classes: int, cfg: EvalConfig,
                 seeds: Sequence[int], subsets: Optional[torch.Tensor] = None,
                 on_epoch: Optional[Callable[[int], None]] = None) -> List[torch.nn.Module]:
    """len(seeds) fresh models, model k trained on images[subsets[k]] (all images when subsets is
    None; subsets: (K, n) int64, one row per model) with seed seeds[k], as train_model would."""
    seeds = list(seeds)
    k_models = len(seeds)
    if k_models < 1:
        raise ValueError("train_models: give at least one seed")
    if subsets is None:
        subsets = torch.arange(len(images)).expand(k_models, -1)
    if subsets.dim() != 2 or subsets.shape[0] != k_models:
        raise ValueError(f"train_models: subsets must be (K={k_models}, n), got {tuple(subsets.shape)}")
    device = images.device
    size = tuple(images.shape[-2:])
    saved_state = torch.get_rng_state()  # restored at the end: the caller's RNG is left as it was
    models, rng_states = [], []
    for seed in seeds:
        models.append(_build(cfg, images.shape[1], num_classes, size, seed, device))
        rng_states.append(torch.get_rng_state())  # where this model's augmentation draws continue
    if any(True for _ in models[0].buffers()):
        torch.set_rng_state(saved_state)
        raise ValueError(f"train_models: {cfg.model} has buffers (batch norm); train it with evaluate.train_model")
    params, _ = stack_module_state(models)
    base = copy.deepcopy(models[0]).to("meta")

    def loss_of(p, x, y):
        return F.cross_entropy(functional_call(base, p, (x,)), y)

    step_grads = vmap(grad(loss_of))
    momentum = {name: None for name in params}
    generators = [torch.Generator().manual_seed(seed) for seed in seeds]
    param = ParamDiffAug()
    param.aug_mode = EVAL_AUG_MODE
    n = subsets.shape[1]
    subsets = subsets.to(device)
    try:
        for epoch in range(cfg.epochs):
            lr = cfg.lr * (0.1 if epoch >= cfg.epochs // 2 else 1.0)  # MultiStepLR([epochs // 2], 0.1)
            orders = [torch.randperm(n, generator=g).to(device) for g in generators]
            for start in range(0, n, cfg.batch_size):
                xs, ys = [], []
                for k in range(k_models):
                    idx = subsets[k][orders[k][start:start + cfg.batch_size]]
                    x = images[idx]
                    if cfg.augment:
                        torch.set_rng_state(rng_states[k])
                        x = DiffAugment(x, DEFAULT_STRATEGY, seed=-1, param=param, impl=cfg.impl)
                        rng_states[k] = torch.get_rng_state()
                    xs.append(x)
                    ys.append(labels[idx])
                grads = step_grads(params, torch.stack(xs), torch.stack(ys))
                with torch.no_grad():
                    for name, p in params.items():  # torch.optim.SGD: weight decay, then momentum
                        d = grads[name] + cfg.weight_decay * p
                        buf = momentum[name]
                        momentum[name] = d.clone() if buf is None else buf.mul_(cfg.momentum).add_(d)
                        p.sub_(lr * momentum[name])
            if on_epoch is not None:
                on_epoch(epoch)
    finally:
        torch.set_rng_state(saved_state)
    for k, model in enumerate(models):
        with torch.no_grad():
            for name, p in model.named_parameters():
                p.copy_(params[name][k])
    return models
