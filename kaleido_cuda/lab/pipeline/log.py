"""What a run shows and records while it works: its log file (log.txt, rank 0 only) and a
progress bar with a closing time line per stage."""
from __future__ import annotations

import contextlib
import logging
import os
import time

from ..files.layout import RunFolder


def run_logger(out: str, main: bool = True) -> logging.Logger:
    """The logger of the run in `out`, writing to its log.txt; for ranks other than 0 (main
    False) a logger that writes nothing."""
    if not main:
        log = logging.getLogger("kaleido.run.other_rank")
        if not log.handlers:
            log.addHandler(logging.NullHandler())
            log.propagate = False
        return log
    log = logging.getLogger(f"kaleido.run.{os.path.abspath(out)}")
    log.setLevel(logging.INFO)
    if not log.handlers:
        handler = logging.FileHandler(RunFolder(out).log)
        handler.setFormatter(logging.Formatter("%(asctime)s %(message)s", "%Y-%m-%d %H:%M:%S"))
        log.addHandler(handler)
    return log


@contextlib.contextmanager
def stage(name: str, total_epochs: int, progress: bool):
    """A progress bar over a stage's training epochs (models x epochs), then one line with its time:
    without them, evaluation and baselines ran for minutes with nothing on the terminal. Yields the
    callback that advances the bar by one epoch."""
    from tqdm import tqdm

    start = time.perf_counter()
    bar = tqdm(total=total_epochs, desc=name, unit="epoch", disable=not progress or total_epochs == 0, leave=False)
    try:
        yield lambda _epoch: bar.update(1)
    finally:
        bar.close()
    if progress:
        print(f"{name}: done in {time.perf_counter() - start:.0f} s", flush=True)
