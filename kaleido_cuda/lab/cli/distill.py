"""`kaleido distill`: distil a dataset (KT, real or noise initialisation), evaluate the set, measure
its privacy (pipeline/distill.py)."""
from __future__ import annotations

from ...init import METHODS as INITS
from ..distill import METHODS, DATMConfig, DCConfig, DMConfig, MTTConfig, RDEDConfig
from ..distill.common import LoopOptions
from ..distill.datm import LABEL_INITS
from ..dp.accounting import ACCOUNTANTS
from ..files.layout import default_buffer
from ..pipeline.config import RunConfig
from ..train.models import MODELS
from .options import add_eval_options, default, eval_config, one_of, shared, shown
from .report import print_metrics

AUGMENTS = ("fused", "eager", "none")


def _add_run_options(p) -> None:
    shared(p, "dataset", "data_root")
    p.add_argument("--method", default=default(RunConfig, "method"),
                   help=f"distillation method: {one_of(METHODS, default(RunConfig, 'method'))}")
    p.add_argument("--ipc", type=int, default=default(RunConfig, "ipc"),
                   help="synthetic images per class (default %(default)s)")
    p.add_argument("--init", default=default(RunConfig, "init"), help=one_of(INITS[::-1], default(RunConfig, "init")))
    p.add_argument("--strength", type=float, default=default(RunConfig, "strength"),
                   help=f"KT strength in [0, 1] (default {shown(default(RunConfig, 'strength'))})")
    p.add_argument("--kt-views", type=int, default=default(RunConfig, "kt_views"),
                   help="KT views averaged per initial image (default %(default)s, the paper's number)")
    p.add_argument("--lpips-weights", default=None, metavar="PATH",
                   help="torchvision AlexNet weights for min-LPIPS (default: the torch hub cache; without them "
                        "LPIPS is skipped, nothing is downloaded)")
    p.add_argument("--kt-families", default=default(RunConfig, "kt_families"),
                   help="the KT families that are on, comma-separated, for ablations (default %(default)s)")
    p.add_argument("--iterations", type=int, default=default(LoopOptions, "iterations"),
                   help="distillation iterations (default %(default)s)")
    p.add_argument("--batch-real", type=int, default=default(DMConfig, "batch_real"),
                   help="real images per class and iteration (default %(default)s)")
    p.add_argument("--model", default=default(LoopOptions, "model"), choices=MODELS,
                   help="network used for matching (default %(default)s)")
    p.add_argument("--augment", default=default(LoopOptions, "augment"), choices=AUGMENTS,
                   help="DSA augmentation through the fused op (default), DSA's eager chain, or none")


def _add_mtt_options(p) -> None:
    p.add_argument("--buffer", default=None,
                   help="mtt, datm: the expert buffer from `kaleido buffer` (default runs/buffers/DATASET_MODEL)")
    p.add_argument("--syn-steps", type=int, default=default(MTTConfig, "syn_steps"),
                   help="mtt, datm: student steps per iteration (default %(default)s)")
    p.add_argument("--expert-epochs", type=int, default=default(MTTConfig, "expert_epochs"),
                   help="mtt, datm: expert epochs to match (default %(default)s)")
    p.add_argument("--max-start-epoch", type=int, default=None,
                   help=f"mtt: start epochs drawn below it (default {default(MTTConfig, 'max_start_epoch')}); datm: "
                        "the window's final bound (default: set by the IPC, docs/distill.md)")
    p.add_argument("--batch-syn", type=int, default=default(MTTConfig, "batch_syn"),
                   help="mtt, datm: synthetic images per student step (default all of them)")


def _add_datm_rded_options(p) -> None:
    p.add_argument("--min-start-epoch", type=int, default=None, help="datm: the window's lower bound (default: by IPC)")
    p.add_argument("--initial-max-start-epoch", type=int, default=None,
                   help="datm: the window's upper bound at the first iteration (default: by IPC)")
    p.add_argument("--expansion-end", type=int, default=None,
                   help="datm: iteration at which the window reaches its final bound (default: half the run)")
    p.add_argument("--lr-labels", type=float, default=default(DATMConfig, "lr_labels"),
                   help=f"datm: step size of the soft labels (default {shown(default(DATMConfig, 'lr_labels'))})")
    p.add_argument("--label-init", choices=LABEL_INITS, default=None,
                   help="datm: where the soft labels start: the experts' logits on the initial images (DATM's rule; "
                        "under KT, the KT images), on their real sources, or the class's mean over the training "
                        "images (default: images for --init real, class_mean for kt and noise)")
    p.add_argument("--observer", default=default(RDEDConfig, "observer"), metavar="PATH",
                   help="rded: an observer checkpoint (default: trained on the training split, shared cache)")
    p.add_argument("--observer-epochs", type=int, default=default(RDEDConfig, "observer_epochs"),
                   help="rded: epochs of an observer trained here (default %(default)s)")
    p.add_argument("--rded-factor", type=int, default=default(RDEDConfig, "factor"),
                   help="rded: crops per side of a stitched image (default: 1 up to 64 px a side, 2 above, "
                        "as RDED's scripts)")
    p.add_argument("--crops-per-image", type=int, default=default(RDEDConfig, "crops_per_image"),
                   help="rded: random crops scored per image (default %(default)s)")


