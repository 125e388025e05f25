"""`kaleido audit RUN`: membership inference against a finished run's distilled set.

Members are the training images the distillation read, non-members the held-out test split, and
the canaries the members its initialisation selected (membership.py). Attacks:
- 'data': on the released images alone, each candidate's largest SSIM and negated smallest L2 to
  any synthetic image (attacks.data_attack_scores);
- 'model': `models` ConvNets trained on the synthetic set with the run's evaluation protocol (the
  run's own evaluation models, read from RUN/models, when the seeds and epochs are the same); each
  candidate's negated loss and LiRA's logit-scaled confidence, averaged over the models.
  --epochs sets their epochs, and the shadows' too unless --shadow-epochs says otherwise.
Every attack is reported for all members and for the canaries, against all non-members (AUC, TPR
at 1% and 0.1% FPR), with the empirical epsilon lower bound on the canaries (delta 1e-5); the
audit's headline epsilon is the largest of those.
- 'lira' (with --shadows K): LiRA online and offline, the target models' logit-scaled confidence
  against K shadow pipelines that repeat the run on random halves of the pooled candidates
  (shadows.py; cached and resumable), scored per target model and averaged.

Outputs in RUN: audit.json, audit.md, audit_roc.png, and a "membership" section in metrics.json.
"""
from __future__ import annotations

import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass
from typing import Dict, Optional, Tuple

import torch

from ..atomic import atomic_path, write_json_atomic, write_text_atomic
from ..data import load_dataset
from ..distributed import check_same_options, current_world, gather_keyed, init_world
from ..evaluate import accuracy, saved_or_trained
from ..init import initial_indices
from .attacks import data_attack_scores, lira_scores, model_scores
from .epsilon import epsilon_lower_bound
from .membership import membership_split
from .metrics import attack_metrics

ATTACKS = ("data", "model", "lira")
DEFAULT_ATTACKS = ("data", "model")


@dataclass
class AuditConfig:
    attacks: Tuple[str, ...] = DEFAULT_ATTACKS
    models: int = 2                 # target models for the model attacks
    epochs: Optional[int] = None    # their epochs (default: the run's evaluation epochs)
    delta: float = 1e-5
    seed: int = 0
    shadows: int = 0                # LiRA: shadow pipelines (privacy/shadows.py)
    shadow_iterations: Optional[int] = None
    shadow_epochs: Optional[int] = None

    def check(self) -> None:
        unknown = [a for a in self.attacks if a not in ATTACKS]
        if unknown or not self.attacks:
            raise ValueError(f"unknown attack(s) {unknown or '(none given)'}; choose from {', '.join(ATTACKS)}")
        if self.models < 1:
            raise ValueError(f"--models must be at least 1, got {self.models}")
        if self.epochs is not None and self.epochs < 1:
            raise ValueError(f"--epochs must be at least 1, got {self.epochs}")
        if not 0 < self.delta < 1:
            raise ValueError(f"--delta must lie in (0, 1), got {self.delta}")
        if "lira" in self.attacks:
            self.shadow_config().check()

    def shadow_config(self):
        from .shadows import ShadowConfig

        # LiRA's shadows train like the targets unless told otherwise
        return ShadowConfig(self.shadows, self.shadow_iterations, self.shadow_epochs or self.epochs, self.seed)


def _load_run(out: str):
    from ..run import RunConfig

    paths = {name: os.path.join(out, name) for name in ("config.json", "synthetic.pt")}
    for name, path in paths.items():
        if not os.path.exists(path):
            raise FileNotFoundError(f"{out} is not a finished run: it has no {name} (make one with `kaleido distill`)")
    cfg = RunConfig.from_dict(json.load(open(paths["config.json"])))
    saved = torch.load(paths["synthetic.pt"], map_location="cpu", weights_only=False)
    return cfg, saved


