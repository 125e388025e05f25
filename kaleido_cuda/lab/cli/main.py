"""The `kaleido` command: parses, then calls the command's module (one per command), which calls
one pipeline function. Errors a user can fix (bad arguments, missing files, a missing optional
dependency) end in one line on stderr and exit code 2."""
from __future__ import annotations

import argparse
import os
import sys

from ..distributed import close_world
from . import audit, buffer, demo, distill, dpsgd, evaluate, info, quickstart
from .dependencies import missing_dependency_line

COMMANDS = (demo, info, distill, buffer, evaluate, audit, dpsgd, quickstart)
# The commands that split their work across torchrun's ranks (the others refuse to run under it).
DISTRIBUTED_COMMANDS = ("distill", "buffer", "eval", "audit")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="kaleido", description="Fused Kaleidoscopic Transformation tools")
    sub = parser.add_subparsers(dest="command", required=True)
    for command in COMMANDS:
        command.register(sub)
    return parser


def _refusal(parser: argparse.ArgumentParser, args) -> int:
    """2 (after one line on stderr) for a command that cannot run here, else 0."""
    if int(os.environ.get("WORLD_SIZE", "1")) > 1 and args.command not in DISTRIBUTED_COMMANDS:
        print(f"kaleido {args.command}: error: only `kaleido distill` (DM, DC), `buffer`, `eval` and `audit` run "
              "under torchrun; run this command as one process", file=sys.stderr)
        return 2
    if getattr(args, "device", "cpu").startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            parser.error("--device cuda: no CUDA GPU is available")
    return 0


def main(argv=None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    refused = _refusal(parser, args)
    if refused:
        return refused
    try:  # a command run under torchrun joins the process group; it is closed however the command ends
        return args.func(args)
    except ModuleNotFoundError as exc:  # before FileNotFoundError's sibling OSError: not one of them
        line = missing_dependency_line(args.command, exc)
        if line is None:
            raise
        print(line, file=sys.stderr)
        return 2
    except (ValueError, FileNotFoundError) as exc:  # bad arguments or missing files: one clear line
        print(f"kaleido {args.command}: error: {exc}", file=sys.stderr)
        return 2
    finally:
        close_world()


if __name__ == "__main__":
    sys.exit(main())
