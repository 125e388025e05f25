"""A small CUDA case for compute-sanitizer (memcheck, racecheck), run by scripts/gpu_check.sh:
forward and backward of every stage, float32, float64 and half, every padding mode, both index
widths, and several blocks per image (the shared-memory pivot reduction).

    compute-sanitizer --tool memcheck python scripts/sanitizer_case.py
    python scripts/sanitizer_case.py --device cpu     # the same calls on the CPU (gpu_check.sh --dry-run)
"""
import argparse
import os
import sys

import torch

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
import kaleido_cuda as kc  # noqa: E402
from conftest import random_params  # noqa: E402


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    device = ap.parse_args(argv).device
    if device == "cuda":
        assert torch.cuda.is_available() and kc.build_info()["cuda_compiled"], "needs a GPU and the CUDA kernels"
    for force64 in ("0", "1"):
        os.environ["KALEIDO_FORCE_INT64_INDEX"] = force64
        for dtype in (torch.float32, torch.float64, torch.float16):
            for padding in ("zeros", "border", "reflection"):
                x = torch.randn(3, 3, 37, 29, device=device, dtype=dtype, requires_grad=True)
                p = random_params(3, 37, 29, seed=1, padding_mode=padding, dtype=torch.float64).to(device)
                y = kc.kaleidoscope(x, p)
                y.float().square().sum().backward()
    if device == "cuda":
        torch.cuda.synchronize()
    print(f"sanitizer case done on {device}")


if __name__ == "__main__":
    main()
