"""`kaleido eval RUN`: re-evaluates a finished run's synthetic set."""
from __future__ import annotations

from .options import add_eval_options, eval_config
from .report import print_metrics


def register(sub) -> None:
    p = sub.add_parser("eval", help="re-evaluate a finished run's synthetic set (rewrites its metrics.json)")
    p.add_argument("run", help="the run's output folder")
    add_eval_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..distributed import current_world
    from ..pipeline.evaluation import evaluate_run

    metrics = evaluate_run(args.run, eval_config(args), baselines=not args.no_baselines, progress=not args.quiet)
    if current_world().main:
        print_metrics(args.run, metrics)
    return 0
