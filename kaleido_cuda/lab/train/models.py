"""Networks of the distillation literature: the ConvNet every method is measured with, and the
variants used to check that a distilled set transfers across architectures.

Every model has `embed(x)` (the features before the classifier, used by distribution matching) and
`forward(x)` (logits).
"""
from __future__ import annotations

import math
from typing import Optional, Tuple

import torch
from torch import nn

MODELS = ("convnet", "convnet_bn", "convnet_nn", "mlp", "resnet18_bn")


def default_depth(size: Tuple[int, int]) -> int:
    """ConvNet depth for an image size: each block halves the side, down to about 4 pixels
    (32 -> 3 blocks, 64 -> 4, 128 -> 5; MNIST's 28 -> 3)."""
    return max(1, round(math.log2(min(size) / 4)))


def _norm(kind: str, width: int) -> nn.Module:
    if kind == "instancenorm":  # per-sample, per-channel statistics with a learned affine
        return nn.GroupNorm(width, width, affine=True)
    if kind == "batchnorm":
        return nn.BatchNorm2d(width)
    if kind == "none":
        return nn.Identity()
    raise ValueError(f"unknown norm {kind!r}; use instancenorm, batchnorm or none")


class ConvNet(nn.Module):
    """depth x [3x3 conv (width channels), norm, ReLU, 2x2 average pooling], then a linear classifier.
    A 28x28 input gets 3 pixels of padding in the first conv (to 32x32), as in DC's code."""

    def __init__(self, channels: int, num_classes: int, size: Tuple[int, int], width: int = 128,
                 depth: Optional[int] = None, norm: str = "instancenorm"):
        super().__init__()
        depth = default_depth(size) if depth is None else depth
        h, w = size
        layers, c = [], channels
        for d in range(depth):
            pad = 3 if d == 0 and (h, w) == (28, 28) else 1
            layers += [nn.Conv2d(c, width, 3, padding=pad), _norm(norm, width), nn.ReLU(inplace=True),
                       nn.AvgPool2d(2, 2)]
            h, w = (h + 2 * pad - 2) // 2, (w + 2 * pad - 2) // 2
            if min(h, w) < 1:
                raise ValueError(f"ConvNet: depth {depth} is too deep for images of size {size}")
            c = width
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Linear(width * h * w, num_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.embed(x))


class MLP(nn.Module):
    def __init__(self, channels: int, num_classes: int, size: Tuple[int, int], width: int = 128):
        super().__init__()
        self.body = nn.Sequential(nn.Flatten(), nn.Linear(channels * size[0] * size[1], width), nn.ReLU(inplace=True),
                                  nn.Linear(width, width), nn.ReLU(inplace=True))
        self.classifier = nn.Linear(width, num_classes)

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.embed(x))


class ResNet18BN(nn.Module):
    """torchvision's ResNet-18 with batch norm, with a 3x3 stride-1 stem and no max pooling, the
    usual adaptation to 32x32 images."""

    def __init__(self, channels: int, num_classes: int):
        super().__init__()
        from torchvision.models import resnet18

        net = resnet18(num_classes=num_classes)
        net.conv1 = nn.Conv2d(channels, 64, 3, stride=1, padding=1, bias=False)
        net.maxpool = nn.Identity()
        self.classifier = net.fc
        net.fc = nn.Identity()
        self.body = net

    def embed(self, x):
        return self.body(x)

    def forward(self, x):
        return self.classifier(self.embed(x))


def get_model(name: str, channels: int, num_classes: int, size: Tuple[int, int], width: int = 128,
              depth: Optional[int] = None) -> nn.Module:
    """One of MODELS: 'convnet' (instance norm, the default everywhere), 'convnet_bn', 'convnet_nn'
    (no norm), 'mlp', 'resnet18_bn'."""
    if name == "convnet":
        return ConvNet(channels, num_classes, size, width, depth, "instancenorm")
    if name == "convnet_bn":
        return ConvNet(channels, num_classes, size, width, depth, "batchnorm")
    if name == "convnet_nn":
        return ConvNet(channels, num_classes, size, width, depth, "none")
    if name == "mlp":
        return MLP(channels, num_classes, size, width)
    if name == "resnet18_bn":
        return ResNet18BN(channels, num_classes)
    raise ValueError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
