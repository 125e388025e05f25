"""`kaleido audit`: membership inference against a run's distilled set, a DP-SGD run, or a set
made by another tool (pipeline/audit.py)."""
from __future__ import annotations

from ..privacy.audit import AuditConfig
from ..privacy.foreign import PIXEL_RANGES
from .options import default, shared, shown


def register(sub) -> None:
    p = sub.add_parser("audit", help="membership inference against a finished run's distilled set")
    p.add_argument("run", nargs="?", help="the run's output folder (from `kaleido distill`)")
    p.add_argument("--synthetic", default=None,
                   help="instead of a run: a set made by another tool (DC-benchmark data_save, MTT images_best.pt, "
                        "or a dict of images and labels)")
    shared(p, "dataset", "data_root",
           dataset=dict(default=None, help="with --synthetic: the dataset it was distilled from"))
    p.add_argument("--pixel-range", default=PIXEL_RANGES[0], choices=PIXEL_RANGES,
                   help="with --synthetic: images normalised by the dataset's mean and std (default) or in [0, 1]")
    p.add_argument("--index", type=int, default=-1, help="with --synthetic: which experiment of a data_save list")
    p.add_argument("--out", default=None, help="with --synthetic: output folder (default: the file's folder)")
    shared(p, "device")
    p.add_argument("--attacks", default=",".join(default(AuditConfig, "attacks")),
                   help="comma-separated: data, model, lira (lira needs --shadows; default %(default)s)")
    p.add_argument("--shadows", type=int, default=default(AuditConfig, "shadows"),
                   help="lira: shadow pipelines, each a distillation and a model")
    p.add_argument("--shadow-iterations", type=int, default=default(AuditConfig, "shadow_iterations"),
                   help="lira: shadow distillation iterations (default: the run's)")
    p.add_argument("--shadow-epochs", type=int, default=default(AuditConfig, "shadow_epochs"),
                   help="lira: shadow model epochs (default: the run's)")
    p.add_argument("--models", type=int, default=default(AuditConfig, "models"),
                   help="target models for the model attacks (default %(default)s)")
    p.add_argument("--epochs", type=int, default=default(AuditConfig, "epochs"),
                   help="their epochs (default: the run's evaluation epochs)")
    p.add_argument("--delta", type=float, default=default(AuditConfig, "delta"),
                   help=f"delta of the epsilon lower bound (default {shown(default(AuditConfig, 'delta'))})")
    shared(p, "seed", "quiet")
    p.set_defaults(func=run)


def _report(args):
    from ..pipeline.audit import audit_foreign_set, audit_run

    cfg = AuditConfig(attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()), models=args.models,
                      epochs=args.epochs, delta=args.delta, seed=args.seed, shadows=args.shadows,
                      shadow_iterations=args.shadow_iterations, shadow_epochs=args.shadow_epochs)
    cfg.check()
    if (args.run is None) == (args.synthetic is None):
        raise ValueError("give a run folder, or --synthetic FILE with --dataset NAME (not both)")
    if args.run is not None:
        return audit_run(args.run, cfg, progress=not args.quiet), args.run
    options = {k: v for k, v in vars(args).items() if k != "func"}  # every rank must have the same
    return audit_foreign_set(args.synthetic, args.dataset, cfg, args.data_root, args.pixel_range, args.index,
                             args.out, args.device, options, progress=not args.quiet)


def run(args) -> int:
    report, out = _report(args)
    if not report:  # another rank than 0
        return 0
    for name, f in report["attacks"].items():
        c = f["canaries"]
        canary = f", canaries AUC {c['auc']:.3f}, TPR@1%FPR {c['tpr_at_1pct_fpr']:.3f}" if c else ""
        print(f"{name:18s} AUC {f['all']['auc']:.3f}, TPR@1%FPR {f['all']['tpr_at_1pct_fpr']:.3f}{canary}")
    best = report["epsilon_lb"]
    if best:
        print(f"epsilon >= {best['epsilon_lb']:.2f} (delta {args.delta:g}, strongest canary attack: {best['attack']})")
    print(f"results in {out}/audit.json, audit.md, audit_roc.png")
    return 0