def _canaries(cfg, saved, ds) -> Tuple[list, str]:
    if "init_indices" in saved:
        return list(saved["init_indices"]), "synthetic.pt"
    if cfg.init == "noise":
        return [], "none (noise initialisation)"
    # Runs made before init_indices was recorded: the selection is a function of (labels, ipc, seed).
    return initial_indices(ds.train_labels, cfg.ipc, cfg.init, ds.num_classes, cfg.seed), "recomputed from config.json"


def _figures(member: torch.Tensor, nonmember: torch.Tensor, canaries: torch.Tensor, delta: float) -> dict:
    """The attack's figures on all members and on the canaries, and the epsilon lower bounds its
    scores prove with the canaries ("epsilon") and with all members ("epsilon_all": the bound a
    set without canaries, such as one initialised from noise, can still be given)."""
    out = {"all": attack_metrics(member, nonmember), "canaries": None, "epsilon": None,
           "epsilon_all": epsilon_lower_bound(member.numpy(), nonmember.numpy(), delta=delta)}
    if canaries.numel() >= 2:
        out["canaries"] = attack_metrics(member[canaries], nonmember)
        out["epsilon"] = epsilon_lower_bound(member[canaries].numpy(), nonmember.numpy(), delta=delta)
    return out


def _model_statistics(images, labels, ds, split, eval_cfg, device, audit: AuditConfig,
                      progress: bool, train_target=None, model_folder=None) -> Dict[str, torch.Tensor]:
    """Each model statistic of the target models, (models, P) over the P pooled candidates
    (members then non-members), and "accuracy", (models,) their accuracy on the non-members (the
    test split). `train_target(images, labels, seed, on_epoch)` trains one (default: the
    evaluation protocol of eval_cfg, whose epochs also size the progress bar, reading the run's
    evaluation models from `model_folder` where they are the same models)."""
    from tqdm import tqdm

    images, labels = images.to(device), labels.to(device)
    candidates, candidate_labels = (t.to(device) for t in split.pooled())
    m = len(split.member_images)
    world = current_world()
    bar = tqdm(total=len(world.owned(audit.models)) * eval_cfg.epochs, desc="audit: target models (x epochs)",
               disable=not (progress and world.main), leave=False)

    def target(k: int) -> Dict[str, torch.Tensor]:
        tick = lambda _: bar.update(1)  # noqa: E731
        model = (saved_or_trained(images, labels, ds.num_classes, eval_cfg, audit.seed + k, model_folder, tick)
                 if train_target is None else train_target(images, labels, audit.seed + k, tick))
        stats = {name: s.cpu() for name, s in model_scores(model, candidates, candidate_labels).items()}
        stats["accuracy"] = torch.tensor(accuracy(model, candidates[m:], candidate_labels[m:]))
        return stats

    per_model = gather_keyed(world, audit.models, target)  # under torchrun: split across ranks by index
    bar.close()
    return {name: torch.stack([p[name] for p in per_model]) for name in per_model[0]}


