"""How closely the fused DSA drop-in reproduces the eager DSA chain, on real images.

    python benchmarks/dsa_agreement.py [--out DIR]

Both paths apply the same draw (kaleido_cuda.dsa.draw_params) to scikit-learn's digits (1,797
images, upsampled to 32x32, values in [0, 1]): each family alone in mode 'S', and the default
strategy in mode 'M', where the fused op resamples once and the eager chain once per geometric op.
Writes DIR/dsa_agreement.{json,md}.
"""
from __future__ import annotations

import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, machine_stamp, write_json  # noqa: E402

from kaleido_cuda import dsa, kaleidoscope
from kaleido_cuda.dsa import eager as dsa_eager, sampling as dsa_sampling  # noqa: E402
from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.train.data import digits_32  # noqa: E402


def compare(x, d) -> dict:
    fused = kaleidoscope(x, dsa_sampling.compose(d))
    eager = dsa_eager.apply(x, d)
    diff = (fused - eager).abs()
    return {"max_abs": float(diff.max()), "mean_abs": float(diff.mean()),
            "frac_over_0.01": float((diff > 0.01).float().mean()), "frac_over_0.1": float((diff > 0.1).float().mean()),
            "mean_abs_eager_output": float(eager.abs().mean())}


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default=os.environ.get("OUT") or RESULTS)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    x = digits_32()[0]
    rows = {}
    for family in dsa_sampling.DSA_FAMILIES:
        p = dsa.ParamDiffAug()
        rows[f"S: {family}"] = compare(x, dsa.draw_params(len(x), (32, 32), param=p, family=family))
    p = dsa.ParamDiffAug()
    p.aug_mode = "M"
    rows["M: color_crop_cutout_flip"] = compare(x, dsa.draw_params(len(x), (32, 32), "color_crop_cutout_flip", param=p))
    rows["M: color_crop_cutout_flip_scale_rotate"] = compare(x, dsa.draw_params(len(x), (32, 32), param=p))
    rows["M: scale_rotate"] = compare(x, dsa.draw_params(len(x), (32, 32), "scale_rotate", param=p))
    rows["M: crop_scale"] = compare(x, dsa.draw_params(len(x), (32, 32), "crop_scale", param=p))
    result = {"machine": machine_stamp("cpu"), "command": "python benchmarks/dsa_agreement.py", "data": "digits 1797x1x32x32",
              "rows": rows}
    write_json(os.path.join(args.out, "dsa_agreement.json"), result)
    m = result["machine"]
    lines = ["# Fused DSA against the eager DSA chain, same draws, digits at 32x32", "",
             f"commit {m['commit']}, torch {m['torch']}, {m['date']}; command: `{result['command']}`", "",
             "| strategy | max abs diff | mean abs diff | pixels > 0.01 | pixels > 0.1 | mean abs eager output |",
             "|---|---|---|---|---|---|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['max_abs']:.2e} | {r['mean_abs']:.2e} | {100 * r['frac_over_0.01']:.2f}% "
                     f"| {100 * r['frac_over_0.1']:.2f}% | {r['mean_abs_eager_output']:.3f} |")
    text = "\n".join(lines) + "\n"
    write_text_atomic(os.path.join(args.out, "dsa_agreement.md"), text)
    print(text)


if __name__ == "__main__":
    main()
