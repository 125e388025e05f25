"""The privacy-utility frontier of KT initialisation on the digits: DM at IPC 10 from KT images with
V = 1, 3 and 5 views (strength 1), V = 3 at strength 0.5, the family ablation at V = 3 (one family
dropped at a time), and real and noise initialisation with the same seeds; then IPC 50 for 5-view
KT and real images (one seed).

    python benchmarks/kt_frontier.py [--seeds 0 1 2] [--iterations 100] [--eval-epochs 300]
                                     [--runs-dir runs/kt_frontier] [--out DIR] [--only NAME ...]

Budget (the privacy sweep's): 100 DM iterations, 2 evaluation ConvNets of 300 epochs each. Per
run: accuracy, nearest-neighbour SSIM to the training set, and the data attacks' canary AUC
(`kaleido audit --attacks data`: the training images the initialisation selected against the
held-out images). Resumable: a point already in DIR/kt_frontier.json (same budget) is kept, so a
fresh checkout carries on from the committed results (run folders are not committed); a finished
run folder is reused, an interrupted one resumes; DIR/kt_frontier.{json,md,png} are rewritten after
every run, so partial results are usable. Runs go in priority order: every point's first seed, then
the other seeds, then the ablation and IPC 50 (one seed each).
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, committed_rows, machine_stamp, stamp_line, write_json  # noqa: E402

from kaleido_cuda.lab.distill import DMConfig  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.pipeline.audit import audit_run  # noqa: E402
from kaleido_cuda.lab.pipeline.config import RunConfig  # noqa: E402
from kaleido_cuda.lab.pipeline.distill import distill_run  # noqa: E402
from kaleido_cuda.lab.privacy.audit import AuditConfig  # noqa: E402
from kaleido_cuda.lab.train.evaluate import EvalConfig  # noqa: E402
from kaleido_cuda.presets import KT_FAMILIES  # noqa: E402

# name -> RunConfig fields
POINTS = {
    "kt_v1": dict(init="kt", kt_views=1, strength=1.0),
    "kt_v3": dict(init="kt", kt_views=3, strength=1.0),
    "kt_v5": dict(init="kt", kt_views=5, strength=1.0),
    "kt_v3_s0.5": dict(init="kt", kt_views=3, strength=0.5),
    "real": dict(init="real"),
    "noise": dict(init="noise"),
}
ABLATION = {f"kt_v3_no_{f}": dict(init="kt", kt_views=3, strength=1.0,
                                  kt_families=",".join(g for g in KT_FAMILIES if g != f)) for f in KT_FAMILIES}
# The paper's claim is strongest at high IPC: the best KT point of seed 0 and real images at IPC 50, one seed.
HIGH_IPC = {"kt_v5_ipc50": dict(init="kt", kt_views=5, strength=1.0, ipc=50), "real_ipc50": dict(init="real", ipc=50)}


def plan(seeds):
    """(name, seed) in priority order."""
    first = [(name, seeds[0]) for name in POINTS]
    rest = [(name, s) for s in seeds[1:] for name in POINTS]
    return first + rest + [(name, seeds[0]) for name in (*ABLATION, *HIGH_IPC)]


def run_point(name, seed, args) -> dict:
    fields = {"ipc": 10, **{**POINTS, **ABLATION, **HIGH_IPC}[name]}
    out = os.path.join(args.runs_dir, f"{name}_seed{seed}")
    if not os.path.exists(os.path.join(out, "metrics.json")):
        cfg = RunConfig(dataset="digits", method="dm", seed=seed, baselines=False,
                        dm=DMConfig(iterations=args.iterations, seed=seed),
                        eval=EvalConfig(runs=2, epochs=args.eval_epochs), **fields)
        print(f"{name} seed {seed} -> {out}", flush=True)
        distill_run(cfg, out, resume=True, progress=False, lpips_weights=args.lpips_weights)
    audit_path = os.path.join(out, "audit.json")
    audit = json.load(open(audit_path)) if os.path.exists(audit_path) else None
    if audit is None:
        audit = audit_run(out, AuditConfig(attacks=("data",), seed=seed), progress=False)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    canary_auc = {k: v["canaries"]["auc"] for k, v in audit["attacks"].items() if v.get("canaries")}
    return {"name": name, "seed": seed, **fields, "accuracy": metrics["accuracy"]["mean"],
            "nn_ssim": metrics["privacy"]["nn_ssim_mean"],
            "heldout_nn_ssim": metrics["privacy"].get("heldout_nn_ssim_mean"),
            "min_lpips": metrics["privacy"].get("min_lpips_mean"), "lpips": metrics["privacy"].get("lpips"),
            "canary_auc": canary_auc, "canary_auc_max": max(canary_auc.values()) if canary_auc else None}


def summary(rows):
    """Per point: mean and std over its seeds."""
    by = {}
    for r in rows:
        by.setdefault(r["name"], []).append(r)
    out = []
    for name, rs in by.items():
        acc = [100 * r["accuracy"] for r in rs]
        auc = [r["canary_auc_max"] for r in rs if r["canary_auc_max"] is not None]
        out.append({"name": name, "ipc": rs[0].get("ipc", 10), "seeds": len(rs), "accuracy_mean": statistics.mean(acc),
                    "accuracy_std": statistics.stdev(acc) if len(acc) > 1 else 0.0,
                    "nn_ssim": statistics.mean(r["nn_ssim"] for r in rs),
                    "canary_auc_max": statistics.mean(auc) if auc else None,
                    "heldout_nn_ssim": rs[0]["heldout_nn_ssim"]})
    return out


def markdown(result) -> str:
    lines = ["# KT privacy-utility frontier: DM on the digits, IPC 10 (and 50)", "", stamp_line(result["machine"]),
             f"command: `{result['command']}`", "",
             f"Budget: {result['iterations']} DM iterations, 2 evaluation ConvNets of {result['eval_epochs']} epochs. "
             "Canary AUC: the strongest data attack (largest SSIM or smallest L2 to a synthetic image) on the images "
             "the initialisation selected against the held-out images (0.5: no better than chance). Mean over the "
             "seeds run so far.", "",
             "| point | IPC | seeds | accuracy % | NN SSIM | canary AUC (data) |", "|---|---|---|---|---|---|"]
    for s in result["summary"]:
        auc = f"{s['canary_auc_max']:.3f}" if s["canary_auc_max"] is not None else "-"
        lines.append(f"| {s['name']} | {s['ipc']} | {s['seeds']} | {s['accuracy_mean']:.1f} +- {s['accuracy_std']:.1f} "
                     f"| {s['nn_ssim']:.3f} | {auc} |")
    held = next((s["heldout_nn_ssim"] for s in result["summary"] if s["heldout_nn_ssim"]), None)
    if held:
        lines += ["", f"Held-out real digits' NN SSIM to the training set (the level of an image that copies nothing): "
                      f"{held:.3f}."]
    return "\n".join(lines) + "\n"


def plot(result, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(11, 4.5))
    for s in result["summary"]:
        # Squares: real and noise; circles: the KT grid; grey x: the one-seed ablation; triangles: IPC 50.
        style = (dict(fmt="s") if s["name"] in ("real", "noise") else dict(fmt="o") if s["name"] in POINTS
                 else dict(fmt="x", color="grey") if s["name"] in ABLATION else dict(fmt="^"))
        label = s["name"].replace("kt_v3_", "") if s["name"] in ABLATION else s["name"]
        for ax, key in zip(axes, ("canary_auc_max", "nn_ssim")):
            if s[key] is None:
                continue
            ax.errorbar(s[key], s["accuracy_mean"], yerr=s["accuracy_std"], capsize=3, **style)
            ax.annotate(label, (s[key], s["accuracy_mean"]), fontsize=6, xytext=(4, -3 if s["name"] in ABLATION else 3),
                        textcoords="offset points", color="grey" if s["name"] in ABLATION else "black")
    axes[0].set_xlabel("canary AUC, strongest data attack")
    axes[1].set_xlabel("mean NN SSIM to the training set")
    for ax in axes:
        ax.set_ylabel("accuracy %")
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=120)
    plt.close(fig)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--runs-dir", default=os.path.join("runs", "kt_frontier"))
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--only", nargs="*", help="point names to run (default: all)")
    ap.add_argument("--lpips-weights", default=None, help="AlexNet weights for min-LPIPS (default: the torch hub cache)")
    ap.add_argument("--replot", action="store_true", help="rewrite the table and plot from the results file only")
    args = ap.parse_args(argv)
    if args.replot:
        result = json.load(open(os.path.join(args.out, "kt_frontier.json")))
        write_text_atomic(os.path.join(args.out, "kt_frontier.md"), markdown(result))
        plot(result, os.path.join(args.out, "kt_frontier.png"))
        return
    known = set(POINTS) | set(ABLATION) | set(HIGH_IPC)
    if args.only and set(args.only) - known:
        ap.error(f"unknown point(s) {sorted(set(args.only) - known)}; known: {sorted(known)}")
    rows = committed_rows(os.path.join(args.out, "kt_frontier.json"), args)
    for name, seed in plan(args.seeds):
        if (args.only and name not in args.only) or any(r["name"] == name and r["seed"] == seed for r in rows):
            continue
        rows.append(run_point(name, seed, args))
        result = {"machine": machine_stamp("cpu"), "command": command_line("kt_frontier.py", argv),
                  "iterations": args.iterations, "eval_epochs": args.eval_epochs, "rows": rows,
                  "summary": summary(rows)}
        write_json(os.path.join(args.out, "kt_frontier.json"), result)
        write_text_atomic(os.path.join(args.out, "kt_frontier.md"), markdown(result))
        plot(result, os.path.join(args.out, "kt_frontier.png"))


if __name__ == "__main__":
    main()
