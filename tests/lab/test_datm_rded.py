"""DATM (difficulty-aligned trajectory matching with learned soft labels), RDED (observer-selected
crops, stitched, taught by the observer) and the soft-label / knowledge-distillation evaluation."""
import json
import os

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import tiny_classes
from kaleido_cuda.init import initialize, select_real
from kaleido_cuda.lab import cli
from kaleido_cuda.lab.distill import BufferConfig, DATMConfig, RDEDConfig, distill_datm, train_buffer
from kaleido_cuda.lab.distill.datm import (eligible_images, final_networks, initial_label_logits, upper_start_epoch,
                                           window_for_ipc)
from kaleido_cuda.lab.distill.rded import class_crops, default_factor, rded_set, stitch
from kaleido_cuda.lab.pipeline.config import RunConfig
from kaleido_cuda.lab.train.evaluate import EvalConfig, supervision_loss, train_model
from kaleido_cuda.lab.train.models import get_model


@pytest.fixture(scope="module")
def tiny_buffer(tmp_path_factory):
    x, y = tiny_classes(8)
    out = str(tmp_path_factory.mktemp("buffer"))
    train_buffer(x, y, x, y, 3, BufferConfig(experts=2, epochs=4, width=16, batch_size=8, lr=0.05), out,
                 dataset="tiny", progress=False)
    return out


def datm_config(buffer, **changes):
    base = dict(iterations=6, buffer=buffer, width=16, syn_steps=3, expert_epochs=1, min_start_epoch=0,
                initial_max_start_epoch=1, max_start_epoch=3, expansion_end=4, lr_img=10.0, lr_labels=5.0,
                checkpoint_every_s=0.0, label_init="images")
    base.update(changes)
    return DATMConfig(**base)


# --- DATM -------------------------------------------------------------------------------------------

def test_the_window_rises_linearly_to_its_bound_and_follows_the_ipc():
    cfg = DATMConfig(iterations=100, min_start_epoch=0, initial_max_start_epoch=4, max_start_epoch=10,
                     expansion_end=60)
    bounds = [upper_start_epoch(cfg, it) for it in range(100)]
    assert bounds[0] == 4 and bounds[30] == 7 and bounds[59] == 9 and bounds[60:] == [10] * 40
    assert all(a <= b for a, b in zip(bounds, bounds[1:]))
    # DATM's CIFAR settings scaled to the buffer: IPC 1 early only, IPC 10 grows, IPC 50 reaches further.
    assert window_for_ipc(1, 20, 2) == (0, 4, 4)
    assert window_for_ipc(10, 20, 2) == (0, 5, 10)
    assert window_for_ipc(50, 100, 2) == (0, 50, 90)
    assert window_for_ipc(50, 20, 2) == (0, 10, 18)  # bounded by the last epoch with a target


def test_datm_draws_its_start_epochs_inside_the_rising_window(tiny_buffer, monkeypatch):
    from kaleido_cuda.lab.distill import datm as datm_module

    seen = []
    real = datm_module.trajectory_loss

    def spy(net, trajectory, start_epoch, *args):
        seen.append(start_epoch)
        return real(net, trajectory, start_epoch, *args)

    monkeypatch.setattr(datm_module, "trajectory_loss", spy)
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "real", seed=0)
    cfg = datm_config(tiny_buffer, iterations=30, expansion_end=20)
    distill_datm(syn, syn_y, x, y, 3, cfg, progress=False)
    assert all(0 <= e < upper_start_epoch(cfg, it) for it, e in enumerate(seen))
    assert max(seen[:5]) == 0 and max(seen[20:]) == 2  # early iterations match the first epoch only


def test_datm_starts_from_correctly_classified_images_with_the_experts_logits(tiny_buffer):
    x, y = tiny_classes(8)
    x = x.clone()
    x[0] = -x[0]  # an image the experts get wrong
    cfg = datm_config(tiny_buffer, dataset="tiny")
    eligible = eligible_images(cfg, x, y, 3)
    net = final_networks(cfg, x, 3)[0]
    assert torch.equal(eligible, net(x).argmax(1) == y) and not bool(eligible.all())
    chosen = select_real(y, 2, 3, seed=0, eligible=eligible)
    assert bool(eligible[chosen].all())
    logits = initial_label_logits(cfg, x[chosen], y[chosen], 3)
    nets = final_networks(cfg, x, 3)
    with torch.no_grad():
        per_expert = torch.stack([n(x[chosen]) for n in nets])
    right = (per_expert.argmax(2) == y[chosen]).float().unsqueeze(2)
    torch.testing.assert_close(logits, (per_expert * right).sum(0) / right.sum(0).clamp_min(1))
    with pytest.raises(ValueError, match="eligible training images"):
        select_real(y, 8, 3, seed=0, eligible=eligible)


