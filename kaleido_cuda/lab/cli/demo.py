"""`kaleido demo`: KT applied to the bundled digits, a PNG grid and a speed line."""
from __future__ import annotations

from .options import shared


def register(sub) -> None:
    p = sub.add_parser("demo", help="apply KT to the bundled sklearn digits: PNG grid and a speed line")
    p.add_argument("--out", default="runs/demo", help="output folder (default %(default)s)")
    shared(p, "seed", "device")
    p.add_argument("--repeats", type=int, default=5, help="timing repeats (median is reported)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..pipeline.demo import run_demo

    report = run_demo(args.out, seed=args.seed, device=args.device, repeats=args.repeats)
    t = report["timing"]
    print(f"KT grid of the digits: {report['grid']}")
    print(f"speed: full KT chain forward+backward on {tuple(t['batch'])} ({t['device']}, {t['threads']} threads): "
          f"fused {t['fused_fwd_bwd_ms']:.1f} ms, reference {t['reference_fwd_bwd_ms']:.1f} ms "
          f"({t['speedup']:.1f}x)")
    return 0