def _add_dp_options(p) -> None:
    p.add_argument("--dp-epsilon", type=float, default=default(DMConfig, "dp_epsilon"),
                   help="dm: DP distribution matching with this privacy budget (needs --init noise; docs/privacy.md)")
    p.add_argument("--dp-delta", type=float, default=default(DMConfig, "dp_delta"),
                   help=f"dm with --dp-epsilon: delta (default {shown(default(DMConfig, 'dp_delta'))})")
    p.add_argument("--dp-clip", type=float, default=default(DMConfig, "dp_clip"),
                   help="dm with --dp-epsilon: embedding clip norm (default: per iteration from noise images)")
    p.add_argument("--dp-sample-rate", type=float, default=default(DMConfig, "dp_sample_rate"),
                   help="dm with --dp-epsilon: Poisson sample rate (default: --batch-real / the smallest class, at most 1)")
    p.add_argument("--dp-accountant", default=default(DMConfig, "dp_accountant"), choices=tuple(ACCOUNTANTS),
                   help="dm with --dp-epsilon: dp-accounting's RDP (default) or PLD accountant")
    p.add_argument("--dp-public-init", action="store_true",
                   help="dm with --dp-epsilon: allow --init real/kt, declaring the initial images public (their "
                        "privacy is then not covered)")


def register(sub) -> None:
    p = sub.add_parser("distill", help="distil a dataset (KT/real/noise init), evaluate it, measure privacy")
    _add_run_options(p)
    _add_mtt_options(p)
    _add_datm_rded_options(p)
    _add_dp_options(p)
    p.add_argument("--full-epochs", type=int, default=default(RunConfig, "full_epochs"),
                   help="epochs of the full-training-set baseline (default %(default)s)")
    shared(p, "seed", "device")
    p.add_argument("--out", required=True, help="output folder, e.g. runs/NAME")
    p.add_argument("--resume", action="store_true", help="continue the run in --out from its checkpoint")
    p.add_argument("--checkpoint-every", type=float, default=default(LoopOptions, "checkpoint_every_s"),
                   help=f"seconds between checkpoints (default {shown(default(LoopOptions, 'checkpoint_every_s'))})")
    add_eval_options(p)
    p.set_defaults(func=run)


def run_config(args) -> RunConfig:
    """The RunConfig the options describe."""
    loop = dict(iterations=args.iterations, model=args.model, augment=args.augment, seed=args.seed,
                checkpoint_every_s=args.checkpoint_every)
    trajectory = dict(dataset=args.dataset, buffer=args.buffer or default_buffer(args.dataset, args.model),
                      syn_steps=args.syn_steps, expert_epochs=args.expert_epochs, batch_syn=args.batch_syn)
    mtt = MTTConfig(**loop, **trajectory, max_start_epoch=default(MTTConfig, "max_start_epoch")
                     if args.max_start_epoch is None else args.max_start_epoch)
    datm = DATMConfig(**loop, **trajectory, max_start_epoch=args.max_start_epoch, min_start_epoch=args.min_start_epoch,
                      initial_max_start_epoch=args.initial_max_start_epoch, expansion_end=args.expansion_end,
                      lr_labels=args.lr_labels, label_init=args.label_init)
    rded = RDEDConfig(factor=args.rded_factor, crops_per_image=args.crops_per_image, observer=args.observer,
                      observer_epochs=args.observer_epochs, seed=args.seed)
    dm = DMConfig(**loop, batch_real=args.batch_real, dp_epsilon=args.dp_epsilon, dp_delta=args.dp_delta,
                  dp_clip=args.dp_clip, dp_sample_rate=args.dp_sample_rate, dp_accountant=args.dp_accountant,
                  dp_public_init=args.dp_public_init)
    return RunConfig(dataset=args.dataset, data_root=args.data_root, method=args.method, ipc=args.ipc, init=args.init,
                     strength=args.strength, kt_views=args.kt_views, kt_families=args.kt_families, seed=args.seed, device=args.device, dm=dm,
                     dc=DCConfig(**loop, batch_real=args.batch_real), mtt=mtt, datm=datm, rded=rded,
                     eval=eval_config(args, "eager" if args.augment == "eager" else "fused"),
                     full_epochs=args.full_epochs, baselines=not args.no_baselines)


def run(args) -> int:
    from ..distributed import current_world
    from ..pipeline.distill import distill_run
    from ..privacy.lpips_distance import find_weights, load_metric

    cfg = run_config(args)
    cfg.check()
    if args.lpips_weights is not None:  # a missing or wrong file is refused before any work
        load_metric(find_weights(args.lpips_weights)[0])
    metrics = distill_run(cfg, args.out, resume=args.resume, progress=not args.quiet,
                          lpips_weights=args.lpips_weights)
    if current_world().main:
        print_metrics(args.out, metrics)
    return 0