def test_datm_labels_a_kt_set_from_its_sources_or_its_class_means_as_asked(tiny_buffer):
    x, y = tiny_classes(8)
    chosen = select_real(y, 2, 3, seed=0)
    syn, syn_y = initialize(x, y, 2, "kt", seed=0)
    start = lambda label_init, **kw: distill_datm(  # noqa: E731
        syn, syn_y, x, y, 3, datm_config(tiny_buffer, iterations=1, lr_labels=0.0, label_init=label_init),
        progress=False, **kw)[1].extra["label_logits"]
    exact = dict(atol=0, rtol=0)
    torch.testing.assert_close(start("images"), initial_label_logits(datm_config(tiny_buffer), syn, syn_y, 3), **exact)
    from_sources = start("sources", sources=x[chosen])
    torch.testing.assert_close(from_sources, initial_label_logits(datm_config(tiny_buffer), x[chosen], y[chosen], 3),
                               **exact)
    assert not torch.allclose(from_sources, start("images"))
    # class_mean: the mean over (training image, expert) pairs of the class where the expert is right.
    with torch.no_grad():
        per_expert = torch.stack([n(x) for n in final_networks(datm_config(tiny_buffer), x, 3)])  # (E, N, K)
    right = per_expert.argmax(2) == y
    means = torch.stack([per_expert[right & (y == c)].mean(0) for c in range(3)])
    torch.testing.assert_close(start("class_mean"), means[syn_y])
    with pytest.raises(ValueError, match="real images the set was made from"):
        start("sources")
    with pytest.raises(ValueError, match="unknown label_init"):
        start("one_hot")
    with pytest.raises(ValueError, match="--init noise has none"):
        RunConfig(method="datm", init="noise", datm=DATMConfig(label_init="sources", buffer=tiny_buffer)).check()


def test_datm_label_init_follows_the_initialisation_unless_a_resumed_folder_says_otherwise(tiny_buffer):
    from dataclasses import asdict

    from kaleido_cuda.lab.pipeline.methods import resolve

    def resolved_label_init(init, saved=None, **changes):
        cfg = RunConfig(method="datm", init=init, ipc=2, datm=datm_config(tiny_buffer, dataset="tiny", **changes))
        resolve(cfg, (16, 16), saved)
        return cfg.datm.label_init

    assert resolved_label_init("real", label_init=None) == "images"  # DATM's rule
    assert resolved_label_init("kt", label_init=None) == "class_mean"
    assert resolved_label_init("noise", label_init=None) == "class_mean"
    assert resolved_label_init("kt", label_init="sources") == "sources"
    # A folder written before the option started its labels from its (KT) images: resume keeps that.
    before = asdict(RunConfig(method="datm", init="kt", ipc=2, datm=datm_config(tiny_buffer, dataset="tiny")))
    del before["datm"]["label_init"]
    assert resolved_label_init("kt", before, label_init=None) == "images"
    with pytest.raises(ValueError, match="label_init is not set"):
        distill_datm(*initialize(*tiny_classes(8), 2, "real", seed=0), *tiny_classes(8), 3,
                     datm_config(tiny_buffer, label_init=None), progress=False)


def test_datm_lowers_its_loss_and_learns_labels_with_the_images(tiny_buffer):
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    cfg = datm_config(tiny_buffer, iterations=40, max_start_epoch=1, initial_max_start_epoch=1, augment="none",
                      lr_init=0.05)
    images, history = distill_datm(syn, syn_y, x, y, 3, cfg, progress=False)
    assert np.mean(history.losses[-5:]) < 0.8 * np.mean(history.losses[:5])
    start = initial_label_logits(cfg, syn, syn_y, 3)
    assert not torch.allclose(history.extra["label_logits"], start)
    torch.testing.assert_close(history.extra["soft_labels"], F.softmax(history.extra["label_logits"], 1))
    # Without a label step size the labels stay where the experts put them.
    _, frozen = distill_datm(syn, syn_y, x, y, 3, datm_config(tiny_buffer, iterations=3, lr_labels=0.0),
                             progress=False)
    torch.testing.assert_close(frozen.extra["label_logits"], start, atol=0, rtol=0)


