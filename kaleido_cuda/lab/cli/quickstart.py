"""`kaleido quickstart`: the README's main job."""
from __future__ import annotations

from .options import shared


def register(sub) -> None:
    p = sub.add_parser("quickstart", help="the README's main job: DM on the digits from KT and from real init, compared")
    p.add_argument("--out", default="runs/quickstart", help="output folder (default %(default)s)")
    shared(p, "seed", "device", "quiet")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.quickstart import run_quickstart

    run_quickstart(args.out, seed=args.seed, device=args.device, progress=not args.quiet)
    return 0