def _roc_plot(path: str, curves: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, ax = plt.subplots(figsize=(5.5, 5))
    colours = {}
    for (name, group), (member, nonmember) in curves.items():
        y = torch.cat([torch.ones(len(member)), torch.zeros(len(nonmember))]).numpy()
        fpr, tpr, _ = roc_curve(y, torch.cat([member, nonmember]).numpy())
        colour = colours.setdefault(name, f"C{len(colours)}")  # one colour per attack
        ax.plot(fpr, tpr, ls="-" if group == "all" else "--", color=colour, label=f"{name} ({group})")
    floor = 1e-4
    ax.plot([floor, 1], [floor, 1], color="grey", lw=0.8, label="chance")
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(floor, 1)
    ax.set_ylim(floor, 1)
    ax.set_xlabel("false-positive rate")
    ax.set_ylabel("true-positive rate")
    ax.set_title("membership inference (solid: all members, dashed: canaries)", fontsize=9)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def _markdown(out: str, report: dict) -> str:
    lines = [f"# Membership audit of {out}", "",
             f"{report['members']} members ({report['canaries']} canaries: the initialisation's images, "
             f"{report['canaries_source']}), {report['nonmembers']} non-members (held-out split).", "",
             "| attack | AUC (all) | TPR@1% (all) | AUC (canaries) | TPR@1% (canaries) | TPR@0.1% (canaries) | "
             "epsilon lower bound (canaries) |", "|---|---|---|---|---|---|---|"]
    for name, f in report["attacks"].items():
        c, e = f["canaries"], f["epsilon"]
        cells = [f"{f['all']['auc']:.3f}", f"{f['all']['tpr_at_1pct_fpr']:.3f}"]
        cells += [f"{c['auc']:.3f}", f"{c['tpr_at_1pct_fpr']:.3f}",
                  f"{c['tpr_at_0.1pct_fpr']:.3f}" + ("" if c["resolved_0.1pct"] else " (unresolved)")] if c else ["-"] * 3
        cells += [f"{e['epsilon_lb']:.2f}" if e else "-"]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    best = report.get("epsilon_lb")
    lines += ["", f"Strongest canary attack: {best['attack']}, epsilon >= {best['epsilon_lb']:.2f} at delta "
                  f"{report['config']['delta']:g} (95% Clopper-Pearson)." if best else "No canaries: no epsilon bound.",
              "TPR at 0.1% FPR needs 1,000 non-members to be resolved; with fewer it is the TPR at zero false "
              "positives."]
    return "\n".join(lines) + "\n"


def audit_run(out: str, audit: Optional[AuditConfig] = None, progress: bool = True) -> dict:
    """Audits the run in `out`, writes audit.json/.md/_roc.png and metrics.json's "membership".
    Under torchrun the target models and the shadows are split across the ranks by index (each
    keyed by it, so the figures do not depend on the number of ranks); rank 0 writes and returns
    the report, the other ranks return {}."""
    audit = audit or AuditConfig()
    audit.check()
    from ..dp.dpsgd import load_dpsgd_config

    if os.path.isdir(out) and load_dpsgd_config(out) is not None:  # a folder of `kaleido dpsgd`
        from .reference import audit_dpsgd_run

        return audit_dpsgd_run(out, audit, progress)
    cfg, saved = _load_run(out)
    check_same_options(init_world(cfg.device), {"audit": asdict(audit), "run": os.path.abspath(out)})
    ds = load_dataset(cfg.dataset, cfg.data_root)
    canaries, canary_source = _canaries(cfg, saved, ds)
    eval_cfg = dataclasses.replace(cfg.eval, epochs=audit.epochs or cfg.eval.epochs)
    if "lr" in saved:  # MTT's learned rate, as its evaluation uses
        eval_cfg = dataclasses.replace(eval_cfg, lr=float(saved["lr"]))
    def shadows(pool_images, pool_labels):
        from .shadows import shadow_statistics

        return shadow_statistics(out, cfg, pool_images, pool_labels, ds.num_classes, audit.shadow_config(), progress)

    from ..run import model_folder  # the run's evaluation models: the targets, where seeds and epochs match

    report = audit_set(out, saved["images"], saved["labels"], ds, canaries, canary_source, eval_cfg,
                       torch.device(cfg.device), audit, progress, shadows=shadows, model_folder=model_folder(out))
    record_membership(out, report)
    return report


def record_membership(out: str, report: dict) -> None:
    """Adds the audit's figures to the run's metrics.json as its "membership" section (nothing
    for the ranks other than 0, whose report is {}, or for a folder without metrics.json)."""
    metrics_path = os.path.join(out, "metrics.json")
    if report and os.path.exists(metrics_path):
        metrics = json.load(open(metrics_path))
        metrics["membership"] = {k: report[k] for k in ("config", "members", "nonmembers", "canaries", "attacks",
                                                        "epsilon_lb")}
        write_json_atomic(metrics_path, metrics)


def audit_set(out: str, images: torch.Tensor, labels: torch.Tensor, ds, canaries, canary_source: str, eval_cfg,
              device, audit: AuditConfig, progress: bool = True, shadows=None, train_target=None,
              model_folder: Optional[str] = None) -> dict:
    """Audits a synthetic set (normalised as ds is) against ds's members and non-members; writes
    audit.json, audit.md and audit_roc.png in `out`. `shadows(pool_images, pool_labels)` gives
    LiRA's shadow statistics and in-masks over the pooled members and non-members;
    `train_target` trains the target models another way than eval_cfg's protocol (DP-SGD);
    `model_folder`: where the run that made the set keeps its evaluation models."""
    audit.check()
    if "lira" in audit.attacks and shadows is None:
        raise ValueError("LiRA needs the pipeline that made the set (its shadows repeat it): audit a run folder")
    split = membership_split(ds, canaries)
    m = len(split.member_images)
    pool_images, pool_labels = split.pooled()
    statistics: Dict[str, torch.Tensor] = {}
    timing = {}
    world = current_world()  # under torchrun the ranks share the models; rank 0 alone reports
    progress = progress and world.main
    if "data" in audit.attacks and world.main:
        t0 = time.perf_counter()
        for name, s in data_attack_scores(ds.denormalise(pool_images), ds.denormalise(images.cpu())).items():
            statistics[f"data_{name}"] = s
        timing["data_seconds"] = time.perf_counter() - t0
        if progress:
            print(f"audit: data attacks done ({timing['data_seconds']:.0f} s)", flush=True)
    target, target_accuracy = None, None
    if "model" in audit.attacks or "lira" in audit.attacks:
        t0 = time.perf_counter()
        model_stats = _model_statistics(images, labels, ds, split, eval_cfg, device, audit, progress, train_target,
                                        model_folder)
        target_accuracy = model_stats.pop("accuracy").tolist()
        target = model_stats["logit_conf"]
        if "model" in audit.attacks:  # the threshold attacks average the statistic over the target models
            statistics.update({f"model_{name}": s.mean(0) for name, s in model_stats.items()})
        timing["model_seconds"] = time.perf_counter() - t0
        if progress:
            print(f"audit: target models done ({timing['model_seconds']:.0f} s)", flush=True)
    if "lira" in audit.attacks:
        t0 = time.perf_counter()
        shadow_stats, in_mask = shadows(pool_images, pool_labels)
        # Each target model is one model like each shadow, so LiRA scores each target model against
        # the shadows' single-model fits and averages the scores (averaging the statistic first would
        # shrink its spread below the shadows').
        for name, online in (("lira_online", True), ("lira_offline", False)):
            scores = [lira_scores(t, shadow_stats, in_mask, online=online) for t in target]
            statistics[name] = torch.from_numpy(sum(scores) / len(scores)).float()
        timing["lira_seconds"] = time.perf_counter() - t0
    if not world.main:  # after the last collective: rank 0 alone scores and writes
        return {}
    attacks = {name: _figures(s[:m].double(), s[m:].double(), split.canaries, audit.delta)
               for name, s in statistics.items()}
    bounds = [(f["epsilon"]["epsilon_lb"], name) for name, f in attacks.items() if f["epsilon"]]
    report = {"run": out, "config": asdict(audit), "members": m, "nonmembers": len(split.nonmember_images),
              "canaries": int(split.canaries.numel()), "canaries_source": canary_source,
              "target_accuracy": target_accuracy, "attacks": attacks,
              "epsilon_lb": ({"epsilon_lb": max(bounds)[0], "attack": max(bounds)[1]} if bounds else None),
              "timing": timing}
    write_json_atomic(os.path.join(out, "audit.json"), report)
    curves = {}
    for name, s in statistics.items():
        curves[(name, "all")] = (s[:m], s[m:])
        if split.canaries.numel():
            curves[(name, "canaries")] = (s[:m][split.canaries], s[m:])
    _roc_plot(os.path.join(out, "audit_roc.png"), curves)
    write_text_atomic(os.path.join(out, "audit.md"), _markdown(out, report))
    return report