def test_datm_soft_labels_get_the_gradient_of_the_matching_loss(tiny_buffer):
    """One iteration's label update is exactly -lr_labels times the matching loss's gradient with
    respect to the logits (SGD's first step): the labels are trained by the loss, not by anything else."""
    from kaleido_cuda.lab.distill.buffer import load_buffer
    from kaleido_cuda.lab.distill.common import Augmenter, iteration_seed
    from kaleido_cuda.lab.distill.mtt import trajectory_loss

    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "real", seed=0)
    cfg = datm_config(tiny_buffer, iterations=1, augment="none", lr_img=0.0)
    _, history = distill_datm(syn, syn_y, x, y, 3, cfg, progress=False)
    start = initial_label_logits(cfg, syn, syn_y, 3).requires_grad_(True)
    trajectories = load_buffer(tiny_buffer, None, x, 3, "convnet", 16, None)
    g = torch.Generator().manual_seed(iteration_seed(cfg.seed, 0))
    torch.manual_seed(iteration_seed(cfg.seed, 0))
    net = get_model("convnet", 1, 3, (16, 16), 16, None)
    k = int(torch.randint(len(trajectories), (1,), generator=g))
    e = int(torch.randint(0, upper_start_epoch(cfg, 0), (1,), generator=g))
    loss = trajectory_loss(net, trajectories[k], e, cfg, syn, F.softmax(start, 1), torch.tensor(cfg.lr_init),
                           Augmenter("none"), g)
    grad, = torch.autograd.grad(loss, start)
    torch.testing.assert_close(history.extra["label_logits"], start.detach() - cfg.lr_labels * grad)


def test_datm_resume_gives_the_uninterrupted_result(tmp_path, tiny_buffer):
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "kt", seed=0)
    full, h_full = distill_datm(syn, syn_y, x, y, 3, datm_config(tiny_buffer), progress=False)
    ckpt = str(tmp_path / "ckpt.pt")
    distill_datm(syn, syn_y, x, y, 3, datm_config(tiny_buffer, iterations=2), checkpoint=ckpt, progress=False)
    resumed, h = distill_datm(syn, syn_y, x, y, 3, datm_config(tiny_buffer), checkpoint=ckpt, resume=True,
                              progress=False)
    torch.testing.assert_close(resumed, full, atol=0, rtol=0)
    assert h.losses == h_full.losses and h.extra["lr"] == h_full.extra["lr"]
    torch.testing.assert_close(h.extra["label_logits"], h_full.extra["label_logits"], atol=0, rtol=0)


@pytest.mark.parametrize("changes, match", [
    (dict(min_start_epoch=2, initial_max_start_epoch=2), "window needs"),
    (dict(max_start_epoch=4), "exceeds"),
    (dict(expansion_end=0), "expansion_end"),
    (dict(buffer=""), "needs an expert buffer"),
    (dict(model="convnet_bn"), "batch norm"),  # the buffer has no running statistics for the experts' logits
])
def test_datm_rejects_bad_windows_and_buffers(tiny_buffer, changes, match):
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 1, "real", seed=0)
    changes = dict(changes)
    with pytest.raises(ValueError, match=match):
        distill_datm(syn, syn_y, x, y, 3, datm_config(changes.pop("buffer", tiny_buffer), **changes), progress=False)


# --- RDED -------------------------------------------------------------------------------------------

def test_stitch_puts_tile_k_in_image_k_mod_ipc_at_position_k_div_ipc():
    tiles = torch.arange(8, dtype=torch.float32).view(8, 1, 1, 1).expand(8, 1, 4, 4).contiguous()
    out = stitch(tiles, ipc=2, factor=2)
    assert out.shape == (2, 1, 4, 4)
    assert out[0, 0].tolist() == [[0, 0, 2, 2], [0, 0, 2, 2], [4, 4, 6, 6], [4, 4, 6, 6]]
    assert out[1, 0].tolist() == [[1, 1, 3, 3], [1, 1, 3, 3], [5, 5, 7, 7], [5, 5, 7, 7]]


class Brightness(torch.nn.Module):
    """An observer that finds an image of class c the more realistic the brighter it is."""

    def forward(self, x):
        b = x.mean(dim=(1, 2, 3))
        return torch.stack([b, torch.zeros_like(b)], dim=1)


