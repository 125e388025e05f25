"""The digits privacy table: DM runs (`kaleido distill` defaults) audited with `kaleido audit`,
accuracy beside every privacy figure, per initialisation and IPC.

    python benchmarks/privacy_table.py [--inits kt real noise] [--ipcs 1 10 50] [--iterations 300]
                                       [--models 2] [--shadows 8] [--shadow-iterations N]
                                       [--lira-inits kt real] [--lira-ipc 10] [--references subset full]
                                       [--runs-dir runs/digits] [--out DIR]

The sweep: every (init, IPC) with the data and model attacks. LiRA (K shadow pipelines) for the
--lira-inits at --lira-ipc, and for two references: a random real subset of that IPC (a run with 0
distillation iterations, its shadows repeat the selection) and models trained on the whole training
split (kaleido_cuda/lab/pipeline/references.py).

Run folders are digits_table.py's (runs/digits/dm_INIT_ipcN): a finished run is reused, an
interrupted one resumes, a missing one is made (without baselines: digits_table.py has them). A run
whose audit.json was made with other audit options is audited again; shadows are cached in
RUN/shadows and resume. Writes DIR/privacy_table.{json,md} after every row, stamped with the
commit and the machine.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

from kaleido_cuda.lab.distill import DMConfig  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.pipeline.audit import audit_run  # noqa: E402
from kaleido_cuda.lab.pipeline.config import RunConfig  # noqa: E402
from kaleido_cuda.lab.pipeline.distill import distill_run  # noqa: E402
from kaleido_cuda.lab.pipeline.references import audit_full_training_set  # noqa: E402
from kaleido_cuda.lab.privacy.audit import AuditConfig  # noqa: E402
from kaleido_cuda.lab.train.evaluate import EvalConfig  # noqa: E402


def _cell(f, group, key, fmt="{:.3f}"):
    part = f.get(group) if f else None
    return fmt.format(part[key]) if part else "-"


def markdown(result) -> str:
    m = result["machine"]
    lines = [f"# Membership audit of DM on the digits ({result['iterations']} iterations)", "",
             stamp_line(m),
             f"command: `{result['command']}`", "",
             "Members: the 1,257 training images; canaries: the images the initialisation selected; non-members: the "
             "540 held-out images. AUC and TPR against all non-members; epsilon: the strongest canary attack's 95% "
             "lower bound at delta 1e-5 (docs/privacy.md).", "",
             "| init | IPC | accuracy % | NN SSIM mean | data AUC (all) | data AUC (canaries) | data TPR@1% (canaries) "
             "| model AUC (all) | model AUC (canaries) | epsilon lower bound (attack) | audit s |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in (r for r in result["rows"] if not (r.get("reference") or r.get("lira"))):
        a, p, au = r["metrics"]["accuracy"], r["metrics"]["privacy"], r["audit"]
        data, model = au["attacks"].get("data_ssim"), au["attacks"].get("model_logit_conf")
        best = au["epsilon_lb"]
        eps = f"{best['epsilon_lb']:.2f} ({best['attack']})" if best else "-"
        seconds = au["timing"].get("data_seconds", 0) + au["timing"].get("model_seconds", 0)
        lines.append(f"| {r['init']} | {r['ipc']} | {100 * a['mean']:.1f} +- {100 * a['std']:.1f} | {p['nn_ssim_mean']:.3f} "
                     f"| {_cell(data, 'all', 'auc')} | {_cell(data, 'canaries', 'auc')} "
                     f"| {_cell(data, 'canaries', 'tpr_at_1pct_fpr')} | {_cell(model, 'all', 'auc')} "
                     f"| {_cell(model, 'canaries', 'auc')} | {eps} | {seconds:.0f} |")
    lines += ["", "data: largest SSIM to any synthetic image; model: LiRA's logit-scaled confidence, mean over the "
              "audit's target models (no shadow models). Every attack's figures are in privacy_table.json."]
    return "\n".join(lines) + "\n"


def lira_markdown(result) -> str:
    rows = [r for r in result["rows"] if r.get("lira") or r.get("reference")]
    if not rows:
        return ""
    lines = ["", f"## LiRA with shadow pipelines (K = {result['shadows']} shadows)", "",
             "Online LiRA (Carlini et al. 2022): the target models' logit-scaled confidence against per-candidate "
             "Gaussians fitted to K shadow pipelines, each repeating the whole pipeline (selection, initialisation, "
             "the same distillation, training) on a random half of the pooled members and non-members, "
             "with one variance shared by all candidates (K < 64); scored per target model and averaged.", "",
             "| set | accuracy % | LiRA AUC (all) | TPR@1% (all) | TPR@0.1% (all) | LiRA AUC (canaries) "
             "| TPR@1% (canaries) | offline AUC (all) | epsilon lower bound (LiRA, canaries) | shadows s |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        au = r["audit"]
        on, off = au["attacks"]["lira_online"], au["attacks"]["lira_offline"]
        eps = on["epsilon"]
        acc = 100 * torch_mean(au["target_accuracy"])
        lines.append(f"| {r['label']} | {acc:.1f} | {_cell(on, 'all', 'auc')} | {_cell(on, 'all', 'tpr_at_1pct_fpr')} "
                     f"| {_cell(on, 'all', 'tpr_at_0.1pct_fpr')} | {_cell(on, 'canaries', 'auc')} "
                     f"| {_cell(on, 'canaries', 'tpr_at_1pct_fpr')} | {_cell(off, 'all', 'auc')} "
                     f"| {eps['epsilon_lb']:.2f} | {au['timing']['lira_seconds']:.0f} |" if eps else
                     f"| {r['label']} | {acc:.1f} | - | - | - | - | - | - | - | - |")
    lines += ["", "accuracy: the audit's target models on the held-out split. TPR at 0.1% FPR is the TPR at zero "
              "false positives here (540 non-members). shadows s: the time to make the shadows that were not cached."]
    return "\n".join(lines) + "\n"


def torch_mean(values) -> float:
    return sum(values) / len(values)


def _audit(out, audit_cfg, make):
    """The run's audit.json if it was made with audit_cfg, else a new audit by make()."""
    path = os.path.join(out, "audit.json")
    audit = json.load(open(path)) if os.path.exists(path) else None
    if audit is None or audit["config"] != json.loads(json.dumps(asdict(audit_cfg))) or "target_accuracy" not in audit:
        print(f"audit {out}", flush=True)
        audit = make()
    return audit


