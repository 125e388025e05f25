"""DATM and RDED on the digits, from real, KT and noise initialisation, beside MTT at the same
iteration budget: accuracy (with the method's evaluation protocol), NN SSIM, the canaries' data
attack AUC, seconds per iteration.

    python benchmarks/methods_table.py [--iterations 100] [--eval-epochs 300] [--only NAME ...]
                                       [--buffer runs/buffers/digits_convnet] [--runs-dir runs/methods]

Budget (the KT frontier's): 2 evaluation ConvNets of --eval-epochs; DATM and MTT run --iterations
with 20 student steps on batches of 20 images (`--batch-syn 20`, as the MTT rows of the digits
table), one seed. KT tiles and images use 3 views (the paper's number). RDED uses factor 1 (its
scripts' choice at 32x32: one crop per image, no stitching).
DATM's label_init: "images" (DATM's rule) for datm_real_* and datm_kt_ipc10, the point's name
for the other two KT points at IPC 10, `kaleido distill`'s default (class_mean) for the rest.
Resumable: the committed table's rows (same budget) are kept, since run folders are not committed;
a finished run folder is reused, an interrupted one resumes; DIR/methods_table.{json,md} are
rewritten after every run, every row stamped with the commit and the machine it was measured on.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, committed_rows, machine_stamp, stamp_line, write_json  # noqa: E402
from digits_table import ensure_buffer  # noqa: E402

from kaleido_cuda.lab.distill import DATMConfig, MTTConfig, RDEDConfig  # noqa: E402
from kaleido_cuda.lab.distill.datm import default_label_init  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.pipeline.audit import audit_run  # noqa: E402
from kaleido_cuda.lab.pipeline.config import RunConfig  # noqa: E402
from kaleido_cuda.lab.pipeline.distill import distill_run  # noqa: E402
from kaleido_cuda.lab.privacy.audit import AuditConfig  # noqa: E402
from kaleido_cuda.lab.train.evaluate import EvalConfig  # noqa: E402


def _points():
    """name -> (method, init, ipc, DATM's label_init), in the order they run: what the issue's
    targets need first (RDED at IPC 10, DATM from real and KT images beside MTT at IPC 10), then RDED
    from KT at IPC 50 (a KD evaluation of 500 images is about 17 minutes on 2 cores), DATM from KT
    with its labels started from the KT images' sources or the class means, IPC 1, DATM from noise.
    The IPC 1 and noise rows of DATM use `kaleido distill`'s label_init for their initialisation."""
    out = {f"rded_{init}_ipc10": ("rded", init, 10, None) for init in ("real", "kt", "noise")}
    out["rded_real_ipc50"] = ("rded", "real", 50, None)
    out.update({"datm_real_ipc10": ("datm", "real", 10, "images"), "mtt_real_ipc10": ("mtt", "real", 10, None),
                "datm_kt_ipc10": ("datm", "kt", 10, "images"), "rded_kt_ipc50": ("rded", "kt", 50, None),
                "datm_kt_sources_ipc10": ("datm", "kt", 10, "sources"),
                "datm_kt_class_mean_ipc10": ("datm", "kt", 10, "class_mean")})
    out.update({f"rded_{init}_ipc1": ("rded", init, 1, None) for init in ("real", "kt", "noise")})
    out["mtt_real_ipc1"] = ("mtt", "real", 1, None)
    out.update({f"datm_{init}_ipc1": ("datm", init, 1, default_label_init(init)) for init in ("real", "kt", "noise")})
    out["datm_noise_ipc10"] = ("datm", "noise", 10, default_label_init("noise"))
    return out


POINTS = _points()
# The runs that also train the baselines (a random real subset of the IPC, the full training set):
# one per IPC, since every run of an IPC would measure the same ones.
BASELINE_RUNS = ("rded_real_ipc10", "rded_real_ipc50", "rded_real_ipc1")


def run_config(name: str, args) -> RunConfig:
    method, init, ipc, label_init = POINTS[name]
    trajectory = dict(iterations=args.iterations, buffer=args.buffer, dataset="digits", batch_syn=20)
    return RunConfig(dataset="digits", method=method, ipc=ipc, init=init, kt_views=3 if init == "kt" else 1,
                     mtt=MTTConfig(**trajectory), datm=DATMConfig(**trajectory, label_init=label_init),
                     rded=RDEDConfig(),
                     eval=EvalConfig(runs=2, epochs=args.eval_epochs),
                     baselines=name in BASELINE_RUNS)


def run_point(name: str, args) -> dict:
    out = os.path.join(args.runs_dir, name)
    if not os.path.exists(os.path.join(out, "metrics.json")):
        print(f"{name} -> {out}", flush=True)
        distill_run(run_config(name, args), out, resume=True, progress=False)
    audit_path = os.path.join(out, "audit.json")
    audit = json.load(open(audit_path)) if os.path.exists(audit_path) else None
    method, init, ipc, label_init = POINTS[name]
    if audit is None and init != "noise":
        audit = audit_run(out, AuditConfig(attacks=("data",)), progress=False)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    auc = [v["canaries"]["auc"] for v in (audit or {}).get("attacks", {}).values() if v.get("canaries")]
    config = json.load(open(os.path.join(out, "config.json")))
    stamp = machine_stamp("cpu")
    return {"name": name, "method": method, "init": init, "ipc": ipc, "label_init": label_init,
            "measured": {k: stamp[k] for k in ("commit", "cpu", "date")},
            "factor": config["rded"]["factor"] if method == "rded" else None,
            "accuracy": metrics["accuracy"], "protocol": metrics["eval"]["protocol"], "lr": metrics["eval"]["lr"],
            "nn_ssim": metrics["privacy"]["nn_ssim_mean"], "heldout_nn_ssim": metrics["privacy"]["heldout_nn_ssim_mean"],
            "canaries": (audit or {}).get("canaries", 0), "canary_auc_max": max(auc) if auc else None,
            "timing": metrics["timing"], "baselines": metrics.get("baselines")}


def earlier_rows(path, args) -> list:
    """The committed table's rows (same budget), each stamped with where it was measured: rows
    from before per-row stamps get the table's stamp, the commit that wrote the file."""
    rows = committed_rows(path, args)
    if rows:
        with open(path) as f:
            machine = json.load(f)["machine"]
        for r in rows:
            r.setdefault("measured", {k: machine[k] for k in ("commit", "cpu", "date")})
            r.setdefault("label_init", POINTS[r["name"]][3])
    return rows


def markdown(result) -> str:
    lines = ["# DATM and RDED on the digits", "", stamp_line(result["machine"]), f"command: `{result['command']}`", "",
             f"Budget: DATM and MTT {result['iterations']} iterations (20 student steps, batches of 20); 2 evaluation "
             f"ConvNets of {result['eval_epochs']} epochs with the method's protocol (hard: class labels; soft: DATM's "
             "learned labels; kd: RDED's observer as teacher); one seed. Canary AUC: the strongest data attack on the "
             "training images the set was made from (RDED: every tile's source) against held-out images.", "",
             "| run | protocol | accuracy % | NN SSIM | canaries | canary AUC (data) | s / iteration |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        a, t = r["accuracy"], r["timing"]
        spi = "-" if t.get("seconds_per_iteration") is None else f"{t['seconds_per_iteration']:.2f}"
        if r["method"] == "rded":
            spi = f"- ({t['distill_seconds']:.0f} s to select)"
        auc = "-" if r["canary_auc_max"] is None else f"{r['canary_auc_max']:.3f}"
        lines.append(f"| {r['name']} | {r['protocol']} | {100 * a['mean']:.1f} +- {100 * a['std']:.1f} | "
                     f"{r['nn_ssim']:.3f} | {r['canaries']} | {auc} | {spi} |")
    baseline_of_ipc = {}  # every RDED run of an IPC measures the same baseline: show it once
    for r in result["rows"]:
        if r["baselines"]:
            baseline_of_ipc.setdefault(r["ipc"], r["baselines"]["random_real"])
    for ipc, b in baseline_of_ipc.items():
        lines.append(f"| random real subset, IPC {ipc} | hard | {100 * b['mean']:.1f} +- {100 * b['std']:.1f} "
                     "| 1.000 | - | - | - |")
    if result["rows"]:
        lines += ["", f"Held-out real digits' NN SSIM: {result['rows'][0]['heldout_nn_ssim']:.3f}."]
    lines += ["", "Where each row was measured (commit of the checkout; rows carried over from an earlier table have "
              "the commit that wrote it):"]
    where = {}
    for r in result["rows"]:
        m = r["measured"]
        where.setdefault(f"commit {m['commit']}, {m['cpu']}", []).append(r["name"])
    lines += [f"- {k}: {', '.join(names)}" for k, names in where.items()]
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--iterations", type=int, default=100)
    ap.add_argument("--eval-epochs", type=int, default=300)
    ap.add_argument("--buffer", default="runs/buffers/digits_convnet")
    ap.add_argument("--runs-dir", default=os.path.join("runs", "methods"))
    ap.add_argument("--out", default=RESULTS)
    ap.add_argument("--only", nargs="*", help="point names (default: all)")
    args = ap.parse_args(argv)
    if args.only and set(args.only) - set(POINTS):
        ap.error(f"unknown point(s) {sorted(set(args.only) - set(POINTS))}; known: {sorted(POINTS)}")
    ensure_buffer(args.buffer)
    rows = earlier_rows(os.path.join(args.out, "methods_table.json"), args)
    for name in POINTS:
        if (args.only and name not in args.only) or any(r["name"] == name for r in rows):
            continue
        rows.append(run_point(name, args))
        rows.sort(key=lambda r: list(POINTS).index(r["name"]))
        result = {"machine": machine_stamp("cpu"), "command": command_line("methods_table.py", argv),
                  "iterations": args.iterations, "eval_epochs": args.eval_epochs, "rows": rows}
        write_json(os.path.join(args.out, "methods_table.json"), result)
        write_text_atomic(os.path.join(args.out, "methods_table.md"), markdown(result))


if __name__ == "__main__":
    main()
