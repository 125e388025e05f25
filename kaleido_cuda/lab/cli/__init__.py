"""The `kaleido` command line (and `python -m kaleido_cuda`): main.py parses and dispatches, one
module per command registers its options and calls one pipeline function, options.py holds the
shared options and reads every default from the dataclass it configures."""
from .dependencies import missing_dependency_line
from .main import DISTRIBUTED_COMMANDS, build_parser, main

__all__ = ["main", "build_parser", "missing_dependency_line", "DISTRIBUTED_COMMANDS"]
