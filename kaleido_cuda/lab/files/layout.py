"""Where everything lives in the folders the lab writes, and which kind of folder one is: the one
place that names these files (pipelines, audits and the command line all go through it).

A run folder (`kaleido distill`, `kaleido dpsgd`):
    config.json           the run's configuration ({"dpsgd": ...} for a DP-SGD run)
    log.txt               what happened, with times (distillation runs)
    checkpoint.pt         the loop's state (`--resume` continues from it)
    synthetic.pt          the distilled set and the training images its initialisation selected
                          (DATM: its learned labels; RDED: every tile's source image)
    observer.pt           RDED: the observer, teacher of the evaluation models
    init_grid.png, final_grid.png, nearest_grid.png
    metrics.json          accuracy, baselines, privacy, timing (and "membership" after an audit)
    models/               evaluation models (seed_S_KEY.pt) or a DP-SGD run's own (seed_S.pt), the
                          audit's targets
    shadows/              LiRA's shadow cache (privacy/shadows.py): shadows.json, shadow_S.pt, and
                          shadow_S_checkpoint.pt while shadow S distils
    audit.json, audit.md, audit_roc.png   the membership audit
An expert buffer (`kaleido buffer`, for MTT): buffer.json, expert_K.pt, partial_K.pt.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from typing import Optional

# What `kind` says a folder holds.
DISTILLATION, DPSGD = "distillation", "dpsgd"


def _entry(name: str) -> property:
    return property(lambda self: os.path.join(self.root, name), doc=f"the folder's {name}")


def _indexed(pattern: str):
    """A method giving the folder's file `pattern` (with {} for the index) of index k."""
    def path(self, k: int) -> str:
        return os.path.join(self.root, pattern.format(k))
    return path


@dataclass(frozen=True)
class RunFolder:
    """A `kaleido distill` or `kaleido dpsgd` run folder (the module docstring lists its files)."""
    root: str

    config = _entry("config.json")
    log = _entry("log.txt")
    checkpoint = _entry("checkpoint.pt")
    synthetic = _entry("synthetic.pt")
    metrics = _entry("metrics.json")
    models = _entry("models")
    shadows = _entry("shadows")
    observer = _entry("observer.pt")
    shadow_meta = _entry(os.path.join("shadows", "shadows.json"))
    shadow = _indexed(os.path.join("shadows", "shadow_{}.pt"))
    shadow_checkpoint = _indexed(os.path.join("shadows", "shadow_{}_checkpoint.pt"))

    def _file(self, name: str) -> str:
        return os.path.join(self.root, name)

    def grid(self, which: str) -> str:
        """which: 'init', 'final' or 'nearest'."""
        if which not in ("init", "final", "nearest"):
            raise ValueError(f"unknown grid {which!r}")
        return self._file(f"{which}_grid.png")

    def audit(self, suffix: str) -> str:
        """suffix: '.json', '.md' or '_roc.png'."""
        if suffix not in (".json", ".md", "_roc.png"):
            raise ValueError(f"unknown audit file audit{suffix}")
        return self._file(f"audit{suffix}")

    def saved_config(self) -> Optional[dict]:
        """config.json's content, or None before a run wrote one."""
        if not os.path.exists(self.config):
            return None
        with open(self.config) as f:
            return json.load(f)

    def kind(self) -> Optional[str]:
        """DPSGD for a `kaleido dpsgd` folder, DISTILLATION for a `kaleido distill` one, None for
        a folder that holds no run (yet)."""
        saved = self.saved_config()
        if saved is None:
            return None
        return DPSGD if "dpsgd" in saved else DISTILLATION

    def finished_distillation(self) -> None:
        """Raises FileNotFoundError unless the folder holds a finished `kaleido distill` run."""
        for path in (self.config, self.synthetic):
            if not os.path.exists(path):
                raise FileNotFoundError(f"{self.root} is not a finished run: it has no {os.path.basename(path)} "
                                        "(make one with `kaleido distill`)")


def model_file(models: str, seed: int, key: Optional[str] = None) -> str:
    """A saved model in a models/ folder: seed_S.pt (a DP-SGD run's model of seed S), or
    seed_S_KEY.pt (an evaluation model; KEY a hash of its training set and protocol)."""
    return os.path.join(models, f"seed_{seed}.pt" if key is None else f"seed_{seed}_{key}.pt")


@dataclass(frozen=True)
class BufferFolder:
    """An expert buffer of `kaleido buffer`: buffer.json, expert_K.pt, partial_K.pt."""
    root: str

    meta = _entry("buffer.json")
    expert = _indexed("expert_{}.pt")
    partial = _indexed("partial_{}.pt")

    @staticmethod
    def expert_index(file_name: str) -> int:
        """k of 'expert_K.pt' (as buffer.json lists its experts)."""
        return int(file_name[len("expert_"):-len(".pt")])


def default_buffer(dataset: str, model: str) -> str:
    """Where `kaleido buffer` writes, and `kaleido distill --method mtt` reads, by default."""
    return os.path.join("runs", "buffers", f"{dataset.replace(':', '_').replace('/', '_')}_{model}")
