"""The options several commands share, declared once, and the defaults of every option, read from
the dataclass that the option configures: a default lives in one place, the dataclass."""
from __future__ import annotations

import argparse
import dataclasses
import re

from ..pipeline.config import RunConfig
from ..train.data import DATASETS
from ..train.evaluate import LABEL_CHOICES, EvalConfig


def default(config_class, name: str):
    """The default of field `name` of the dataclass `config_class`."""
    for f in dataclasses.fields(config_class):
        if f.name == name:
            if f.default is not dataclasses.MISSING:
                return f.default
            if f.default_factory is not dataclasses.MISSING:
                return f.default_factory()
    raise KeyError(f"{config_class.__name__} has no field {name!r} with a default")


def shown(value) -> str:
    """A number as help texts write it: 1 for 1.0, 1e-5 for 1e-05, 0.01 as it is."""
    text = f"{value:g}" if isinstance(value, float) else str(value)
    return re.sub(r"e([+-])0*(\d)", lambda m: f"e{'-' if m.group(1) == '-' else ''}{m.group(2)}", text)


def one_of(options, chosen) -> str:
    """'dm (default), dc or mtt': the options, the default first."""
    rest = [o for o in options if o != chosen]
    return f"{chosen} (default)" + (f", {', '.join(rest[:-1])}" if len(rest) > 1 else "") + \
        (f" or {rest[-1]}" if rest else "")


_SHARED = {
    "dataset": (("--dataset",), dict(default=default(RunConfig, "dataset"),
                                     help=f"one of {', '.join(DATASETS)} (default %(default)s, bundled)")),
    "data_root": (("--data-root",), dict(default=None, help="folder with torchvision's dataset files (never downloaded)")),
    "seed": (("--seed",), dict(type=int, default=default(RunConfig, "seed"))),
    "device": (("--device",), dict(default=default(RunConfig, "device"), help="cpu or cuda")),
    "quiet": (("--quiet",), dict(action="store_true", help="no progress bars")),
}


def shared(parser: argparse.ArgumentParser, *names: str, **changes) -> None:
    """Adds the shared options `names` (keys of _SHARED) to `parser`; `changes` maps a name to
    the argparse settings that differ for this command (for example another default or help)."""
    for name in names:
        flags, settings = _SHARED[name]
        parser.add_argument(*flags, **{**settings, **changes.get(name, {})})


def add_eval_options(parser: argparse.ArgumentParser) -> None:
    """How the evaluation models train (EvalConfig), and the baselines switch."""
    parser.add_argument("--eval-model", default=default(EvalConfig, "model"),
                        help="model trained on the synthetic set (default %(default)s)")
    parser.add_argument("--eval-epochs", type=int, default=default(EvalConfig, "epochs"),
                        help="epochs per evaluation model (default %(default)s)")
    parser.add_argument("--eval-runs", type=int, default=default(EvalConfig, "runs"),
                        help="evaluation models, mean and std reported (default %(default)s)")
    parser.add_argument("--eval-labels", default=default(EvalConfig, "labels"), choices=LABEL_CHOICES,
                        help="what the evaluation models train on: the method's supervision (DATM's soft labels, "
                             "RDED's observer as teacher; class labels for the others) or the hard class labels "
                             "(default %(default)s)")
    parser.add_argument("--eval-temperature", type=float, default=default(EvalConfig, "temperature"),
                        help="softmax temperature of the teacher's knowledge distillation (default %(default)s)")
    parser.add_argument("--no-baselines", action="store_true", help="skip the random-real and full-set baselines")
    shared(parser, "quiet")


def eval_config(args, impl: str = "fused") -> EvalConfig:
    return EvalConfig(model=args.eval_model, epochs=args.eval_epochs, runs=args.eval_runs, impl=impl,
                      labels=args.eval_labels, temperature=args.eval_temperature)
