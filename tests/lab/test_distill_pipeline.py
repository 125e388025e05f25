"""Data, models, initialisation, DM, evaluation, privacy and the CLI, on tiny data."""
import json
import os
import sys

import numpy as np
import pytest
import torch

from conftest import tiny_classes
from kaleido_cuda.lab import cli
from kaleido_cuda.lab.train.data import load_dataset
from kaleido_cuda.lab.distill import DCConfig, DMConfig, distill_dc, distill_dm
from kaleido_cuda.lab.distill.dc import gradient_distance, loops_for
from kaleido_cuda.lab.train.evaluate import EvalConfig, evaluate_set
from kaleido_cuda.init import initialize, select_real
from kaleido_cuda.lab.train.models import MODELS, default_depth, get_model
from kaleido_cuda.lab.privacy import membership_split, nearest_neighbours, pairwise_ssim


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def tiny(n_per_class=6, **kwargs):
    return tiny_classes(n_per_class, **kwargs)


# --- data -----------------------------------------------------------------------------------------

def test_digits_split_and_normalisation(digits):
    assert digits.train_images.shape == (1257, 1, 32, 32) and digits.test_images.shape == (540, 1, 32, 32)
    counts = digits.class_counts()
    assert counts.sum() == 1257 and int(counts.min()) >= 120  # stratified: every class about 70%
    assert abs(float(digits.train_images.mean())) < 1e-4 and abs(float(digits.train_images.std()) - 1) < 1e-3
    back = digits.denormalise(digits.train_images)
    assert 0 <= float(back.min()) and float(back.max()) <= 1
    again = load_dataset("digits")
    assert torch.equal(again.test_labels, digits.test_labels)  # the split is fixed


def test_imagefolder_reads_train_and_test(tmp_path):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split in ("train", "test"):
        for cls in ("cat", "dog"):
            folder = tmp_path / split / cls
            folder.mkdir(parents=True)
            for i in range(3):
                Image.fromarray(rng.integers(0, 255, (8, 8, 3), dtype=np.uint8)).save(folder / f"{i}.png")
    ds = load_dataset(f"imagefolder:{tmp_path}")
    assert ds.train_images.shape == (6, 3, 8, 8) and ds.classes == ["cat", "dog"] and ds.num_classes == 2


def test_torchvision_dataset_in_its_folder(tmp_path):
    # MNIST's raw files, generated: torchvision reads them without downloading.
    import gzip
    import struct

    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    rng = np.random.default_rng(0)

    def write(name, magic, dims, data):
        with gzip.open(raw / name, "wb") as f:
            f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data.tobytes())
        with open(raw / name[:-3], "wb") as f:
            f.write(struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in dims) + data.tobytes())

    for prefix, n in (("train", 20), ("t10k", 10)):
        write(f"{prefix}-images-idx3-ubyte.gz", 2051, (n, 28, 28), rng.integers(0, 255, (n, 28, 28), dtype=np.uint8))
        write(f"{prefix}-labels-idx1-ubyte.gz", 2049, (n,), (np.arange(n) % 10).astype(np.uint8))
    ds = load_dataset("mnist", data_root=str(tmp_path))
    assert ds.train_images.shape == (20, 1, 28, 28) and ds.test_images.shape == (10, 1, 28, 28)


@pytest.mark.parametrize("name, kwargs, error, match", [
    ("nope", {}, ValueError, "unknown dataset"),
    ("cifar10", {}, ValueError, "--data-root"),
    ("cifar10", {"data_root": "/nonexistent/folder"}, FileNotFoundError, "put torchvision's CIFAR10 files there"),
    ("imagefolder:/nonexistent/folder", {}, FileNotFoundError, "train"),
])
def test_bad_datasets_give_clear_errors(name, kwargs, error, match):
    with pytest.raises(error, match=match):
        load_dataset(name, **kwargs)


# --- models and initialisation --------------------------------------------------------------------

@pytest.mark.parametrize("name", MODELS)
def test_models_embed_and_classify(name):
    model = get_model(name, 3, 7, (32, 32), width=16)
    x = torch.rand(2, 3, 32, 32)
    assert model(x).shape == (2, 7) and model.embed(x).dim() == 2


def test_convnet_depth_follows_the_image_size():
    assert [default_depth((s, s)) for s in (28, 32, 64, 128)] == [3, 3, 4, 5]
    assert get_model("convnet", 1, 10, (28, 28))(torch.rand(1, 1, 28, 28)).shape == (1, 10)


