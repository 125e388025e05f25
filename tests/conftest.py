import atexit
import os
import shutil
import tempfile

import pytest
import torch

# One cache for the session and the subprocesses it starts (they inherit the environment), so that
# results cached by content (kaleido_cuda/lab/files/cache.py) are computed once per test run and
# never read from a developer's own cache; removed when the session ends.
os.environ["KALEIDO_CACHE_DIR"] = tempfile.mkdtemp(prefix="kaleido-test-cache-")
atexit.register(shutil.rmtree, os.environ["KALEIDO_CACHE_DIR"], ignore_errors=True)

try:  # hypothesis is a test dependency; the GPU machine may lack it (its property tests then skip)
    from hypothesis import HealthCheck, settings
except ImportError:
    pass
else:
    settings.register_profile("ci", max_examples=int(os.environ.get("KALEIDO_HYPOTHESIS_EXAMPLES", "30")),
                              deadline=None, suppress_health_check=[HealthCheck.too_slow])
    settings.load_profile("ci")

requires_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


def random_params(n, h, w, *, seed, rows=None, padding_mode="zeros", dtype=torch.float32, stages="all"):
    """Random KT parameters with every stage on (or only those named in `stages`)."""
    import kaleido_cuda as kc

    g = torch.Generator().manual_seed(seed)
    m = rows if rows is not None else n
    p = kc.KTParams.identity(m, dtype=dtype)
    on = (lambda s: True) if stages == "all" else (lambda s: s in stages)
    if on("affine"):
        p.affine = p.affine + 0.4 * torch.randn(m, 2, 3, generator=g, dtype=dtype)
    if on("fold"):
        p.fold_k = torch.randint(0, 7, (m,), generator=g)
        p.fold_center = 0.3 * torch.randn(m, 2, generator=g, dtype=dtype)
        p.fold_phase = 6.3 * torch.rand(m, generator=g, dtype=dtype)
    if on("colour"):
        p.brightness = torch.rand(m, generator=g, dtype=dtype) - 0.5
        p.saturation = 2 * torch.rand(m, generator=g, dtype=dtype)
        p.contrast = torch.rand(m, generator=g, dtype=dtype) + 0.5
    if on("cutout"):
        y0 = torch.randint(-2, h, (m,), generator=g)
        x0 = torch.randint(-2, w, (m,), generator=g)
        p.cutout = torch.stack([y0, x0, y0 + torch.randint(0, h, (m,), generator=g),
                                x0 + torch.randint(0, w, (m,), generator=g)], -1)
    if on("noise"):
        p.noise_std = 0.2 * torch.rand(m, generator=g, dtype=dtype)
        p.seed = int(torch.randint(0, 2**62, (1,), generator=g)) * 3
    p.padding_mode = padding_mode
    return p


def tiny_classes(n_per_class=6, classes=3, size=16, seed=0):
    """A small labelled image set for the distillation tests: each class is one random pattern plus
    noise, so a few steps of any method can tell the classes apart."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(classes).repeat_interleave(n_per_class)
    base = torch.rand(classes, 1, size, size, generator=g)
    images = base[labels] + 0.1 * torch.randn(len(labels), 1, size, size, generator=g)
    return images, labels


_emulated_seconds = [0.0]  # setup (the emulator's build), call and teardown of the emulated cases


def pytest_runtest_logreport(report):
    if "[emulated" in report.nodeid:
        _emulated_seconds[0] += report.duration


def pytest_terminal_summary(terminalreporter):
    """How many cases ran on the host emulation of CUDA (tests/op/test_cuda_kernels.py), and how long
    they took: CI's log shows that the CUDA kernels were executed."""
    counts = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        reports = [r for r in terminalreporter.stats.get(outcome, []) if "[emulated" in getattr(r, "nodeid", "")]
        counts[outcome] = len({r.nodeid for r in reports})
    if any(counts.values()):
        terminalreporter.write_line(
            f"host-emulated CUDA kernels: {counts['passed']} cases passed, {counts['failed'] + counts['error']} "
            f"did not, {counts['skipped']} skipped, {_emulated_seconds[0]:.0f} s with the emulator's build")


@pytest.fixture(scope="session")
def digits_subset(tmp_path_factory):
    """A subset of the bundled digits as an image folder (`imagefolder:` dataset): the first 40
    training and 20 test images of every class, as 32x32 PNGs. For the tests that run whole
    pipelines in subprocesses, where what they compare (ranks against one process, a resumed run
    against an uninterrupted one) does not depend on the data's size but their time does."""
    from PIL import Image

    from kaleido_cuda.lab.train.data import load_dataset

    ds = load_dataset("digits")
    root = tmp_path_factory.mktemp("digits_subset")
    for split, images, labels, per_class in (("train", ds.train_images, ds.train_labels, 40),
                                             ("test", ds.test_images, ds.test_labels, 20)):
        pixels = (ds.denormalise(images)[:, 0] * 255).round().to(torch.uint8)
        for c in range(ds.num_classes):
            folder = root / split / ds.classes[c]
            folder.mkdir(parents=True)
            for i in torch.nonzero(labels == c).flatten()[:per_class].tolist():
                Image.fromarray(pixels[i].numpy(), mode="L").save(folder / f"{i:04d}.png")
    return f"imagefolder:{root}"
