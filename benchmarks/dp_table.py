"""KT against formal differential privacy on the digits at IPC 10: accuracy beside the epsilon an
accountant proves (DP rows) and the epsilon an audit finds (every row), with LiRA.

    python benchmarks/dp_table.py [--epsilons 1 4 8] [--lira-epsilons 1 4 8] [--shadows 8]
                                  [--iterations 100] [--rows dpsgd dpdm dm full] [--dm-inits real kt noise]
                                  [--dm-lira-inits real kt]
                                  [--reuse FILE ...] [--runs-dir runs/dp] [--out DIR]

Rows (each a run folder in --runs-dir, made or resumed, then audited; a finished run or audit is
reused, so an interrupted table resumes):
- 'full': ConvNets trained on the whole training split, no DP (kaleido_cuda/lab/pipeline/references.py);
- 'dpsgd': DP-SGD (Opacus, RDP accountant) at each epsilon (kaleido_cuda/lab/dp/dpsgd.py);
- 'dm': DM from real, KT and noise initialisation, no DP;
- 'dpdm': DP-DM from noise at each epsilon (dp-accounting's RDP accountant).
Every row is audited with the model attacks (and the data attacks for distilled sets) by 2
target models, and with online LiRA against --shadows shadow pipelines for the DP rows of
--lira-epsilons and for the others; the DM rows' targets and shadows train for --lira-epochs (300,
as the committed LiRA rows; the runs' evaluation models are trained alike, so the audit reuses
them). The accuracy column is the target models'.
The audited epsilon is the strongest attack's 95% lower bound at delta 1e-5 on the canaries
where the set has them (the initialisation's images; every member for models trained on the
training split), else on all members (noise initialisation, DP-DM).

--reuse FILE: rows of committed privacy_table.json files (the same label, attacks, shadows and
epochs) are taken from there instead of being run again; the table names their commit.
Writes DIR/dp_table.{json,md,png} after every row, stamped with the commit and the machine.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402
from privacy_table import _audit, _run  # noqa: E402

from kaleido_cuda.lab.dp.dpsgd import DPSGDConfig  # noqa: E402
from kaleido_cuda.lab.files.atomic import atomic_path, write_text_atomic  # noqa: E402
from kaleido_cuda.lab.pipeline.audit import audit_run  # noqa: E402
from kaleido_cuda.lab.pipeline.dpsgd import dpsgd_run  # noqa: E402
from kaleido_cuda.lab.pipeline.references import audit_full_training_set  # noqa: E402
from kaleido_cuda.lab.privacy.audit import AuditConfig  # noqa: E402
from kaleido_cuda.lab.train.evaluate import EvalResult  # noqa: E402

IPC = 10


def audited_epsilon(audit: dict):
    """(bound, attack, on what): the strongest attack's bound on the canaries if the set has
    them, else on all members (None when neither was computed, as in audits made before the
    all-member bound existed)."""
    key, on = ("epsilon", "canaries") if audit["canaries"] >= 2 else ("epsilon_all", "all members")
    bounds = [(f[key]["epsilon_lb"], name) for name, f in audit["attacks"].items() if f.get(key)]
    if not bounds:
        return None
    best = max(bounds)
    return {"epsilon_lb": best[0], "attack": best[1], "on": on}


def row_record(label, kind, run, audit, formal=None, source=None) -> dict:
    """A row: accuracy is the audit's target models' (for every kind of row, so that the accuracy
    is of the models the attacks were run against)."""
    lira = audit["attacks"].get("lira_online")
    accuracy = EvalResult(audit["target_accuracy"]).as_dict()
    return {"label": label, "kind": kind, "run": run, "accuracy": accuracy, "formal_dp": formal,
            "audited": audited_epsilon(audit), "lira": ({"all": lira["all"], "canaries": lira["canaries"]}
                                                        if lira else None),
            "target_accuracy": audit.get("target_accuracy"), "source": source, "audit": audit}


def _reused(files, label, audit_cfg):
    """The row `label` of the committed privacy_table.json files, if one was audited with audit_cfg."""
    want = json.loads(json.dumps(dataclasses.asdict(audit_cfg)))
    for path in files:
        table = json.load(open(path))
        for row in table["rows"]:
            if row["label"] == label and row["audit"]["config"] == want:
                return row, f"{os.path.relpath(path, RESULTS)} (commit {table['machine']['commit']})"
    return None, None


def markdown(result) -> str:
    m = result["machine"]
    lines = [f"# Formal DP beside KT: the digits at IPC {IPC}", "", stamp_line(m), f"command: `{result['command']}`", "",
             "Accuracy on the 540 held-out digits. Formal epsilon: what the accountant proves at delta 1e-5 (DP rows). "
             "Audited epsilon: the strongest attack's 95% lower bound at delta 1e-5, on the canaries where the set has "
             "them, else on all members. LiRA: online, against the shadows, on all members.", "",
             "| set | accuracy % | formal epsilon (accountant) | audited epsilon (attack, on) | LiRA AUC (all) "
             "| LiRA TPR@1% (all) | LiRA TPR@1% (canaries) | source |", "|---|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        acc = r["accuracy"]
        formal = r["formal_dp"]
        f_cell = f"{formal['epsilon']:.2f} ({formal['accountant'].split(' ')[0]})" if formal else "none"
        a = r["audited"]
        a_cell = f"{a['epsilon_lb']:.2f} ({a['attack']}, {a['on']})" if a else "-"
        lira = r["lira"]
        cells = ([f"{lira['all']['auc']:.3f}", f"{lira['all']['tpr_at_1pct_fpr']:.3f}",
                  f"{lira['canaries']['tpr_at_1pct_fpr']:.3f}" if lira["canaries"] else "-"] if lira else ["-"] * 3)
        lines.append(f"| {r['label']} | {100 * acc['mean']:.1f} +- {100 * acc['std']:.1f} | {f_cell} | {a_cell} | "
                     + " | ".join(cells) + f" | {r['source'] or 'this table'} |")
    lines += ["", "accuracy: mean and std of the audit's target models (DM and DP-DM: ConvNets trained on the synthetic "
              "set; DP-SGD: the run's own models; full training set: ConvNets trained on it). Every figure is in "
              "dp_table.json."]
    return "\n".join(lines) + "\n"


def plot(result, path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.8))
    colours = {"dpsgd": "C0", "dpdm": "C1", "dm": "C2", "full": "C3"}
    for r in result["rows"]:
        if not r["audited"]:
            continue
        x, y = r["audited"]["epsilon_lb"], 100 * r["accuracy"]["mean"]
        ax.scatter([x], [y], color=colours[r["kind"]], zorder=3)
        ax.annotate(r["label"], (x, y), fontsize=7, xytext=(4, 3), textcoords="offset points")
        if r["formal_dp"]:  # the guarantee, to the right of what the audit found
            fx = r["formal_dp"]["epsilon"]
            ax.scatter([fx], [y], facecolors="none", edgecolors=colours[r["kind"]], zorder=3)
            ax.plot([x, fx], [y, y], color=colours[r["kind"]], lw=0.8, ls=":")
    ax.set_xlabel("epsilon at delta 1e-5: audited lower bound (filled), accountant's guarantee (hollow)")
    ax.set_ylabel("test accuracy %")
    ax.set_title(f"digits, IPC {IPC}: accuracy against privacy", fontsize=10)
    handles = [plt.Line2D([], [], marker="o", ls="", color=c, label=k) for k, c in
               (("DP-SGD", "C0"), ("DP-DM (noise init)", "C1"), ("DM, no DP", "C2"), ("full training set", "C3"))]
    ax.legend(handles=handles, fontsize=8, loc="lower right")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    plt.close(fig)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epsilons", nargs="*", type=float, default=[1.0, 4.0, 8.0])
    ap.add_argument("--lira-epsilons", nargs="*", type=float, default=None,
                    help="DP rows audited with LiRA (default: every --epsilons)")
    ap.add_argument("--rows", nargs="*", default=["dpsgd", "dpdm", "dm", "full"], help="which rows, in this order")
    ap.add_argument("--dm-inits", nargs="*", default=["real", "kt", "noise"])
    ap.add_argument("--dm-lira-inits", nargs="*", default=None,
                    help="the DM inits audited with LiRA (default: all of --dm-inits); the others get data and "
                         "model attacks only, which saves their 8 shadow pipelines")
    ap.add_argument("--iterations", type=int, default=100, help="DM and DP-DM iterations")
    ap.add_argument("--shadows", type=int, default=8)
    ap.add_argument("--models", type=int, default=2, help="audit target models")
    ap.add_argument("--lira-epochs", type=int, default=300, help="the DM rows' target and shadow model epochs")
    ap.add_argument("--eval-runs", type=int, default=2,
                    help="evaluation models of the DM rows (the audit reuses them as its targets: --models, --lira-epochs)")
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--dpsgd-epochs", type=int, default=DPSGDConfig.epochs)
    ap.add_argument("--dpsgd-lr", type=float, default=DPSGDConfig.lr)
    ap.add_argument("--dpsgd-models", type=int, default=2)
    ap.add_argument("--full-epochs", type=int, default=30)
    ap.add_argument("--reuse", nargs="*", default=[], help="committed privacy_table.json files whose rows to reuse")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default="runs/dp")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    lira_eps = args.epsilons if args.lira_epsilons is None else args.lira_epsilons
    result = {"machine": machine_stamp("cpu"), "command": command_line("dp_table.py", argv), "ipc": IPC,
              "iterations": args.iterations, "shadows": args.shadows, "rows": []}

    def save(row):
        result["rows"].append(row)
        write_json(os.path.join(args.out, "dp_table.json"), result)
        write_text_atomic(os.path.join(args.out, "dp_table.md"), markdown(result))
        plot(result, os.path.join(args.out, "dp_table.png"))
        print(markdown(result).splitlines()[-3], flush=True)

    def audit_cfg(lira: bool, epochs=None, data=True):
        attacks = (("data",) if data else ()) + ("model",) + (("lira",) if lira else ())
        return AuditConfig(attacks=attacks, models=args.models, seed=args.seed,
                           shadows=args.shadows if lira else 0, epochs=epochs)

    def dm_row(label, kind, init, dm_options, lira, suffix):
        cfg = audit_cfg(lira, args.lira_epochs)
        reused, source = _reused(args.reuse, label, cfg)
        if reused is not None:
            return save(row_record(label, kind, reused["run"], reused["audit"], source=source))
        out = _run(args.runs_dir, init, IPC, args.iterations, args.seed, suffix=suffix, eval_runs=args.eval_runs,
                   eval_epochs=args.eval_epochs, dm_options=dm_options)
        audit = _audit(out, cfg, lambda: audit_run(out, cfg, progress=False))
        metrics = json.load(open(os.path.join(out, "metrics.json")))
        save(row_record(label, kind, out, audit, formal=metrics.get("dp")))

    for kind in args.rows:
        if kind == "dpsgd":
            for eps in args.epsilons:
                out = os.path.join(args.runs_dir, f"dpsgd_eps{eps:g}")
                cfg = DPSGDConfig(epsilon=eps, epochs=args.dpsgd_epochs, lr=args.dpsgd_lr, runs=args.dpsgd_models)
                print(f"DP-SGD epsilon {eps:g} -> {out}", flush=True)
                metrics = dpsgd_run(out, cfg, seed=args.seed, progress=False)
                acfg = audit_cfg(eps in lira_eps, data=False)
                audit = _audit(out, acfg, lambda: audit_run(out, acfg, progress=False))
                save(row_record(f"DP-SGD, epsilon {eps:g}", "dpsgd", out, audit, formal=metrics["dp"]))
        elif kind == "dpdm":
            for eps in args.epsilons:
                dm_row(f"DP-DM ({args.iterations} iterations), noise init, epsilon {eps:g}", "dpdm", "noise",
                       {"dp_epsilon": eps}, eps in lira_eps, f"_dp{eps:g}")
        elif kind == "dm":
            for init in args.dm_inits:
                lira = args.dm_lira_inits is None or init in args.dm_lira_inits
                dm_row(f"DM ({args.iterations} iterations), {init} init", "dm", init, None, lira,
                       "_lira" if lira else "")
        elif kind == "full":
            out = os.path.join(args.runs_dir, "full_training_set")
            label = f"full training set ({args.full_epochs} epochs)"
            cfg = AuditConfig(attacks=("model", "lira"), models=args.models, seed=args.seed, shadows=args.shadows,
                              epochs=args.full_epochs)
            reused, source = _reused(args.reuse, label, cfg)
            audit = reused["audit"] if reused else _audit(
                out, cfg, lambda: audit_full_training_set(out, "digits", cfg, progress=False))
            save(row_record(label, "full", out, audit, source=source))
        else:
            raise SystemExit(f"unknown row kind {kind!r}: choose dpsgd, dpdm, dm or full")
    print(markdown(result))


if __name__ == "__main__":
    main()