def test_initialisation_methods(digits):
    x, y = digits.train_images, digits.train_labels
    real, labels = initialize(x, y, 3, "real", seed=1)
    assert labels.tolist() == [c for c in range(10) for _ in range(3)]
    kt, _ = initialize(x, y, 3, "kt", seed=1)
    assert kt.shape == real.shape and float((kt - real).abs().mean()) > 0.3  # same picks, strongly perturbed
    assert torch.equal(initialize(x, y, 3, "kt", seed=1)[0], kt)  # seeded
    noise, _ = initialize(x, y, 3, "noise", seed=1)
    assert abs(float(noise.std()) - 1) < 0.1
    for row, c in zip(real, labels):  # every selected image is a training image of its class
        match = (x == row).flatten(1).all(1)
        assert bool(match.any()) and int(y[match][0]) == int(c)


def test_initialisation_rejects_bad_arguments(digits):
    x, y = digits.train_images, digits.train_labels
    with pytest.raises(ValueError, match="larger than the number of training images"):
        initialize(x, y, 500, "real")
    with pytest.raises(ValueError, match="unknown method"):
        initialize(x, y, 1, "copy")


# --- DM ----------------------------------------------------------------------------------------------

def dm_config(**changes):
    base = dict(iterations=6, width=16, batch_real=8, checkpoint_every_s=0.0)
    base.update(changes)
    return DMConfig(**base)


def test_dm_decreases_its_loss():
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    _, history = distill_dm(syn, syn_y, x, y, 3, dm_config(iterations=30), progress=False)
    assert np.mean(history.losses[-5:]) < 0.5 * np.mean(history.losses[:5])


@pytest.mark.parametrize("augment", ["fused", "eager", "none"])
def test_dm_runs_with_every_augmentation(augment):
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "real", seed=0)
    images, history = distill_dm(syn, syn_y, x, y, 3, dm_config(iterations=2, augment=augment), progress=False)
    assert images.shape == syn.shape and len(history.losses) == 2
    assert (history.augment_seconds > 0) == (augment != "none")


# --- DC ----------------------------------------------------------------------------------------------

def dc_config(**changes):
    base = dict(iterations=4, width=16, batch_real=8, checkpoint_every_s=0.0, outer_loop=2, inner_loop=1)
    base.update(changes)
    return DCConfig(**base)


def test_gradient_distance_is_zero_for_equal_gradients_and_skips_biases():
    g = torch.Generator().manual_seed(0)
    w = [torch.randn(4, 3, 3, 3, generator=g), torch.randn(4, generator=g), torch.randn(5, 8, generator=g)]
    assert float(gradient_distance(w, w)) < 1e-5
    other = [t.clone() for t in w]
    other[1] = -other[1]  # a bias: not compared
    assert float(gradient_distance(w, other)) < 1e-5
    other[0] = -other[0]  # opposite conv gradients: 2 per output channel
    assert abs(float(gradient_distance(w, other)) - 8.0) < 1e-4


def test_dc_loop_schedule_follows_the_ipc():
    assert [loops_for(i) for i in (1, 5, 10, 50, 100)] == [(1, 1), (1, 1), (10, 50), (50, 10), (50, 10)]


def test_dc_decreases_its_loss():
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    _, history = distill_dc(syn, syn_y, x, y, 3, dc_config(iterations=40, outer_loop=1, lr_img=1.0, augment="none"),
                            progress=False)
    assert np.mean(history.losses[-8:]) < np.mean(history.losses[:8])


@pytest.mark.parametrize("method", ["dm", "dc"])
def test_resume_gives_the_uninterrupted_result(tmp_path, method):
    loop, config = {"dm": (distill_dm, dm_config), "dc": (distill_dc, dc_config)}[method]
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "kt", seed=0)
    full, _ = loop(syn, syn_y, x, y, 3, config(iterations=4), progress=False)
    ckpt = str(tmp_path / "ckpt.pt")
    loop(syn, syn_y, x, y, 3, config(iterations=2), checkpoint=ckpt, progress=False)
    resumed, history = loop(syn, syn_y, x, y, 3, config(iterations=4), checkpoint=ckpt, resume=True, progress=False)
    assert len(history.losses) == 4 and len(history.iteration_seconds) == 4
    torch.testing.assert_close(resumed, full, atol=0, rtol=0)
    with pytest.raises(ValueError, match="another configuration"):  # other settings, or another method
        loop(syn, syn_y, x, y, 3, config(iterations=4, lr_img=0.5), checkpoint=ckpt, resume=True, progress=False)
    other = distill_dc if method == "dm" else distill_dm
    with pytest.raises(ValueError, match="another configuration"):
        other(syn, syn_y, x, y, 3, (dc_config if method == "dm" else dm_config)(iterations=4), checkpoint=ckpt,
              resume=True, progress=False)


