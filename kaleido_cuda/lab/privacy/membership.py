"""Who counts as a member when a distilled set is audited for membership inference.

- Members: the training images the distillation read (the dataset's whole training split).
- Non-members: images of the same distribution that neither the distillation nor the audited
  models trained on: the dataset's held-out test split (for the digits, the 540 images of the
  stratified 30%). Evaluation only tests on them.
- Canaries: the members selected for real or KT initialisation (`init.select_real`, recorded in
  synthetic.pt as "init_indices"). They are the images a distilled set is most likely to give
  away, so the audit scores them separately against the same non-members. Noise initialisation
  selects none.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class MembershipSplit:
    member_images: torch.Tensor      # (M, C, H, W), normalised as the dataset is
    member_labels: torch.Tensor
    nonmember_images: torch.Tensor
    nonmember_labels: torch.Tensor
    canaries: torch.Tensor           # (K,) int64 indices into the members (may be empty)

    @property
    def canary_images(self) -> torch.Tensor:
        return self.member_images[self.canaries]

    @property
    def canary_labels(self) -> torch.Tensor:
        return self.member_labels[self.canaries]

    def pooled(self):
        """(images, labels) of every candidate: the members, then the non-members (the order of
        every attack's scores)."""
        return (torch.cat([self.member_images, self.nonmember_images]),
                torch.cat([self.member_labels, self.nonmember_labels]))


def membership_split(ds, init_indices) -> MembershipSplit:
    """The split for a run on dataset `ds` whose initialisation selected training images
    `init_indices` (a sequence of ints; empty for noise initialisation)."""
    canaries = torch.as_tensor(list(init_indices) if init_indices is not None else [], dtype=torch.int64)
    n = len(ds.train_images)
    if canaries.numel() and (int(canaries.min()) < 0 or int(canaries.max()) >= n):
        raise ValueError(f"membership_split: initialisation indices must lie in [0, {n}), the training split of "
                         f"{ds.name}; got {int(canaries.min())}..{int(canaries.max())}")
    if canaries.unique().numel() != canaries.numel():
        raise ValueError("membership_split: initialisation indices repeat")
    return MembershipSplit(ds.train_images, ds.train_labels, ds.test_images, ds.test_labels, canaries)
