"""Every bad input of the spec gets a clear Python error naming the problem, never a crash."""
import dataclasses
import subprocess
import sys
import textwrap

import pytest
import torch

import kaleido_cuda as kc


def _ok():
    return torch.randn(2, 3, 8, 8), kc.KTParams.identity(2)


def _with(**changes):
    x, p = _ok()
    return x, dataclasses.replace(p, **changes)


CASES = [
    ("3-D input", lambda: (torch.randn(3, 8, 8), kc.KTParams.identity(1)), ValueError, "4-D"),
    ("integer input", lambda: (torch.zeros(2, 3, 8, 8, dtype=torch.int64), kc.KTParams.identity(1)), TypeError, "float"),
    ("not a tensor", lambda: ([[1.0]], kc.KTParams.identity(1)), TypeError, "torch.Tensor"),
    ("params not KTParams", lambda: (torch.randn(2, 3, 8, 8), {"affine": 1}), TypeError, "KTParams"),
    ("batch mismatch", lambda: (torch.randn(2, 3, 8, 8), kc.KTParams.identity(3)), ValueError, "leading dimension"),
    ("affine shape", lambda: _with(affine=torch.zeros(2, 3, 3)), ValueError, "params.affine"),
    ("float fold_k", lambda: _with(fold_k=torch.zeros(2)), TypeError, "fold_k"),
    ("integer brightness", lambda: _with(brightness=torch.zeros(2, dtype=torch.int64)), TypeError, "brightness"),
    ("NaN affine", lambda: _with(affine=torch.full((2, 2, 3), float("nan"))), ValueError, "NaN"),
    ("inf contrast", lambda: _with(contrast=torch.tensor([1.0, float("inf")])), ValueError, "contrast"),
    ("negative k", lambda: _with(fold_k=torch.tensor([-1, 2])), ValueError, "fold_k"),
    ("absurd k", lambda: _with(fold_k=torch.tensor([10**6, 2])), ValueError, "fold_k"),
    ("negative noise", lambda: _with(noise_std=torch.tensor([-0.1, 0.1])), ValueError, "noise_std"),
    ("padding mode", lambda: _with(padding_mode="wrap"), ValueError, "padding_mode"),
    ("negative seed", lambda: _with(seed=-1), ValueError, "seed"),
    ("huge seed", lambda: _with(seed=2**64), ValueError, "seed"),
    ("meta params", lambda: _with(brightness=torch.zeros(2, device="meta")), ValueError, "is on meta"),
]


@pytest.mark.parametrize("name,make,error,match", CASES, ids=[c[0] for c in CASES])
@pytest.mark.parametrize("impl", ["fused", "reference"])
def test_bad_input_raises(name, make, error, match, impl):
    fn = kc.kaleidoscope if impl == "fused" else kc.reference.kaleidoscope
    x, p = make()
    with pytest.raises(error, match=match):
        fn(x, p)


def test_raw_op_rejects_bad_shapes_without_crashing(tmp_path):
    """Direct callers of torch.ops.kaleido_cuda.* skip the Python checks: the C++ side must still
    raise, not crash. Run in a subprocess so that a crash fails the test instead of the session."""
    code = textwrap.dedent("""
        import torch, kaleido_cuda as kc
        x = torch.randn(2, 3, 8, 8)
        p = kc.KTParams.identity(2)
        bad = [
            (x[0], *p.tensors(), 0, "zeros"),
            (x, torch.zeros(5, 2, 3), *p.tensors()[1:], 0, "zeros"),
            (x, *p.tensors()[:7], torch.zeros(2, 3, dtype=torch.int64), p.noise_std, 0, "zeros"),
            (x, *p.tensors(), 0, "wrap"),
            (x.long(), *p.tensors(), 0, "zeros"),
        ]
        for args in bad:
            try:
                torch.ops.kaleido_cuda.kaleidoscope(*args)
            except RuntimeError as e:
                assert "kaleidoscope" in str(e), str(e)
            else:
                raise SystemExit("no error for bad arguments")
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path)  # outside the source folder: import the installed package
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_far_away_coordinates_do_not_crash():
    x = torch.randn(1, 3, 8, 8)
    p = kc.KTParams.identity(1)
    p.affine = torch.tensor([[[1e30, 0.0, 1e30], [0.0, -1e30, 0.0]]])
    for mode in ("zeros", "border", "reflection"):
        p.padding_mode = mode
        y = kc.kaleidoscope(x, p)
        assert torch.isfinite(y).all()


def test_fold_limit_is_the_kernels_own():
    # The bound comes from kaleido::kMaxFoldK through the compiled module (kaleido_cuda/_compiled.py),
    # not from a copy: the largest fold is accepted and computed, one more mirror is refused.
    from kaleido_cuda import _C

    limit = int(_C.max_fold_k)
    x, p = _with(fold_k=torch.tensor([limit, 2]))
    torch.testing.assert_close(kc.kaleidoscope(x, p), kc.reference.kaleidoscope(x, p), atol=1e-4, rtol=1e-4)
    x, p = _with(fold_k=torch.tensor([limit + 1, 2]))
    with pytest.raises(ValueError, match=rf"fold_k must be in \[0, {limit}\]"):
        kc.kaleidoscope(x, p)
