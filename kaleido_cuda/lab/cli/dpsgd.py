"""`kaleido dpsgd`: the formal-privacy baseline, ConvNets trained with DP-SGD (pipeline/dpsgd.py)."""
from __future__ import annotations

from ..dp.dpsgd import OPACUS_ACCOUNTANTS, DPSGDConfig
from ..train.models import MODELS
from .options import default, shared, shown


def register(sub) -> None:
    p = sub.add_parser("dpsgd", help="train ConvNets on the real training split with DP-SGD (Opacus): the formal-privacy "
                                     "baseline")
    shared(p, "dataset", "data_root")
    p.add_argument("--epsilon", type=float, required=True, help="privacy budget; the noise is calibrated to spend it")
    p.add_argument("--delta", type=float, default=default(DPSGDConfig, "delta"), help=f"delta (default {shown(default(DPSGDConfig, 'delta'))})")
    p.add_argument("--epochs", type=int, default=default(DPSGDConfig, "epochs"), help="epochs (default %(default)s)")
    p.add_argument("--batch-size", type=int, default=default(DPSGDConfig, "batch_size"),
                   help="expected Poisson batch size (default %(default)s)")
    p.add_argument("--lr", type=float, default=default(DPSGDConfig, "lr"),
                   help="SGD learning rate (default %(default)s)")
    p.add_argument("--momentum", type=float, default=default(DPSGDConfig, "momentum"),
                   help=f"SGD momentum (default {shown(default(DPSGDConfig, 'momentum'))})")
    p.add_argument("--clip", type=float, default=default(DPSGDConfig, "clip"),
                   help=f"per-example gradient norm (default {shown(default(DPSGDConfig, 'clip'))})")
    p.add_argument("--accountant", default=default(DPSGDConfig, "accountant"), choices=tuple(OPACUS_ACCOUNTANTS),
                   help="Opacus's accountant (default %(default)s)")
    p.add_argument("--model", default=default(DPSGDConfig, "model"), choices=MODELS,
                   help="network (default %(default)s)")
    p.add_argument("--models", type=int, default=default(DPSGDConfig, "runs"),
                   help="models trained, accuracy mean and std reported (default %(default)s)")
    shared(p, "seed", "device")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/dpsgd_eps8 (an interrupted run resumes)")
    shared(p, "quiet")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.dpsgd import dpsgd_run

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