# --- evaluation and privacy ---------------------------------------------------------------------------

def test_evaluation_is_reproducible_and_learns():
    x, y = tiny(n_per_class=10)
    cfg = EvalConfig(epochs=15, runs=2, width=16, batch_size=16)
    a = evaluate_set(x, y, x, y, 3, cfg, seed=4)
    b = evaluate_set(x, y, x, y, 3, cfg, seed=4)
    assert a.accuracies == b.accuracies and len(a.accuracies) == 2
    assert a.mean > 0.6  # well above chance (1/3) on its own training images


def test_pairwise_ssim_equals_scikit_image():
    from skimage.metrics import structural_similarity

    g = torch.Generator().manual_seed(0)
    for channels, size in ((1, (32, 32)), (3, (20, 24))):
        q = torch.rand(3, channels, *size, generator=g)
        t = (q[[0, 1, 2, 0]] + 0.3 * torch.rand(4, channels, *size, generator=g)).clamp(0, 1)
        ours = pairwise_ssim(q, t, query_block=2, train_block=3)
        for i in range(3):
            for j in range(4):
                ref = structural_similarity(q[i].numpy(), t[j].numpy(), data_range=1.0, gaussian_weights=True, sigma=1.5,
                                            use_sample_covariance=False, channel_axis=0)
                assert abs(float(ours[i, j]) - ref) < 1e-4


def test_the_heldout_level_is_computed_once_per_dataset_and_cached_by_content(tmp_path, monkeypatch):
    from kaleido_cuda.lab.pipeline import evaluation
    from kaleido_cuda.lab.privacy import nearest
    from kaleido_cuda.lab.train.data import Dataset

    monkeypatch.setenv("KALEIDO_CACHE_DIR", str(tmp_path))
    x, y = tiny(n_per_class=8)
    ds = Dataset("tiny", x[::2].contiguous(), y[::2], x[1::2].contiguous(), y[1::2], (0.0,), (1.0,), ["a", "b", "c"])
    real, calls = nearest.nearest_neighbours, []
    monkeypatch.setattr(nearest, "nearest_neighbours", lambda q, t: calls.append(len(q)) or real(q, t))
    syn = x[:3]
    first = evaluation.privacy_report(syn, ds)
    assert evaluation.privacy_report(syn, ds) == first
    assert calls == [3, 12, 3]  # the synthetic images each time, the held-out images once
    uncached = real(ds.denormalise(ds.test_images), ds.denormalise(ds.train_images)).summary("heldout_")
    assert {k: v for k, v in first.items() if k.startswith("heldout_")} == uncached
    other = Dataset("tiny", ds.train_images, ds.train_labels, ds.test_images[:5], ds.test_labels[:5], ds.mean, ds.std,
                    ds.classes)
    evaluation.privacy_report(syn, other)
    assert calls[-2:] == [3, 5]  # other held-out images: another entry, computed


def test_nearest_neighbours_find_copies():
    g = torch.Generator().manual_seed(0)
    train = torch.rand(20, 1, 16, 16, generator=g)
    queries = torch.cat([train[[3, 7]], torch.rand(1, 1, 16, 16, generator=g)])
    nn = nearest_neighbours(queries, train)
    assert nn.ssim_index[:2].tolist() == [3, 7] and nn.l2_index[:2].tolist() == [3, 7]
    assert float(nn.ssim[:2].min()) > 0.999 and float(nn.l2[:2].max()) < 1e-6
    assert float(nn.ssim[2]) < 0.5
    summary = nn.summary("heldout_")
    assert set(summary) == {"heldout_nn_ssim_mean", "heldout_nn_ssim_max", "heldout_nn_l2_mean", "heldout_nn_l2_min",
                            "heldout_frac_ssim_over_0.9"}


# --- the command line --------------------------------------------------------------------------------

