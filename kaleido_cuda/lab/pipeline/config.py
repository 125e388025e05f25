"""RunConfig: what `kaleido distill` runs (dataset, method and its loop's options, initialisation,
evaluation, baselines), as config.json records it."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import Optional

from ...init import METHODS as INITS
from ...presets import KT_FAMILIES, check_families
from ..distill import BUFFER_METHODS, CONFIGS, METHODS, DATMConfig, DCConfig, DMConfig, MTTConfig, RDEDConfig
from ..distill.buffer import missing_buffer_error
from ..files.layout import BufferFolder
from ..train.evaluate import EvalConfig

# The methods whose loop splits its classes across torchrun's ranks.
SHARDED_METHODS = ("dm", "dc")

# The views of a run whose config.json has no kt_views: it was written before the option existed,
# when KT was one perturbation chain.
SINGLE_CHAIN_VIEWS = 1
# DATM's label_init in a config.json without it: written when DATM's labels always started from
# the experts' logits on the initial images.
EARLIER_LABEL_INIT = "images"


@dataclass
class RunConfig:
    dataset: str = "digits"
    data_root: Optional[str] = None
    method: str = "dm"
    ipc: int = 10
    init: str = "kt"
    strength: float = 1.0
    kt_views: int = 3   # KT views averaged per initial image (init 'kt'): the paper's number
    kt_families: str = ",".join(KT_FAMILIES)  # the KT preset's families that are on (init 'kt')
    seed: int = 0
    device: str = "cpu"
    dm: DMConfig = field(default_factory=DMConfig)     # used when method == 'dm'
    dc: DCConfig = field(default_factory=DCConfig)     # used when method == 'dc'
    mtt: MTTConfig = field(default_factory=MTTConfig)  # used when method == 'mtt'
    datm: DATMConfig = field(default_factory=DATMConfig)  # used when method == 'datm'
    rded: RDEDConfig = field(default_factory=RDEDConfig)  # used when method == 'rded'
    eval: EvalConfig = field(default_factory=EvalConfig)
    full_epochs: int = 30          # the 'full training set' baseline
    baselines: bool = True

    def check(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown method {self.method!r}; available: {', '.join(METHODS)}")
        if self.init not in INITS:
            raise ValueError(f"unknown init {self.init!r}; choose one of {', '.join(INITS)}")
        if not isinstance(self.ipc, int) or self.ipc < 1:
            raise ValueError(f"ipc must be a positive int, got {self.ipc!r}")
        if not isinstance(self.kt_views, int) or self.kt_views < 1:
            raise ValueError(f"kt-views must be a positive int, got {self.kt_views!r}")
        check_families(self.kt_families)
        if self.loop().iterations < 0 or self.eval.runs < 1 or self.eval.epochs < 1:
            raise ValueError("iterations must be >= 0, eval runs and epochs >= 1")
        self.eval.check()
        self.check_dp()
        if self.method in BUFFER_METHODS:
            loop = self.loop()
            if loop.dataset not in (None, self.dataset):
                raise ValueError(f"{self.method}.dataset {loop.dataset!r} differs from the run's dataset {self.dataset!r}")
            if not os.path.exists(BufferFolder(loop.buffer).meta):  # before any work
                raise missing_buffer_error(loop.buffer, self.dataset, loop.model)
        if self.method == "datm" and self.datm.label_init == "sources" and self.init == "noise":
            raise ValueError("datm: --label-init sources labels each image from the real image it was made from, and "
                             "--init noise has none; use --label-init images or class_mean")
        if self.method == "rded" and self.rded.observer and not os.path.isfile(self.rded.observer):
            raise FileNotFoundError(f"rded: no observer checkpoint at {self.rded.observer!r}")

    def check_dp(self) -> None:
        """DP-DM's options (DMConfig.check_dp), and what the mechanism does not cover: a real or KT
        initialisation starts from training images that no noise protects."""
        if self.method != "dm":
            if self.dm.private:
                raise ValueError(f"--dp-epsilon is DP distribution matching: use it with --method dm, not {self.method}")
            return
        self.dm.check_dp()
        if self.dm.private and self.init != "noise" and not self.dm.dp_public_init:
            raise ValueError(f"--init {self.init} with --dp-epsilon: the initial images are training images, whose "
                             "privacy the DP mechanism does not cover; use --init noise, or --dp-public-init if those "
                             "images are public")

    def loop(self):
        """The configuration of the chosen method's loop."""
        return getattr(self, self.method)

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        d = dict(d)
        d.setdefault("kt_views", SINGLE_CHAIN_VIEWS)
        if "datm" in d:
            d["datm"] = {"label_init": EARLIER_LABEL_INIT, **d["datm"]}
        for method, config in CONFIGS.items():
            d[method] = config(**d.get(method, {}))
        d["eval"] = EvalConfig(**d.get("eval", {}))
        return cls(**d)
