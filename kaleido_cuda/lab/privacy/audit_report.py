"""The files of a membership audit: audit.json (every figure), audit.md (a table) and
audit_roc.png (ROC curves on log axes, where the low false-positive rates show)."""
from __future__ import annotations

from typing import Dict

import torch

from ..files.atomic import atomic_path, write_json_atomic, write_text_atomic
from ..files.layout import RunFolder
from .membership import MembershipSplit


def write_report(out: str, report: dict, statistics: Dict[str, torch.Tensor], split: MembershipSplit) -> None:
    """Writes the three files of the audit `report` (whose attacks scored `statistics`) in `out`."""
    folder = RunFolder(out)
    write_json_atomic(folder.audit(".json"), report)
    m = len(split.member_images)
    curves = {}
    for name, s in statistics.items():
        curves[(name, "all")] = (s[:m], s[m:])
        if split.canaries.numel():
            curves[(name, "canaries")] = (s[:m][split.canaries], s[m:])
    _roc_plot(folder.audit("_roc.png"), curves)
    write_text_atomic(folder.audit(".md"), _markdown(out, report))


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
