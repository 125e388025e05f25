"""The `kaleido` command line."""
from __future__ import annotations

import argparse
import json
import sys


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
    args = ap.parse_args(argv)
    if getattr(args, "device", "cpu").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            ap.error("--device cuda: no CUDA GPU is available")
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
