"""The digits privacy table: DM runs (`kaleido distill` defaults) audited with `kaleido audit`,
accuracy beside every privacy figure, per initialisation and IPC.

    python benchmarks/privacy_table.py [--inits kt real] [--ipcs 10] [--iterations 300]
                                       [--models 2] [--runs-dir runs/digits] [--out DIR]

Run folders are digits_table.py's (runs/digits/dm_INIT_ipcN): a finished run is reused, an
interrupted one resumes, a missing one is made (without baselines: digits_table.py has them). A run
whose audit.json was made with other audit options is audited again. Writes DIR/privacy_table.{json,md}
after every run, stamped with the commit and the machine. LiRA rows (shadow pipelines) are not
here yet.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

from kaleido_cuda.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.distill import DMConfig  # noqa: E402
from kaleido_cuda.privacy.audit import AuditConfig, audit_run  # noqa: E402
from kaleido_cuda.run import RunConfig, distill_run  # noqa: E402


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
    for r in result["rows"]:
        a, p, au = r["metrics"]["accuracy"], r["metrics"]["privacy"], r["audit"]
        data, model = au["attacks"].get("data_ssim"), au["attacks"].get("model_logit_conf")
        best = au["epsilon_lb"]
        eps = f"{best['epsilon_lb']:.2f} ({best['attack']})" if best else "-"
        seconds = sum(au["timing"].values())
        lines.append(f"| {r['init']} | {r['ipc']} | {100 * a['mean']:.1f} +- {100 * a['std']:.1f} | {p['nn_ssim_mean']:.3f} "
                     f"| {_cell(data, 'all', 'auc')} | {_cell(data, 'canaries', 'auc')} "
                     f"| {_cell(data, 'canaries', 'tpr_at_1pct_fpr')} | {_cell(model, 'all', 'auc')} "
                     f"| {_cell(model, 'canaries', 'auc')} | {eps} | {seconds:.0f} |")
    lines += ["", "data: largest SSIM to any synthetic image; model: LiRA's logit-scaled confidence, mean over the "
              "audit's target models (no shadow models). Every attack's figures are in privacy_table.json."]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--inits", nargs="+", default=["kt", "real"])
    ap.add_argument("--ipcs", nargs="+", type=int, default=[10])
    ap.add_argument("--iterations", type=int, default=300)
    ap.add_argument("--models", type=int, default=2, help="audit: target models (default 2)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--runs-dir", default="runs/digits")
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    result = {"machine": machine_stamp("cpu"), "iterations": args.iterations,
              "command": command_line("privacy_table.py", argv),
              "rows": []}
    audit_cfg = AuditConfig(models=args.models, seed=args.seed)
    for ipc in args.ipcs:
        for init in args.inits:
            out = os.path.join(args.runs_dir, f"dm_{init}_ipc{ipc}" + (f"_seed{args.seed}" if args.seed else ""))
            metrics_path = os.path.join(out, "metrics.json")
            if not os.path.exists(metrics_path):
                cfg = RunConfig(dataset="digits", method="dm", ipc=ipc, init=init, seed=args.seed,
                                dm=DMConfig(iterations=args.iterations, seed=args.seed), baselines=False)
                print(f"dm {init} IPC {ipc} -> {out}", flush=True)
                distill_run(cfg, out, resume=True, progress=False)
            audit_path = os.path.join(out, "audit.json")
            audit = json.load(open(audit_path)) if os.path.exists(audit_path) else None
            if audit is None or audit["config"] != json.loads(json.dumps(asdict(audit_cfg))):
                print(f"audit {out}", flush=True)
                audit = audit_run(out, audit_cfg, progress=False)
            result["rows"].append({"method": "dm", "init": init, "ipc": ipc, "seed": args.seed, "run": out,
                                   "metrics": json.load(open(metrics_path)), "audit": audit})
            write_json(os.path.join(args.out, "privacy_table.json"), result)
            write_text_atomic(os.path.join(args.out, "privacy_table.md"), markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