def test_cli_distill_with_dc(tmp_path):
    out = str(tmp_path / "dc")
    args = ["distill", "--method", "dc", "--ipc", "1", "--iterations", "1", "--batch-real", "4", "--eval-epochs", "1",
            "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["timing"]["iterations"] == 1 and json.load(open(os.path.join(out, "config.json")))["method"] == "dc"


def test_cli_distill_kt_views_initialises_from_averaged_views_and_records_them(tmp_path, capsys):
    out = str(tmp_path / "views")
    args = ["distill", "--ipc", "1", "--kt-views", "3", "--iterations", "0", "--eval-epochs", "1", "--eval-runs", "1",
            "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    assert json.load(open(os.path.join(out, "config.json")))["kt_views"] == 3
    ds = load_dataset("digits")
    want, _ = initialize(ds.train_images, ds.train_labels, 1, "kt", seed=0, num_classes=10, views=3)
    single, _ = initialize(ds.train_images, ds.train_labels, 1, "kt", seed=0, num_classes=10)
    got = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)["images"]
    torch.testing.assert_close(got, want)  # no iterations: the set is its initialisation
    assert float((got - single).abs().max()) > 0.1
    # A run folder written before the options existed: config.json without kt_views (one chain then)
    # and without the sections of the methods added since (which the CLI fills from the run's dataset).
    old = str(tmp_path / "old")
    legacy = ["distill", "--ipc", "1", "--iterations", "0", "--eval-epochs", "1", "--eval-runs", "1",
              "--no-baselines", "--out", old, "--quiet"]
    assert cli.main(legacy + ["--kt-views", "1"]) == 0
    config = json.load(open(os.path.join(old, "config.json")))
    for name in ("kt_views", "datm", "rded"):
        del config[name]
    json.dump(config, open(os.path.join(old, "config.json"), "w"))
    assert cli.main(legacy + ["--resume", "--kt-views", "1"]) == 0
    assert cli.main(legacy + ["--resume"]) == 2  # today's default is 3 views: said, not resumed as 3
    assert "kt_views: 1 in the folder, 3 here" in capsys.readouterr().err
    assert cli.main(args[:-1] + ["--quiet", "--kt-views", "0"]) == 2
    assert cli.main(args[:-1] + ["--quiet", "--kt-families", "warp,blur"]) == 2


def test_resume_into_another_runs_folder_is_refused_before_any_work(tmp_path, monkeypatch, capsys):
    """--resume compares config.json before RDED trains its observer (minutes), and says what differs."""
    from kaleido_cuda.lab.pipeline import methods

    out = str(tmp_path / "dm")
    assert cli.main(["distill", "--ipc", "1", "--iterations", "0", "--eval-epochs", "1", "--eval-runs", "1",
                     "--no-baselines", "--out", out, "--quiet"]) == 0
    monkeypatch.setattr(methods, "observer_for", lambda *a, **k: pytest.fail("the observer was trained"))
    assert cli.main(["distill", "--method", "rded", "--ipc", "1", "--eval-epochs", "1", "--eval-runs", "1",
                     "--no-baselines", "--out", out, "--quiet", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "another configuration" in err and "method" in err


def test_cli_distill_kt_families_are_recorded_and_used(tmp_path):
    out = str(tmp_path / "families")
    args = ["distill", "--ipc", "1", "--kt-families", "noise", "--iterations", "0", "--eval-epochs", "1",
            "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    assert json.load(open(os.path.join(out, "config.json")))["kt_families"] == "noise"
    ds = load_dataset("digits")
    want, _ = initialize(ds.train_images, ds.train_labels, 1, "kt", seed=0, num_classes=10, families="noise",
                         views=3)  # the CLI's default views
    got = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)["images"]
    torch.testing.assert_close(got, want)
    real, _ = initialize(ds.train_images, ds.train_labels, 1, "real", seed=0, num_classes=10)
    assert 0 < float((got - real).abs().mean()) < 0.5  # noise on the real images, no warp or fold


def test_cli_distill_writes_every_output_and_eval_rereads_it(tmp_path, capsys):
    out = str(tmp_path / "run")
    args = ["distill", "--dataset", "digits", "--ipc", "1", "--iterations", "2", "--batch-real", "8",
            "--eval-epochs", "1", "--eval-runs", "1", "--full-epochs", "1", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    for name in ("config.json", "log.txt", "checkpoint.pt", "synthetic.pt", "init_grid.png", "final_grid.png",
                 "nearest_grid.png", "metrics.json"):
        assert os.path.exists(os.path.join(out, name)), name
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert set(m["accuracy"]) >= {"mean", "std", "runs"}
    assert set(m["baselines"]["random_real"]) >= {"mean", "std"} and "mean" in m["baselines"]["full"]
    assert set(m["privacy"]) >= {"nn_ssim_mean", "nn_ssim_max", "nn_l2_mean", "frac_ssim_over_0.9", "heldout_nn_ssim_mean"}
    assert m["timing"]["seconds_per_iteration"] > 0
    saved = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)
    assert saved["images"].shape == (10, 1, 32, 32)
    # The canaries of a membership audit: the training images the (KT) initialisation selected.
    ds = load_dataset("digits")
    assert saved["init_indices"] == select_real(ds.train_labels, 1, 10, seed=0).tolist()
    split = membership_split(ds, saved["init_indices"])
    assert torch.equal(split.canary_labels, torch.arange(10)) and len(split.nonmember_images) == 540
    assert cli.main(["eval", out, "--eval-epochs", "1", "--eval-runs", "2", "--no-baselines", "--quiet"]) == 0
    assert len(json.load(open(os.path.join(out, "metrics.json")))["accuracy"]["runs"]) == 2
    assert "accuracy" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["--dataset", "nope"], "unknown dataset"),
    (["--ipc", "1000"], "larger than the number of training images"),
    (["--init", "copy"], "unknown init"),
    (["--method", "sgd"], "unknown method"),
    (["--method", "mtt", "--buffer", "/nonexistent"], "make one with `kaleido buffer"),
    (["--dataset", "cifar10", "--data-root", "/nonexistent"], "put torchvision's CIFAR10 files there"),
])
def test_cli_bad_arguments_give_one_clear_error(tmp_path, capsys, args, match):
    code = cli.main(["distill", "--out", str(tmp_path / "r"), "--iterations", "1", "--quiet"] + args)
    assert code == 2 and match in capsys.readouterr().err


