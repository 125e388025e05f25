"""The `kaleido` command line."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys


# The optional dependencies, by import name: what to pip-install, and the extras of this package
# (pyproject.toml) that bring each one.
_OPTIONAL = {"tqdm": "tqdm", "torchvision": "torchvision", "sklearn": "scikit-learn", "PIL": "pillow",
             "scipy": "scipy", "matplotlib": "matplotlib", "skimage": "scikit-image", "kornia": "kornia",
             "opacus": "opacus", "dp_accounting": "dp-accounting"}
_COMMAND_EXTRA = {"demo": "demo", "distill": "distill", "buffer": "distill", "eval": "distill",
                  "quickstart": "distill", "audit": "audit", "dpsgd": "dp"}


# The commands that split their work across torchrun's ranks (the others refuse to run under it).
DISTRIBUTED_COMMANDS = ("distill", "buffer", "eval", "audit")


def _extras_with(package: str) -> list:
    """The extras of the installed kaleido-cuda that list `package` (empty without its metadata)."""
    import re
    from importlib import metadata

    try:
        requires = metadata.requires("kaleido-cuda") or []
    except metadata.PackageNotFoundError:
        return []
    extras = []
    for line in requires:  # e.g. 'tqdm; extra == "distill"'
        name = re.match(r"\s*([A-Za-z0-9_.-]+)", line)
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", line)
        if name and extra and name.group(1).lower() == package.lower():
            extras.append(extra.group(1))
    return extras


def missing_dependency_line(command: str, exc: ModuleNotFoundError):
    """One line saying which extra to install, for an optional dependency that is missing; None for
    any other missing module (a bug, which should show its traceback)."""
    top = (exc.name or "").split(".")[0]
    if top not in _OPTIONAL:
        return None
    package = _OPTIONAL[top]
    extras = _extras_with(package)
    extra = _COMMAND_EXTRA.get(command) if _COMMAND_EXTRA.get(command) in extras else (extras[0] if extras else None)
    if extra is None:
        return f"kaleido {command}: error: the optional dependency {package!r} is not installed: pip install {package}"
    return (f"kaleido {command}: error: the optional dependency {package!r} is not installed: "
            f"pip install \"kaleido-cuda[{extra}]\" (from a source checkout: "
            f"pip install --no-build-isolation \".[{extra}]\")")


def _demo(args):
    from .demo import run_demo

    report = run_demo(args.out, seed=args.seed, device=args.device, repeats=args.repeats)
    t = report["timing"]
    print(f"KT grid of the digits: {report['grid']}")
    print(f"speed: full KT chain forward+backward on {tuple(t['batch'])} ({t['device']}, {t['threads']} threads): "
          f"fused {t['fused_fwd_bwd_ms']:.1f} ms, reference {t['reference_fwd_bwd_ms']:.1f} ms "
          f"({t['speedup']:.1f}x)")
    return 0


def _info(args):
    from .ops import build_info

    print(json.dumps(build_info(), indent=2))
    return 0


def _distill(args):
    from .distill import DCConfig, DMConfig, MTTConfig
    from .evaluate import EvalConfig
    from .run import RunConfig, distill_run

    loop = dict(iterations=args.iterations, model=args.model, augment=args.augment, seed=args.seed,
                checkpoint_every_s=args.checkpoint_every)
    mtt = MTTConfig(**loop, dataset=args.dataset, buffer=args.buffer or _default_buffer(args),
                    syn_steps=args.syn_steps, expert_epochs=args.expert_epochs, max_start_epoch=args.max_start_epoch,
                    batch_syn=args.batch_syn)
    cfg = RunConfig(dataset=args.dataset, data_root=args.data_root, method=args.method, ipc=args.ipc, init=args.init,
                    strength=args.strength, seed=args.seed, device=args.device,
                    dm=DMConfig(**loop, batch_real=args.batch_real, dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta,
                                dp_clip=args.dp_clip, dp_sample_rate=args.dp_sample_rate,
                                dp_accountant=args.dp_accountant, dp_public_init=args.dp_public_init),
                    dc=DCConfig(**loop, batch_real=args.batch_real),
                    mtt=mtt,
                    eval=EvalConfig(model=args.eval_model, epochs=args.eval_epochs, runs=args.eval_runs,
                                    impl="eager" if args.augment == "eager" else "fused"),
                    full_epochs=args.full_epochs, baselines=not args.no_baselines)
    return _run_and_report(args.out, lambda: distill_run(cfg, args.out, resume=args.resume, progress=not args.quiet))


def _run_and_report(out: str, run) -> int:
    """run() is distill_run or evaluate_run, which join torchrun's process group (if any) from the
    run's device and show progress on rank 0 only; rank 0 prints the metrics, and the process
    group is closed however run() ends."""
    from .distributed import close_world, current_world

    try:
        metrics = run()
        if current_world().main:
            _print_metrics(out, metrics)
    finally:
        close_world()
    return 0


def _default_buffer(args) -> str:
    return os.path.join("runs", "buffers", f"{args.dataset.replace(':', '_').replace('/', '_')}_{args.model}")


def _buffer(args):
    import torch

    from .data import load_dataset
    from .distill import BufferConfig, train_buffer
    from .distributed import check_same_options, close_world, init_world

    cfg = BufferConfig(experts=args.experts, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                       model=args.model, augment=args.augment, seed=args.seed)
    cfg.check()
    ds = load_dataset(args.dataset, args.data_root)
    device = torch.device(args.device)
    out = args.out or _default_buffer(args)
    world = init_world(args.device)  # under torchrun the experts are split across the ranks
    try:
        check_same_options(world, {"config": dataclasses.asdict(cfg), "dataset": args.dataset,
                                   "out": os.path.abspath(out)})
        meta = train_buffer(ds.train_images.to(device), ds.train_labels.to(device), ds.test_images.to(device),
                            ds.test_labels.to(device), ds.num_classes, cfg, out, dataset=args.dataset,
                            progress=not args.quiet, world=world)
    finally:
        close_world()
    if world.main:
        accs = [e["test_accuracy"] for e in meta["experts"]]
        ranks = f" by {world.size} ranks" if world.distributed else ""
        print(f"{len(accs)} expert trajectories of {cfg.epochs} epochs in {out}{ranks}; expert test accuracy "
              f"{100 * min(accs):.1f}-{100 * max(accs):.1f} %")
    return 0


def _eval(args):
    from .evaluate import EvalConfig
    from .run import evaluate_run

    cfg = EvalConfig(model=args.eval_model, epochs=args.eval_epochs, runs=args.eval_runs)
    return _run_and_report(args.run, lambda: evaluate_run(args.run, cfg, baselines=not args.no_baselines,
                                                         progress=not args.quiet))


def _audit_report(args):
    import torch

    from .distributed import check_same_options, init_world
    from .privacy.audit import AuditConfig, audit_run, audit_set

    cfg = AuditConfig(attacks=tuple(a.strip() for a in args.attacks.split(",") if a.strip()), models=args.models,
                      epochs=args.epochs, delta=args.delta, seed=args.seed, shadows=args.shadows,
                      shadow_iterations=args.shadow_iterations, shadow_epochs=args.shadow_epochs)
    cfg.check()
    if (args.run is None) == (args.synthetic is None):
        raise ValueError("give a run folder, or --synthetic FILE with --dataset NAME (not both)")
    if args.run is not None:
        return audit_run(args.run, cfg, progress=not args.quiet), args.run
    from .data import load_dataset
    from .evaluate import EvalConfig
    from .privacy.foreign import load_foreign_set

    if args.dataset is None:
        raise ValueError("--synthetic needs --dataset NAME: the data the set was distilled from")
    world = init_world(args.device)
    check_same_options(world, {k: v for k, v in vars(args).items() if k != "func"})
    ds = load_dataset(args.dataset, args.data_root)
    images, labels = load_foreign_set(args.synthetic, ds, args.pixel_range, args.index)
    out = args.out or os.path.dirname(os.path.abspath(args.synthetic))
    if world.main:
        print("audit: a set made elsewhere: its initialisation images are unknown, so there are no canaries; "
              "data and model attacks only", flush=True)
    report = audit_set(out, images, labels, ds, [], "none (a set made elsewhere: its initialisation is unknown)",
                       EvalConfig(epochs=args.epochs or EvalConfig.epochs), torch.device(args.device), cfg,
                       progress=not args.quiet)
    return report, out


def _audit(args):
    from .distributed import close_world

    try:  # under torchrun the models and shadows are split across the ranks; rank 0 reports
        report, out = _audit_report(args)
    finally:
        close_world()
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


def _dpsgd(args):
    from .dp.dpsgd import DPSGDConfig, dpsgd_run

    cfg = DPSGDConfig(epsilon=args.epsilon, delta=args.delta, epochs=args.epochs, batch_size=args.batch_size, lr=args.lr,
                      momentum=args.momentum, clip=args.clip, accountant=args.accountant, model=args.model,
                      runs=args.models)
    metrics = dpsgd_run(args.out, cfg, args.dataset, args.data_root, args.device, args.seed, progress=not args.quiet)
    a, dp = metrics["accuracy"], metrics["dp"]
    print(f"DP-SGD accuracy {100 * a['mean']:.2f} +- {100 * a['std']:.2f} % over {len(a['runs'])} models; epsilon "
          f"{dp['epsilon']:.3f} at delta {dp['delta']:g} ({dp['steps']} steps, noise multiplier "
          f"{dp['noise_multiplier']:.3f}, sample rate {dp['sample_rate']:.3f}; {dp['accountant']})")
    print(f"results in {args.out}/metrics.json; audit with: kaleido audit {args.out} --attacks model,lira --shadows 8")
    return 0


def _quickstart(args):
    from .quickstart import run_quickstart

    run_quickstart(args.out, seed=args.seed, device=args.device, progress=not args.quiet)
    return 0


def _print_metrics(out, metrics):
    a, p = metrics["accuracy"], metrics["privacy"]
    print(f"accuracy {100 * a['mean']:.2f} +- {100 * a['std']:.2f} % over {len(a['runs'])} models")
    if "baselines" in metrics:
        b = metrics["baselines"]
        print(f"random real subset {100 * b['random_real']['mean']:.2f} +- {100 * b['random_real']['std']:.2f} %, "
              f"full training set {100 * b['full']['mean']:.2f} %")
    print(f"nearest-neighbour SSIM mean {p['nn_ssim_mean']:.3f} (held-out real images: {p['heldout_nn_ssim_mean']:.3f}), "
          f"max {p['nn_ssim_max']:.3f}, above 0.9: {100 * p['frac_ssim_over_0.9']:.0f}%")
    if "dp" in metrics:
        dp = metrics["dp"]
        print(f"DP-DM: epsilon {dp['epsilon']:.3f} at delta {dp['delta']:g} ({dp['steps']} iterations, noise multiplier "
              f"{dp['noise_multiplier']:.3f}, sample rate {dp['sample_rate']:.3f}; {dp['accountant']})")
    print(f"results in {out}/metrics.json")


def _add_eval_options(p):
    p.add_argument("--eval-model", default="convnet", help="model trained on the synthetic set (default convnet)")
    p.add_argument("--eval-epochs", type=int, default=500, help="epochs per evaluation model (default 500)")
    p.add_argument("--eval-runs", type=int, default=3, help="evaluation models, mean and std reported (default 3)")
    p.add_argument("--no-baselines", action="store_true", help="skip the random-real and full-set baselines")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="kaleido", description="Fused Kaleidoscopic Transformation tools")
    sub = ap.add_subparsers(dest="command", required=True)
    demo = sub.add_parser("demo", help="apply KT to the bundled sklearn digits: PNG grid and a speed line")
    demo.add_argument("--out", default="runs/demo", help="output folder (default runs/demo)")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--device", default="cpu", help="cpu or cuda")
    demo.add_argument("--repeats", type=int, default=5, help="timing repeats (median is reported)")
    demo.set_defaults(func=_demo)
    info = sub.add_parser("info", help="print what this build can run")
    info.set_defaults(func=_info)

    from .data import DATASETS
    from .models import MODELS

    d = sub.add_parser("distill", help="distil a dataset (KT/real/noise init), evaluate it, measure privacy")
    d.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits, bundled)")
    d.add_argument("--data-root", default=None, help="folder with torchvision's dataset files (never downloaded)")
    d.add_argument("--method", default="dm", help="distillation method: dm (default), dc or mtt")
    d.add_argument("--ipc", type=int, default=10, help="synthetic images per class (default 10)")
    d.add_argument("--init", default="kt", help="kt (default), real or noise")
    d.add_argument("--strength", type=float, default=1.0, help="KT strength in [0, 1] (default 1)")
    d.add_argument("--iterations", type=int, default=300, help="distillation iterations (default 300)")
    d.add_argument("--batch-real", type=int, default=256, help="real images per class and iteration (default 256)")
    d.add_argument("--model", default="convnet", choices=MODELS, help="network used for matching (default convnet)")
    d.add_argument("--augment", default="fused", choices=("fused", "eager", "none"),
                   help="DSA augmentation through the fused op (default), DSA's eager chain, or none")
    d.add_argument("--buffer", default=None,
                   help="mtt: the expert buffer from `kaleido buffer` (default runs/buffers/DATASET_MODEL)")
    d.add_argument("--syn-steps", type=int, default=20, help="mtt: student steps per iteration (default 20)")
    d.add_argument("--expert-epochs", type=int, default=2, help="mtt: expert epochs to match (default 2)")
    d.add_argument("--max-start-epoch", type=int, default=10, help="mtt: start epochs drawn below it (default 10)")
    d.add_argument("--batch-syn", type=int, default=None,
                   help="mtt: synthetic images per student step (default all of them)")
    d.add_argument("--dp-epsilon", type=float, default=None,
                   help="dm: DP distribution matching with this privacy budget (needs --init noise; docs/privacy.md)")
    d.add_argument("--dp-delta", type=float, default=1e-5, help="dm with --dp-epsilon: delta (default 1e-5)")
    d.add_argument("--dp-clip", type=float, default=None,
                   help="dm with --dp-epsilon: embedding clip norm (default: per iteration from noise images)")
    d.add_argument("--dp-sample-rate", type=float, default=None,
                   help="dm with --dp-epsilon: Poisson sample rate (default: --batch-real / the smallest class, at most 1)")
    d.add_argument("--dp-accountant", default="rdp", choices=("rdp", "pld"),
                   help="dm with --dp-epsilon: dp-accounting's RDP (default) or PLD accountant")
    d.add_argument("--dp-public-init", action="store_true",
                   help="dm with --dp-epsilon: allow --init real/kt, declaring the initial images public (their "
                        "privacy is then not covered)")
    d.add_argument("--full-epochs", type=int, default=30, help="epochs of the full-training-set baseline (default 30)")
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default="cpu", help="cpu or cuda")
    d.add_argument("--out", required=True, help="output folder, e.g. runs/NAME")
    d.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    d.add_argument("--checkpoint-every", type=float, default=120.0, help="seconds between checkpoints (default 120)")
    _add_eval_options(d)
    d.set_defaults(func=_distill)

    b = sub.add_parser("buffer", help="train expert networks on the real data and store their trajectories (for mtt)")
    b.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits, bundled)")
    b.add_argument("--data-root", default=None, help="folder with torchvision's dataset files (never downloaded)")
    b.add_argument("--model", default="convnet", choices=MODELS, help="expert network (default convnet)")
    b.add_argument("--experts", type=int, default=5, help="expert trajectories (default 5)")
    b.add_argument("--epochs", type=int, default=20, help="epochs per expert (default 20)")
    b.add_argument("--lr", type=float, default=0.01, help="expert learning rate, plain SGD (default 0.01)")
    b.add_argument("--batch-size", type=int, default=32, help="expert batch size (default 32)")
    b.add_argument("--augment", default="fused", choices=("fused", "eager", "none"), help="DSA while training")
    b.add_argument("--seed", type=int, default=0)
    b.add_argument("--device", default="cpu", help="cpu or cuda")
    b.add_argument("--out", default=None, help="buffer folder (default runs/buffers/DATASET_MODEL)")
    b.add_argument("--quiet", action="store_true", help="no progress bars")
    b.set_defaults(func=_buffer)

    e = sub.add_parser("eval", help="re-evaluate a finished run's synthetic set (rewrites its metrics.json)")
    e.add_argument("run", help="the run's output folder")
    _add_eval_options(e)
    e.set_defaults(func=_eval)

    a = sub.add_parser("audit", help="membership inference against a finished run's distilled set")
    a.add_argument("run", nargs="?", help="the run's output folder (from `kaleido distill`)")
    a.add_argument("--synthetic", default=None,
                   help="instead of a run: a set made by another tool (DC-benchmark data_save, MTT images_best.pt, "
                        "or a dict of images and labels)")
    a.add_argument("--dataset", default=None, help="with --synthetic: the dataset it was distilled from")
    a.add_argument("--data-root", default=None, help="folder with torchvision's dataset files (never downloaded)")
    a.add_argument("--pixel-range", default="normalised", choices=("normalised", "01"),
                   help="with --synthetic: images normalised by the dataset's mean and std (default) or in [0, 1]")
    a.add_argument("--index", type=int, default=-1, help="with --synthetic: which experiment of a data_save list")
    a.add_argument("--out", default=None, help="with --synthetic: output folder (default: the file's folder)")
    a.add_argument("--device", default="cpu", help="cpu or cuda")
    a.add_argument("--attacks", default="data,model",
                   help="comma-separated: data, model, lira (lira needs --shadows; default data,model)")
    a.add_argument("--shadows", type=int, default=0,
                   help="lira: shadow pipelines, each a distillation and a model (about 9 min each for DM at IPC 10 "
                        "on 2 CPU cores)")
    a.add_argument("--shadow-iterations", type=int, default=None, help="lira: shadow distillation iterations "
                   "(default: the run's)")
    a.add_argument("--shadow-epochs", type=int, default=None, help="lira: shadow model epochs (default: the run's)")
    a.add_argument("--models", type=int, default=2, help="target models for the model attacks (default 2)")
    a.add_argument("--epochs", type=int, default=None, help="their epochs (default: the run's evaluation epochs)")
    a.add_argument("--delta", type=float, default=1e-5, help="delta of the epsilon lower bound (default 1e-5)")
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--quiet", action="store_true", help="no progress bars")
    a.set_defaults(func=_audit)

    p = sub.add_parser("dpsgd", help="train ConvNets on the real training split with DP-SGD (Opacus): the formal-privacy "
                                     "baseline")
    p.add_argument("--dataset", default="digits", help=f"one of {', '.join(DATASETS)} (default digits, bundled)")
    p.add_argument("--data-root", default=None, help="folder with torchvision's dataset files (never downloaded)")
    p.add_argument("--epsilon", type=float, required=True, help="privacy budget; the noise is calibrated to spend it")
    p.add_argument("--delta", type=float, default=1e-5, help="delta (default 1e-5)")
    p.add_argument("--epochs", type=int, default=20, help="epochs (default 20)")
    p.add_argument("--batch-size", type=int, default=256, help="expected Poisson batch size (default 256)")
    p.add_argument("--lr", type=float, default=2.0, help="SGD learning rate (default 2.0)")
    p.add_argument("--momentum", type=float, default=0.0, help="SGD momentum (default 0)")
    p.add_argument("--clip", type=float, default=1.0, help="per-example gradient norm (default 1)")
    p.add_argument("--accountant", default="rdp", choices=("rdp", "prv"), help="Opacus's accountant (default rdp)")
    p.add_argument("--model", default="convnet", choices=MODELS, help="network (default convnet)")
    p.add_argument("--models", type=int, default=3, help="models trained, accuracy mean and std reported (default 3)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu", help="cpu or cuda")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/dpsgd_eps8 (an interrupted run resumes)")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=_dpsgd)

    q = sub.add_parser("quickstart", help="the README's main job: DM on the digits from KT and from real init, compared")
    q.add_argument("--out", default="runs/quickstart")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--device", default="cpu")
    q.add_argument("--quiet", action="store_true")
    q.set_defaults(func=_quickstart)
    args = ap.parse_args(argv)
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command not in DISTRIBUTED_COMMANDS:
        print(f"kaleido {args.command}: error: only `kaleido distill` (DM, DC), `buffer`, `eval` and `audit` run "
              "under torchrun; run this command as one process", file=sys.stderr)
        return 2
    if getattr(args, "device", "cpu").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA GPU is available")
    try:
        return args.func(args)
    except ModuleNotFoundError as exc:  # before FileNotFoundError's sibling OSError: not one of them
        line = missing_dependency_line(args.command, exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:  # bad arguments or missing files: one clear line
        print(f"kaleido {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
