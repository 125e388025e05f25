"""`kaleido info`: what this build can run."""
from __future__ import annotations

import json


def register(sub) -> None:
    p = sub.add_parser("info", help="print what this build can run")
    p.set_defaults(func=run)


def run(args) -> int:
    from ...ops import build_info

    print(json.dumps(build_info(), indent=2))
    return 0
