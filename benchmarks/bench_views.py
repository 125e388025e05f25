"""The paper's aggregated KT, V views averaged per image, through the fused op (KTParams.views)
against V separate single-view calls plus a mean, forward+backward to the images, KT parameters
at strength 1.

    python benchmarks/bench_views.py [--device cpu|cuda] [--views 3] [--out DIR] [--tiny]

Target (issue "KT as the paper defines it"): the fused V = 3 op at most 2x the V = 1 op at
(256, 3, 32, 32) on the CPU. Results: DIR/bench_views_<device>.{json,md}.
"""
import argparse
import dataclasses
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, median_time, stamp_line, use_tiny, write_json  # noqa: E402

import kaleido_cuda as kc  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402

SHAPES = [(256, 3, 32, 32), (64, 3, 128, 128)]
TINY_SHAPES = [(4, 3, 8, 8)]


def views_of(p, v):
    """View v of every image, as single-view parameters."""
    return dataclasses.replace(p, views=1, **{k: getattr(p, k)[v::p.views] for k in kc.params.TENSOR_FIELDS})


def fwd_bwd(x, fn):
    xg = x.detach().requires_grad_()
    grad = torch.ones_like(x)

    def run():
        fn(xg).backward(grad)
        xg.grad = None

    return run


def bench_shape(shape, views, device):
    n, _, h, w = shape
    x = torch.rand(*shape, device=device)
    one = kc.sample_params(n, "kt", size=(h, w), seed=0).to(device)
    many = kc.sample_params(n, "kt", size=(h, w), seed=0, views=views).to(device)
    singles = [views_of(many, v) for v in range(views)]
    impls = {
        "fused, 1 view": lambda t: kc.kaleidoscope(t, one),
        f"fused, {views} views": lambda t: kc.kaleidoscope(t, many),
        f"{views} single-view calls + mean": lambda t: torch.stack([kc.kaleidoscope(t, p) for p in singles]).mean(0),
    }
    times = {name: 1e3 * median_time(fwd_bwd(x, fn), device, budget_s=2.0, min_repeats=5) for name, fn in impls.items()}
    return {"shape": list(shape), "views": views, "fwd_bwd_ms": times,
            "fused_views_over_one_view": times[f"fused, {views} views"] / times["fused, 1 view"],
            "separate_over_fused": times[f"{views} single-view calls + mean"] / times[f"fused, {views} views"]}


def markdown(result):
    lines = [f"# bench_views ({result['machine']['device']})", "", stamp_line(result["machine"]),
             f"command: `{result['command']}`", "",
             "Forward+backward to the images, median ms; KT parameters (strength 1, every family on).", "",
             "| shape | views | fused, 1 view | fused, V views | V single-view calls + mean | fused V / fused 1 | separate / fused |",
             "|---|---|---|---|---|---|---|"]
    for r in result["rows"]:
        t = list(r["fwd_bwd_ms"].values())
        lines.append(f"| {tuple(r['shape'])} | {r['views']} | {t[0]:.2f} | {t[1]:.2f} | {t[2]:.2f} "
                     f"| {r['fused_views_over_one_view']:.2f} | {r['separate_over_fused']:.2f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    ap.add_argument("--views", type=int, default=3)
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    ap.add_argument("--tiny", action="store_true", help="one call of everything at a tiny size (a dry run, not a figure)")
    args = ap.parse_args(argv)
    if args.views < 2:
        ap.error("--views must be at least 2")
    use_tiny(args.tiny)
    result = {"machine": machine_stamp(args.device), "command": command_line("bench_views.py", argv),
              "rows": [bench_shape(s, args.views, args.device) for s in (TINY_SHAPES if args.tiny else SHAPES)]}
    write_json(os.path.join(args.out, f"bench_views_{args.device}.json"), result)
    text = markdown(result)
    write_text_atomic(os.path.join(args.out, f"bench_views_{args.device}.md"), text)
    print(text)


if __name__ == "__main__":
    main()