def _run(runs_dir, init, ipc, iterations, seed, suffix="", eval_runs=3, eval_epochs=500, dm_options=None):
    """The DM run folder runs_dir/dm_INIT_ipcN[suffix], made (or resumed) unless it is finished;
    dm_options: more DMConfig fields (DP-DM's, for dp_table.py)."""
    out = os.path.join(runs_dir, f"dm_{init}_ipc{ipc}{suffix}" + (f"_seed{seed}" if seed else ""))
    if not os.path.exists(os.path.join(out, "metrics.json")):
        cfg = RunConfig(dataset="digits", method="dm", ipc=ipc, init=init, seed=seed, kt_views=1,  # as committed
                        dm=DMConfig(iterations=iterations, seed=seed, **(dm_options or {})), baselines=False,
                        eval=EvalConfig(runs=eval_runs, epochs=eval_epochs))
        print(f"dm {init} IPC {ipc} ({iterations} iterations) -> {out}", flush=True)
        distill_run(cfg, out, resume=True, progress=False)
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inits", nargs="+", default=["kt", "real", "noise"])
    ap.add_argument("--ipcs", nargs="*", type=int, default=[1, 10, 50])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--models", type=int, default=2, help="audit: target models (default 2)")
    ap.add_argument("--shadows", type=int, default=8, help="LiRA shadow pipelines (0: no LiRA rows)")
    ap.add_argument("--lira-inits", nargs="*", default=["kt", "real"], help="inits with LiRA rows, at --lira-ipc")
    ap.add_argument("--lira-ipc", type=int, default=10)
    ap.add_argument("--lira-iterations", type=int, default=None,
                    help="the LiRA rows' runs' distillation iterations (default --iterations; the shadows repeat it)")
    ap.add_argument("--lira-epochs", type=int, default=None,
                    help="the LiRA rows' target and shadow models' epochs (default: the runs' evaluation epochs)")
    ap.add_argument("--lira-eval-runs", type=int, default=3,
                    help="evaluation models of the LiRA rows' runs (the audit trains its own --models targets)")
    ap.add_argument("--references", nargs="*", default=["full", "subset"],
                    help="LiRA references: 'subset' (a random real subset of --lira-ipc, no distillation), "
                         "'full' (the whole training split, --full-epochs)")
    ap.add_argument("--full-epochs", type=int, default=30)
    ap.add_argument("--eval-epochs", type=int, default=500, help="the runs' evaluation (and the audits') epochs")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default="runs/digits")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    result = {"machine": machine_stamp("cpu"), "iterations": args.iterations,
              "command": command_line("privacy_table.py", argv), "shadows": args.shadows, "rows": []}
    plain = AuditConfig(models=args.models, seed=args.seed)
    lira = AuditConfig(attacks=("data", "model", "lira"), models=args.models, seed=args.seed, shadows=args.shadows,
                       epochs=args.lira_epochs)

    def save(row):
        result["rows"].append(row)
        write_json(os.path.join(args.out, "privacy_table.json"), result)
        write_text_atomic(os.path.join(args.out, "privacy_table.md"), markdown(result) + lira_markdown(result))

    for ipc in args.ipcs:
        for init in args.inits:
            out = _run(args.runs_dir, init, ipc, args.iterations, args.seed, eval_epochs=args.eval_epochs)
            audit = _audit(out, plain, lambda: audit_run(out, plain, progress=False))
            save({"method": "dm", "init": init, "ipc": ipc, "seed": args.seed, "run": out, "label": f"DM, {init} init",
                  "metrics": json.load(open(os.path.join(out, "metrics.json"))), "audit": audit})
    lira_its = args.lira_iterations if args.lira_iterations is not None else args.iterations
    suffix = "" if lira_its == args.iterations else f"_it{lira_its}"
    for init in args.lira_inits if args.shadows else []:
        out = _run(args.runs_dir, init, args.lira_ipc, lira_its, args.seed, suffix=suffix, eval_runs=args.lira_eval_runs,
                   eval_epochs=args.eval_epochs)
        audit = _audit(out, lira, lambda: audit_run(out, lira, progress=False))
        save({"method": "dm", "init": init, "ipc": args.lira_ipc, "seed": args.seed, "run": out, "lira": True,
              "label": f"DM ({lira_its} iterations), {init} init", "metrics": json.load(open(os.path.join(out, "metrics.json"))),
              "audit": audit})
    for reference in args.references if args.shadows else []:  # in the order given
        if reference == "subset":
            out = _run(args.runs_dir, "real", args.lira_ipc, 0, args.seed, suffix="_subset",
                       eval_runs=args.lira_eval_runs, eval_epochs=args.eval_epochs)
            audit = _audit(out, lira, lambda: audit_run(out, lira, progress=False))
            save({"method": "none", "init": "real", "ipc": args.lira_ipc, "seed": args.seed, "run": out,
                  "label": f"random real subset (IPC {args.lira_ipc})", "reference": True,
                  "metrics": json.load(open(os.path.join(out, "metrics.json"))), "audit": audit})
        elif reference == "full":
            out = os.path.join(args.runs_dir, "full_training_set" + (f"_seed{args.seed}" if args.seed else ""))
            full = AuditConfig(attacks=("model", "lira"), models=args.models, seed=args.seed, shadows=args.shadows,
                               epochs=args.full_epochs)
            audit = _audit(out, full, lambda: audit_full_training_set(out, "digits", full, progress=False))
            save({"method": "none", "init": None, "ipc": None, "seed": args.seed, "run": out,
                  "label": f"full training set ({args.full_epochs} epochs)", "reference": True, "metrics": None,
                  "audit": audit})
        else:
            raise SystemExit(f"unknown reference {reference!r}: choose subset or full")
    print(markdown(result) + lira_markdown(result))


if __name__ == "__main__":
    main()