def test_cli_demo_writes_the_kt_grid_and_a_speed_report(tmp_path, capsys):
    out = str(tmp_path / "demo")
    assert cli.main(["demo", "--out", out, "--repeats", "1"]) == 0
    report = json.load(open(os.path.join(out, "report.json")))
    assert os.path.getsize(os.path.join(out, "kt_grid.png")) > 0
    assert report["timing"]["fused_fwd_bwd_ms"] > 0 and "speed" in capsys.readouterr().out


def test_cli_missing_optional_dependency_names_the_extra(tmp_path, capsys, monkeypatch):
    # As on an install without the [distill] extras: importing tqdm fails.
    monkeypatch.setitem(sys.modules, "tqdm", None)
    monkeypatch.setitem(sys.modules, "tqdm.auto", None)
    code = cli.main(["distill", "--out", str(tmp_path / "r"), "--iterations", "1", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "'tqdm' is not installed" in err and 'kaleido-cuda[distill]' in err
    # A module that is no optional dependency is a bug: its error is not turned into that line.
    assert cli.missing_dependency_line("distill", ModuleNotFoundError("x", name="kaleido_cuda._nope")) is None


def test_quickstart_compares_kt_with_real_init_in_one_table(tmp_path, monkeypatch):
    from kaleido_cuda.lab.pipeline import quickstart

    monkeypatch.setattr(quickstart, "QUICK", dict(quickstart.QUICK, iterations=1, eval_runs=1, eval_epochs=1))
    table = quickstart.run_quickstart(str(tmp_path), progress=False)
    assert [r["set"] for r in table["rows"]] == ["DM, KT init", "DM, real init", "random real subset (IPC 10)",
                                                 "held-out real test images"]
    kt, real, _, held = table["rows"]
    assert kt["nn_ssim_mean"] < held["nn_ssim_mean"] < real["nn_ssim_mean"]  # one step from its sources, real init copies
    assert table["config"]["batch_real"] == 64 and table["job_seconds"] > 0
    text = open(tmp_path / "comparison.md").read()
    assert "1 iterations on real batches of 64 images per class" in text and "| DM, KT init |" in text
    for init in ("kt", "real"):
        assert json.load(open(tmp_path / init / "config.json"))["dm"]["batch_real"] == 64
