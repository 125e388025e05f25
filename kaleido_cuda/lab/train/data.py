"""Datasets for distillation, as normalised tensors held in memory.

    ds = load_dataset("digits")            # bundled with scikit-learn, no download
    ds = load_dataset("cifar10", data_root="~/data")
    ds = load_dataset("imagefolder:/path/to/root")   # root/train/<class>/*, root/test/<class>/*

Every dataset comes back as a `Dataset`: float32 images (N, C, H, W) normalised with the training
set's per-channel mean and std, int64 labels, and what is needed to undo the normalisation (for
image grids and for SSIM, which compares images in [0, 1]).

'digits': scikit-learn's 1,797 handwritten digits (8x8, values 0..16, 10 classes). Values are
divided by 16, images are resized to 32x32 with bilinear interpolation (antialias off,
align_corners=False: the usual small-image resolution of the distillation literature, so the same
ConvNet depth 3 applies), and split 70/30 stratified by class with random_state=0 (1,257 training
and 540 test images). torchvision datasets are read from `data_root` with download=False: this tool
never downloads; a missing dataset raises an error saying where the files go.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F

TORCHVISION = {"mnist": "MNIST", "fashion_mnist": "FashionMNIST", "cifar10": "CIFAR10",
               "cifar100": "CIFAR100", "svhn": "SVHN"}
DATASETS = ("digits", *TORCHVISION, "imagefolder:PATH")
DIGITS_SIZE = 32


@dataclass
class Dataset:
    name: str
    train_images: torch.Tensor   # (N, C, H, W) float32, normalised
    train_labels: torch.Tensor   # (N,) int64
    test_images: torch.Tensor
    test_labels: torch.Tensor
    mean: Tuple[float, ...]      # per channel, of the training images in [0, 1]
    std: Tuple[float, ...]
    classes: List[str]

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def channels(self) -> int:
        return int(self.train_images.shape[1])

    @property
    def size(self) -> Tuple[int, int]:
        return int(self.train_images.shape[2]), int(self.train_images.shape[3])

    def denormalise(self, images: torch.Tensor) -> torch.Tensor:
        """Back to [0, 1] (clipped), e.g. for image grids and SSIM."""
        mean = torch.tensor(self.mean, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        std = torch.tensor(self.std, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
        return (images * std + mean).clamp(0, 1)

    def class_counts(self) -> torch.Tensor:
        return torch.bincount(self.train_labels, minlength=self.num_classes)


def _normalised(name, train, train_labels, test, test_labels, classes) -> Dataset:
    mean = train.mean(dim=(0, 2, 3))
    std = train.std(dim=(0, 2, 3)).clamp_min(1e-6)
    norm = lambda t: (t - mean.view(1, -1, 1, 1)) / std.view(1, -1, 1, 1)  # noqa: E731
    return Dataset(name, norm(train).contiguous(), train_labels.long(), norm(test).contiguous(), test_labels.long(),
                   tuple(mean.tolist()), tuple(std.tolist()), list(classes))


def digits_32() -> Tuple[torch.Tensor, torch.Tensor, List[str]]:
    """All of scikit-learn's 1,797 digits as (N, 1, 32, 32) floats in [0, 1] (values / 16, bilinear
    resize), their int64 labels and the class names; the one place the digits are read."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    images = torch.tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    images = F.interpolate(images, size=(DIGITS_SIZE, DIGITS_SIZE), mode="bilinear", align_corners=False,
                           antialias=False).clamp(0, 1)
    return images, torch.tensor(bunch.target, dtype=torch.int64), [str(c) for c in bunch.target_names]


def _digits() -> Dataset:
    from sklearn.model_selection import train_test_split

    images, labels, classes = digits_32()
    index = torch.arange(len(labels)).numpy()
    train_idx, test_idx = train_test_split(index, test_size=0.3, stratify=labels.numpy(), random_state=0)
    train_idx, test_idx = torch.from_numpy(train_idx), torch.from_numpy(test_idx)
    return _normalised("digits", images[train_idx], labels[train_idx], images[test_idx], labels[test_idx], classes)


def _stack(dataset) -> Tuple[torch.Tensor, torch.Tensor]:
    """Reads a torchvision dataset (transform=ToTensor) into two tensors."""
    loader = torch.utils.data.DataLoader(dataset, batch_size=1024, shuffle=False, num_workers=0)
    xs, ys = [], []
    for x, y in loader:
        xs.append(x)
        ys.append(torch.as_tensor(y))
    return torch.cat(xs), torch.cat(ys)


def _torchvision(name: str, data_root: Optional[str]) -> Dataset:
    import torchvision
    from torchvision.transforms import ToTensor

    if data_root is None:
        raise ValueError(f"dataset {name!r} needs --data-root: the folder that holds torchvision's "
                         f"{TORCHVISION[name]} files (this tool never downloads)")
    root = os.path.expanduser(data_root)
    cls = getattr(torchvision.datasets, TORCHVISION[name])
    try:
        if name == "svhn":
            train, test = cls(root, split="train", transform=ToTensor()), cls(root, split="test", transform=ToTensor())
        else:
            train, test = cls(root, train=True, transform=ToTensor()), cls(root, train=False, transform=ToTensor())
    except RuntimeError as exc:  # torchvision: "Dataset not found. You can use download=True ..."
        raise FileNotFoundError(
            f"dataset {name!r} is not in {root}: put torchvision's {TORCHVISION[name]} files there (for "
            f"example run torchvision.datasets.{TORCHVISION[name]}({root!r}, download=True) once on a "
            f"machine with internet access); torchvision said: {exc}") from None
    x_train, y_train = _stack(train)
    x_test, y_test = _stack(test)
    classes = getattr(train, "classes", None) or [str(c) for c in range(int(y_train.max()) + 1)]
    return _normalised(name, x_train, y_train, x_test, y_test, classes)


def _imagefolder(path: str) -> Dataset:
    import torchvision
    from torchvision.transforms import ToTensor

    root = os.path.expanduser(path)
    splits = [os.path.join(root, s) for s in ("train", "test")]
    missing = [s for s in splits if not os.path.isdir(s)]
    if missing:
        raise FileNotFoundError(f"imagefolder:{path}: expected the folders {splits} with one subfolder per "
                                f"class; missing {missing}")
    train = torchvision.datasets.ImageFolder(splits[0], transform=ToTensor())
    test = torchvision.datasets.ImageFolder(splits[1], transform=ToTensor())
    if train.classes != test.classes:
        raise ValueError(f"imagefolder:{path}: train and test have different classes "
                         f"({train.classes} vs {test.classes})")
    x_train, y_train = _stack(train)
    x_test, y_test = _stack(test)
    return _normalised(f"imagefolder:{path}", x_train, y_train, x_test, y_test, train.classes)


def load_dataset(name: str, data_root: Optional[str] = None) -> Dataset:
    """One of DATASETS; see the module docstring."""
    if name == "digits":
        return _digits()
    if name in TORCHVISION:
        return _torchvision(name, data_root)
    if isinstance(name, str) and name.startswith("imagefolder:") and len(name) > len("imagefolder:"):
        return _imagefolder(name[len("imagefolder:"):])
    raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
