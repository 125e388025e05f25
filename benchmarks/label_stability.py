"""Label stability of KT images on the digits: a ConvNet trained on the real training split (the
evaluation protocol, --epochs epochs), tested on the clean training images and on KT-perturbed
copies of them, per KT setting (views 1, 3, 5 at strength 1; 3 views at strength 0.5; 3 views with
one family dropped at a time), one KT draw per setting and --seeds draws.

    python benchmarks/label_stability.py [--epochs 30] [--seeds 0 1 2] [--out DIR]

Results: DIR/label_stability.{json,md}.
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
from dataclasses import replace

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RESULTS, command_line, machine_stamp, stamp_line, write_json  # noqa: E402

from kaleido_cuda.lab.files.atomic import write_text_atomic  # noqa: E402
from kaleido_cuda.lab.train.data import load_dataset  # noqa: E402
from kaleido_cuda.lab.train.evaluate import EvalConfig, accuracy, train_model  # noqa: E402
from kaleido_cuda.lab.train.stability import perturbed_accuracy  # noqa: E402
from kaleido_cuda.presets import KT_FAMILIES  # noqa: E402

SETTINGS = {"kt_v1": dict(views=1), "kt_v3": dict(views=3), "kt_v5": dict(views=5),
            "kt_v3_s0.5": dict(views=3, strength=0.5),
            **{f"kt_v3_no_{f}": dict(views=3, families=",".join(g for g in KT_FAMILIES if g != f)) for f in KT_FAMILIES}}


def markdown(result) -> str:
    lines = ["# Label stability of KT images (digits)", "", stamp_line(result["machine"]),
             f"command: `{result['command']}`", "",
             f"A ConvNet trained on the {result['train_images']} real training images ({result['epochs']} epochs) "
             f"classifies them at {100 * result['clean_train']:.1f}% and the held-out images at "
             f"{100 * result['heldout']:.1f}%. Its accuracy on KT-perturbed training images, mean +- std over "
             f"{len(result['seeds'])} KT draws:", "", "| setting | accuracy % |", "|---|---|"]
    for name, accs in result["settings"].items():
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        lines.append(f"| {name} | {100 * statistics.mean(accs):.1f} +- {100 * sd:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    ap.add_argument("--out", default=RESULTS)
    args = ap.parse_args(argv)
    ds = load_dataset("digits")
    x, y = ds.train_images, ds.train_labels
    model = train_model(x, y, ds.num_classes, replace(EvalConfig(), epochs=args.epochs), seed=0)
    result = {"machine": machine_stamp("cpu"), "command": command_line("label_stability.py", argv),
              "epochs": args.epochs, "seeds": args.seeds, "train_images": len(x),
              "clean_train": accuracy(model, x, y), "heldout": accuracy(model, ds.test_images, ds.test_labels),
              "settings": {name: [perturbed_accuracy(model, x, y, seed=s, **kw) for s in args.seeds]
                           for name, kw in SETTINGS.items()}}
    write_json(os.path.join(args.out, "label_stability.json"), result)
    text = markdown(result)
    write_text_atomic(os.path.join(args.out, "label_stability.md"), text)
    print(text)


if __name__ == "__main__":
    main()
