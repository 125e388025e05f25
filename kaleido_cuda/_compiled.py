"""The compiled module `_C`, loaded once, and the op's limits read from it.

Importing `_C` registers torch.ops.kaleido_cuda.* as a side effect. The limits come from the
kernels' own header (csrc/include/kaleido/kt_math.h, exported by csrc/ops.cpp), so the Python
checks and the kernels cannot disagree. Without the compiled module the op runs the reference,
which has neither limit (it folds any k and computes its geometry in float64): they are None then.
"""
from __future__ import annotations

try:
    from . import _C
    LOAD_ERROR = None
except ImportError as exc:  # pragma: no cover - exercised only on broken installs
    _C = None
    LOAD_ERROR = exc
if _C is not None and not all(hasattr(_C, name) for name in ("max_fold_k", "max_float_geometry_side")):
    # A module left by an older build (an in-place build, for example): treated as not loaded, so
    # the op falls back to the reference and its warning says why.
    LOAD_ERROR = ImportError(f"{_C.__file__} is from an older build of kaleido_cuda (it lacks the op's limits); "
                             "rebuild it: pip install --no-build-isolation .")
    _C = None

# Most mirrors of the kaleidoscopic fold (kaleido::kMaxFoldK).
MAX_FOLD_K = None if _C is None else int(_C.max_fold_k)
# Largest image side of the float32 geometry used for float16/bfloat16/float32 images
# (kaleido::kMaxFloatGeometrySide); float64 images have no such limit.
MAX_FLOAT_GEOMETRY_SIDE = None if _C is None else int(_C.max_float_geometry_side)
