"""The compiled-instruction gate (scripts/sass_report.py, docs/cuda.md): what nvcc emits for the
KT kernels on sm_80, sm_89 and sm_90. A float32, float16 or bfloat16 kernel holds no float64
arithmetic (the float64 parameter rows' conversions are the one allowed exception), and no
kernel spills registers (one float64 + int64 kernel allowed, with its reason). Needs nvcc and
cuobjdump (the CI machine has both); skips where they are missing."""
import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "scripts"))
import sass_report  # noqa: E402

pytestmark = pytest.mark.skipif(not (sass_report.find_tool("nvcc") and sass_report.find_tool("cuobjdump")),
                                reason="needs nvcc and cuobjdump")


@pytest.fixture(scope="module")
def result():
    return sass_report.report(["80", "89", "90"])


def test_every_kernel_is_compiled_and_counted(result):
    for arch, kernels in result["archs"].items():
        names = set(kernels)
        for dtype in ("float32", "float64", "float16", "bfloat16"):
            for index in ("int32", "int64"):
                for kind in ("forward", "backward", "backward_fixed", "max_grad"):
                    assert f"{kind}[{dtype}, {index}]" in names, (arch, kind, dtype, index)
        for dtype in ("float32", "float64"):  # float accumulation only: they read and write acc_t
            for index in ("int32", "int64"):
                assert {f"pivot[{dtype}, {index}]", f"fixed_to_grad[{dtype}, {index}]"} <= names, arch
        assert all(k["total"] > 50 and "registers" in k for k in kernels.values())
        assert all(kernels[name]["total"] > 1000 for name in names if name.startswith(("forward[", "backward")))


def test_instructions_past_64_kib_of_code_are_counted():
    """A kernel longer than 4096 instructions has addresses of five hex digits: they are counted."""
    assert sass_report.SASS_LINE.match("        /*0ff0*/                   FFMA R2, R3, R4, R5 ;").group(1) == "FFMA"
    assert sass_report.SASS_LINE.match("        /*10a30*/              @!P0 DADD R2, R4, R6 ;").group(1) == "DADD"


def test_gate_no_float64_in_reduced_precision_kernels_and_no_spills(result):
    assert sass_report.violations(result) == []
    # The gate sees float64 where it is: the float64 kernels are full of it.
    assert result["archs"]["sm_90"]["forward[float64, int32]"]["classes"]["fp64"] > 100


def test_gate_catches_float64_arithmetic_in_a_float32_kernel(result):
    """A planted float64 instruction in a float32 kernel (as a double constant left in the
    geometry would make) fails the gate."""
    import copy

    planted = copy.deepcopy(result)
    kernel = planted["archs"]["sm_89"]["forward[float32, int32]"]
    kernel["classes"]["fp64"] = 1
    kernel["fp64_opcodes"] = {"DFMA": 1}
    assert sass_report.classify("DFMA") == "fp64" and sass_report.classify("F2F.F64.F32") == "fp64"
    assert sass_report.classify("F2F.F32.F64") == "fp64_allowed" and sass_report.classify("FFMA") == "fp32"
    assert sass_report.violations(planted) == ["sm_89 forward[float32, int32]: 1 float64 instructions {'DFMA': 1}"]
