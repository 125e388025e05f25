"""Without the compiled module the op still works, through the reference, and says so once."""
import subprocess
import sys
import textwrap


def test_missing_compiled_module_falls_back_to_reference_with_one_warning(tmp_path):
    code = textwrap.dedent("""
        import sys, warnings
        sys.modules["kaleido_cuda._C"] = None  # makes `from . import _C` raise ImportError
        import torch, kaleido_cuda as kc
        assert kc.build_info()["compiled"] is False and kc.build_info()["load_error"]
        x = torch.randn(2, 3, 8, 8, dtype=torch.float64, requires_grad=True)
        p = kc.sample_params(2, "kt", size=8, seed=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y1 = kc.kaleidoscope(x, p)
            y2 = kc.kaleidoscope(x, p)
        messages = [str(w.message) for w in caught if "compiled extension did not load" in str(w.message)]
        assert len(messages) == 1, messages
        assert torch.equal(y1, kc.reference.kaleidoscope(x, p)) and torch.equal(y1, y2)
        y1.sum().backward()
        assert x.grad is not None
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")


def test_a_compiled_module_from_an_older_build_is_refused_by_name(tmp_path):
    # A _C left by an older build (one that lacks the op's limits) is not used half-way: the op runs
    # the reference, and build_info and the warning say to rebuild.
    code = textwrap.dedent("""
        import sys, types, warnings
        old = types.ModuleType("kaleido_cuda._C")
        old.__file__, old.max_fold_k = "/old/build/_C.so", 256
        sys.modules["kaleido_cuda._C"] = old
        import torch, kaleido_cuda as kc
        info = kc.build_info()
        assert info["compiled"] is False and "older build" in info["load_error"], info
        x = torch.randn(2, 3, 8, 8, dtype=torch.float64)
        p = kc.sample_params(2, "kt", size=8, seed=1)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            y = kc.kaleidoscope(x, p)
        assert any("rebuild it" in str(w.message) for w in caught), [str(w.message) for w in caught]
        assert torch.equal(y, kc.reference.kaleidoscope(x, p))
        print("ok")
    """)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip().endswith("ok")
