"""`kaleido buffer`: expert trajectories for MTT (pipeline/buffer.py)."""
from __future__ import annotations

from ..distill import BufferConfig
from ..train.models import MODELS
from .distill import AUGMENTS
from .options import default, shared, shown


def register(sub) -> None:
    p = sub.add_parser("buffer", help="train expert networks on the real data and store their trajectories (for mtt)")
    shared(p, "dataset", "data_root")
    p.add_argument("--model", default=default(BufferConfig, "model"), choices=MODELS,
                   help="expert network (default %(default)s)")
    p.add_argument("--experts", type=int, default=default(BufferConfig, "experts"),
                   help="expert trajectories (default %(default)s)")
    p.add_argument("--epochs", type=int, default=default(BufferConfig, "epochs"),
                   help="epochs per expert (default %(default)s)")
    p.add_argument("--lr", type=float, default=default(BufferConfig, "lr"),
                   help=f"expert learning rate, plain SGD (default {shown(default(BufferConfig, 'lr'))})")
    p.add_argument("--batch-size", type=int, default=default(BufferConfig, "batch_size"),
                   help="expert batch size (default %(default)s)")
    p.add_argument("--augment", default=default(BufferConfig, "augment"), choices=AUGMENTS, help="DSA while training")
    shared(p, "seed", "device")
    p.add_argument("--out", default=None, help="buffer folder (default runs/buffers/DATASET_MODEL)")
    shared(p, "quiet")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import current_world
    from ..pipeline.buffer import buffer_run

    cfg = BufferConfig(experts=args.experts, epochs=args.epochs, lr=args.lr, batch_size=args.batch_size,
                       model=args.model, augment=args.augment, seed=args.seed)
    meta = buffer_run(cfg, args.dataset, args.data_root, args.device, args.out, progress=not args.quiet)
    world = current_world()
    if world.main:
        accs = [e["test_accuracy"] for e in meta["experts"]]
        ranks = f" by {world.size} ranks" if world.distributed else ""
        print(f"{len(accs)} expert trajectories of {cfg.epochs} epochs in {meta['out']}{ranks}; expert test accuracy "
              f"{100 * min(accs):.1f}-{100 * max(accs):.1f} %")
    return 0