def test_rded_keeps_the_crops_the_observer_finds_most_realistic():
    x = torch.arange(10, dtype=torch.float32).view(10, 1, 1, 1).expand(10, 1, 8, 8).contiguous()
    cfg = RDEDConfig(factor=1, crops_per_image=3, min_scale=1.0, max_scale=1.0)
    tiles, rows = class_crops(Brightness(), x, torch.arange(10), 0, 4, cfg, torch.Generator().manual_seed(0))
    assert rows.tolist() == [9, 8, 7, 6]  # the brightest images, best first
    torch.testing.assert_close(tiles, x[[9, 8, 7, 6]])  # full-image crops are the images


def test_rded_tiles_come_from_their_recorded_sources():
    x, y = tiny_classes(8, size=16)
    observer = get_model("convnet", 1, 3, (16, 16), 16, None)
    cfg = RDEDConfig(factor=2, crops_per_image=2, min_scale=1.0, max_scale=1.0)
    images, labels, sources = rded_set(observer, x, y, 2, 3, cfg, init="real")
    assert images.shape == (6, 1, 16, 16) and labels.tolist() == [0, 0, 1, 1, 2, 2]
    assert sources.shape == (6, 4) and bool((y[sources] == labels[:, None]).all())
    for i in range(6):  # every tile is its source, downsampled, at its grid position
        for k in range(4):
            r, q = divmod(k, 2)
            small = F.interpolate(x[sources[i, k]][None], size=(8, 8), mode="bilinear", antialias=True)[0]
            torch.testing.assert_close(images[i, :, 8 * r:8 * r + 8, 8 * q:8 * q + 8], small)
    assert len(set(sources.flatten().tolist())) == 24  # one crop per source image
    kt, _, kt_sources = rded_set(observer, x, y, 2, 3, cfg, init="kt")
    assert torch.equal(kt_sources, sources) and not torch.allclose(kt, images)
    noise, _, none = rded_set(observer, x, y, 2, 3, cfg, init="noise")
    assert bool((none == -1).all())


def test_rded_factor_follows_the_resolution_as_rdeds_scripts():
    """One crop per image up to 64 px (RDED's CIFAR and Tiny ImageNet runs), 2x2 above (ImageNet)."""
    assert [default_factor((s, s)) for s in (16, 32, 64, 128, 224)] == [1, 1, 1, 2, 2]
    x, y = tiny_classes(8, size=16)
    cfg = RDEDConfig(crops_per_image=1)
    _, _, sources = rded_set(get_model("mlp", 1, 3, (16, 16), 16, None), x, y, 2, 3, cfg)
    assert sources.shape == (6, 1) and cfg.factor is None  # resolved on a copy: the caller's config is kept


@pytest.mark.parametrize("changes, ipc, match", [
    (dict(factor=3), 1, "divide the image side"),
    (dict(factor=2), 3, "needs 12 crops per class"),
    (dict(min_scale=0.0), 1, "scale range"),
])
def test_rded_refuses_bad_factors_scales_and_ipc(changes, ipc, match):
    x, y = tiny_classes(8, size=16)
    with pytest.raises(ValueError, match=match):
        rded_set(get_model("mlp", 1, 3, (16, 16), 16, None), x, y, ipc, 3, RDEDConfig(**changes))


# --- soft-label and knowledge-distillation evaluation ------------------------------------------------

def test_soft_one_hot_labels_train_as_the_hard_labels_and_kd_from_itself_is_zero():
    x, y = tiny_classes(4)
    cfg = EvalConfig(model="mlp", epochs=3, width=16, augment=False)
    hard = train_model(x, y, 3, cfg, seed=0)
    soft = train_model(x, F.one_hot(y, 3).float(), 3, cfg, seed=0)
    for a, b in zip(hard.parameters(), soft.parameters()):
        torch.testing.assert_close(a, b)
    logits = torch.randn(5, 3)
    teacher = torch.nn.Identity()
    assert float(supervision_loss(logits, None, logits, teacher, 4.0)) == pytest.approx(0.0, abs=1e-6)
    assert float(supervision_loss(logits, None, torch.randn(5, 3), teacher, 4.0)) > 0
    with pytest.raises(ValueError, match="soft labels must be"):
        train_model(x, torch.ones(len(x), 4) / 4, 3, cfg, seed=0)


