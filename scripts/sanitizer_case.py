"""A small CUDA case for compute-sanitizer (memcheck, racecheck), run by scripts/gpu_check.sh:
forward and backward of every stage, float32, float64 and half, every padding mode, both index
widths, and several blocks per image (the shared-memory pivot reduction).

    compute-sanitizer --tool memcheck python scripts/sanitizer_case.py
"""
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kaleido_cuda as kc  # noqa: E402
from conftest import random_params  # noqa: E402


def main():
    assert torch.cuda.is_available() and kc.build_info()["cuda_compiled"], "needs a GPU and the CUDA kernels"
    for force64 in ("0", "1"):
        os.environ["KALEIDO_FORCE_INT64_INDEX"] = force64
        for dtype in (torch.float32, torch.float64, torch.float16):
            for padding in ("zeros", "border", "reflection"):
                x = torch.randn(3, 3, 37, 29, device="cuda", dtype=dtype, requires_grad=True)
                p = random_params(3, 37, 29, seed=1, padding_mode=padding, dtype=torch.float64).to("cuda")
                y = kc.kaleidoscope(x, p)
                y.float().square().sum().backward()
    torch.cuda.synchronize()
    print("sanitizer case done")


if __name__ == "__main__":
    main()
