"""A content-keyed cache of small JSON results that many runs recompute alike (for example the
held-out images' nearest-neighbour level of a dataset, the same for every run on it).

An entry's key is a SHA-256 of everything its value depends on (the input tensors' bytes, the
source code of the function that computes it, the torch version), so an entry can never be read
for other inputs or other code. Entries are written atomically. The folder is KALEIDO_CACHE_DIR,
else ~/.cache/kaleido_cuda; deleting it only costs recomputation. Where it cannot be written the
value is computed and returned all the same.
"""
from __future__ import annotations

import hashlib
import inspect
import json
import os
from typing import Callable, Iterable

import torch

from .atomic import write_json_atomic


def cache_dir() -> str:
    return os.environ.get("KALEIDO_CACHE_DIR") or os.path.join(os.path.expanduser("~"), ".cache", "kaleido_cuda")


def content_key(tensors: Iterable[torch.Tensor], code: Iterable[object], extra: dict) -> str:
    """SHA-256 of the tensors' shapes, dtypes and bytes, the source of the functions or modules in
    `code`, the torch version and `extra` (JSON)."""
    digest = hashlib.sha256()
    for t in tensors:
        t = t.detach().cpu().contiguous()
        digest.update(f"{tuple(t.shape)} {t.dtype}".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy())  # its bytes, any dtype, without a copy
    for obj in code:
        digest.update(inspect.getsource(obj).encode())
    digest.update(json.dumps({"torch": torch.__version__, **extra}, sort_keys=True).encode())
    return digest.hexdigest()


def cached_json(kind: str, key: str, compute: Callable[[], dict]) -> dict:
    """compute()'s value, read from the cache entry kind/key when there is one, else computed and
    stored there."""
    path = os.path.join(cache_dir(), kind, f"{key}.json")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):  # no entry yet, or one left unreadable
        pass
    value = compute()
    try:
        write_json_atomic(path, value)
    except OSError:  # a read-only or full disk: no cache, same value
        pass
    return value