def test_kd_evaluation_follows_the_teacher():
    """A model distilled from a teacher on images whose hard labels are wrong learns the teacher's
    answers, not the labels."""
    x, y = tiny_classes(6)
    cfg = EvalConfig(model="mlp", epochs=30, width=32, augment=False, lr=0.05)
    teacher = train_model(x, y, 3, cfg, seed=1)
    wrong = (y + 1) % 3
    student = train_model(x, wrong, 3, cfg, seed=0, teacher=teacher)
    with torch.no_grad():
        agree = (student(x).argmax(1) == teacher(x).argmax(1)).float().mean()
    assert float(agree) > 0.9


# --- the pipeline --------------------------------------------------------------------------------------

def _rded_args(out, *extra):
    return ["distill", "--method", "rded", "--ipc", "1", "--observer-epochs", "1", "--eval-epochs", "1",
            "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet", *extra]


def test_cli_rded_records_its_canaries_and_evaluates_by_distillation(tmp_path, capsys):
    out = str(tmp_path / "rded")
    assert cli.main(_rded_args(out, "--init", "kt", "--kt-views", "2", "--rded-factor", "2")) == 0
    saved = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert json.load(open(os.path.join(out, "config.json")))["rded"]["factor"] == 2
    assert metrics["eval"]["protocol"] == "kd" and os.path.exists(os.path.join(out, "observer.pt"))
    assert saved["tile_sources"].shape == (10, 4)
    assert saved["init_indices"] == sorted(set(saved["tile_sources"].flatten().tolist()))
    assert cli.main(["eval", out, "--eval-epochs", "1", "--eval-runs", "1", "--eval-labels", "hard",
                     "--no-baselines", "--quiet"]) == 0
    assert json.load(open(os.path.join(out, "metrics.json")))["eval"]["protocol"] == "hard"
    assert cli.main(["eval", out, "--eval-temperature", "0", "--quiet"]) == 2
    assert "temperature must be > 0" in capsys.readouterr().err
    assert cli.main(["audit", out, "--attacks", "data,model", "--models", "1", "--quiet"]) == 0
    audit = json.load(open(os.path.join(out, "audit.json")))
    assert audit["canaries"] == len(saved["init_indices"])
    assert cli.main(["audit", out, "--attacks", "lira", "--shadows", "2", "--quiet"]) == 2
    assert "own observer" in capsys.readouterr().err


@pytest.fixture(scope="module")
def mlp_buffer(tmp_path_factory):
    """A one-expert MLP buffer on the digits, made with `kaleido buffer`, for the CLI's DATM runs."""
    buf = str(tmp_path_factory.mktemp("mlp_buffer"))
    assert cli.main(["buffer", "--model", "mlp", "--experts", "1", "--epochs", "3", "--out", buf, "--quiet"]) == 0
    return buf


def test_cli_datm_learns_labels_and_evaluates_on_them(tmp_path, mlp_buffer):
    buf, out = mlp_buffer, str(tmp_path / "datm")
    args = ["distill", "--method", "datm", "--model", "mlp", "--buffer", buf, "--ipc", "1", "--iterations", "2",
            "--syn-steps", "2", "--expert-epochs", "1", "--eval-model", "mlp", "--eval-epochs", "1",
            "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    saved = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    config = json.load(open(os.path.join(out, "config.json")))
    assert metrics["eval"]["protocol"] == "soft" and saved["soft_labels"].shape == (10, 10)
    assert config["datm"]["max_start_epoch"] == 1 and config["datm"]["initial_max_start_epoch"] == 1  # 20% of 3
    assert config["datm"]["expansion_end"] == 1  # half the iterations, recorded
    assert metrics["eval"]["lr"] == saved["lr"] and len(saved["init_indices"]) == 10
    assert cli.main(args + ["--resume"]) == 0  # the window resolves the same way: the folder is this run's
    longer = [a if a != "2" or args[i - 1] != "--iterations" else "4" for i, a in enumerate(args)]
    assert cli.main(longer + ["--resume"]) == 0  # goes on: the window keeps the run's schedule
    assert json.load(open(os.path.join(out, "config.json")))["datm"]["expansion_end"] == 1
    assert len(torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)["losses"]) == 4
    assert cli.main(["audit", out, "--attacks", "data,model", "--models", "1", "--quiet"]) == 0
    assert json.load(open(os.path.join(out, "audit.json")))["canaries"] == 10  # the initial images


def test_cli_datm_labels_kt_images_from_their_recorded_sources(tmp_path, capsys, mlp_buffer):
    from kaleido_cuda.lab.train.data import load_dataset

    buf, out = mlp_buffer, str(tmp_path / "datm")
    args = ["distill", "--method", "datm", "--model", "mlp", "--buffer", buf, "--ipc", "1", "--iterations", "1",
            "--syn-steps", "2", "--expert-epochs", "1", "--lr-labels", "0", "--eval-model", "mlp", "--eval-epochs",
            "1", "--eval-runs", "1", "--no-baselines", "--quiet", "--label-init", "sources"]
    assert cli.main(args + ["--init", "noise", "--out", out]) == 2
    assert "--init noise has none" in capsys.readouterr().err and not os.path.exists(out)
    assert cli.main(args + ["--init", "kt", "--out", out]) == 0
    saved = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)
    assert json.load(open(os.path.join(out, "config.json")))["datm"]["label_init"] == "sources"
    ds = load_dataset("digits")
    sources = ds.train_images[saved["init_indices"]]
    cfg = DATMConfig(buffer=buf, model="mlp", dataset="digits")
    torch.testing.assert_close(saved["label_logits"], initial_label_logits(cfg, sources, ds.train_labels[
        saved["init_indices"]], 10))


@pytest.mark.parametrize("extra, match", [
    (["--rded-factor", "3"], "divide the image side"),
    (["--ipc", "200"], "crops per class"),
    (["--observer", "/nonexistent.pt"], "no observer checkpoint"),
])
def test_cli_rded_bad_input_is_one_line_and_writes_nothing(tmp_path, capsys, extra, match):
    out = str(tmp_path / "r")
    assert cli.main(_rded_args(out, *extra)) == 2
    assert match in capsys.readouterr().err and not os.path.exists(out)


def test_cli_rded_refuses_an_observer_of_another_dataset(tmp_path, capsys):
    from kaleido_cuda.lab.distill.observer import save_observer

    path = str(tmp_path / "observer.pt")
    net = get_model("convnet_bn", 3, 10, (32, 32), 128, None)
    save_observer(path, {"state_dict": net.state_dict(), "meta": {"dataset": "cifar10", "channels": 3,
                                                                   "size": [32, 32], "num_classes": 10}})
    out = str(tmp_path / "r")
    assert cli.main(_rded_args(out, "--observer", path)) == 2
    assert "was made for" in capsys.readouterr().err and not os.path.exists(out)


def test_runs_made_before_datm_and_rded_keep_their_shadow_cache_and_model_keys():
    """LiRA's shadow records and the evaluation models' records of a DM run hold no trace of the
    options added with DATM and RDED, so caches written before them stay valid."""
    from kaleido_cuda.lab.pipeline.audit import _shadow_record
    from kaleido_cuda.lab.pipeline.config import RunConfig
    from kaleido_cuda.lab.privacy.shadows import ShadowConfig
    from kaleido_cuda.lab.train.evaluate import _model_record

    run = _shadow_record(RunConfig(), ShadowConfig(), 10)["run"]
    assert "datm" not in run and "rded" not in run and not {"labels", "temperature"} & set(run["eval"])
    x, y = tiny_classes(2)
    record = _model_record(x, y, 3, EvalConfig(), 0, None)
    assert not {"labels", "temperature"} & set(record["eval"]) and "teacher" not in record


@pytest.mark.parametrize("method", ["mtt", "datm", "rded"])
def test_methods_that_do_not_shard_refuse_torchrun_and_say_why(tmp_path, monkeypatch, method):
    from kaleido_cuda.lab.distributed import World
    from kaleido_cuda.lab.pipeline import distill as distill_module
    from kaleido_cuda.lab.pipeline.config import SHARDED_METHODS, RunConfig
    from kaleido_cuda.lab.distill import METHODS

    assert set(distill_module.UNSHARDED) == set(METHODS) - set(SHARDED_METHODS)
    monkeypatch.setattr(distill_module, "init_world", lambda device: World(rank=0, size=2))
    cfg = RunConfig(method=method)
    monkeypatch.setattr(RunConfig, "check", lambda self: None)  # no buffer needed to be refused
    with pytest.raises(ValueError, match=f"torchrun: {method} runs as one process"):
        distill_module.distill_run(cfg, str(tmp_path / "r"))
    assert not os.path.exists(tmp_path / "r")
