"""Expert buffers and trajectory matching (MTT) on tiny data."""
import json
import os

import numpy as np
import pytest
import torch
from torch.func import functional_call

from conftest import tiny_classes
from kaleido_cuda.lab import cli
from kaleido_cuda.lab.distill import BufferConfig, MTTConfig, distill_mtt, load_buffer, train_buffer
from kaleido_cuda.lab.distill import buffer as buffer_module
from kaleido_cuda.lab.distill.buffer import flat_parameters, unflatten
from kaleido_cuda.init import initialize
from kaleido_cuda.lab.train.models import get_model


def tiny(n_per_class=8, **kwargs):
    return tiny_classes(n_per_class, **kwargs)


def buffer_config(**changes):
    base = dict(experts=2, epochs=3, width=16, batch_size=8, lr=0.05)
    base.update(changes)
    return BufferConfig(**base)


@pytest.fixture(scope="module")
def tiny_buffer(tmp_path_factory):
    x, y = tiny()
    out = str(tmp_path_factory.mktemp("buffer"))
    train_buffer(x, y, x, y, 3, buffer_config(), out, dataset="tiny", progress=False)
    return out


def test_flat_parameters_drive_the_model_functionally():
    net = get_model("convnet", 1, 3, (16, 16), width=8)
    x = torch.randn(4, 1, 16, 16)
    flat = flat_parameters(net)
    assert flat.numel() == sum(p.numel() for p in net.parameters())
    torch.testing.assert_close(functional_call(net, unflatten(net, flat), (x,)), net(x))
    with pytest.raises(ValueError, match="does not fit"):
        unflatten(net, flat[:-1])


def test_buffer_stores_trajectories_that_learn(tiny_buffer):
    meta = json.load(open(os.path.join(tiny_buffer, "buffer.json")))
    assert len(meta["experts"]) == 2 and meta["dataset"] == "tiny"
    trajectories = load_buffer(tiny_buffer, "tiny", torch.zeros(1, 1, 16, 16), 3, "convnet", 16, None)
    assert [tuple(t.shape)[0] for t in trajectories] == [4, 4]
    assert not torch.equal(trajectories[0][0], trajectories[1][0])  # experts start from different networks
    assert all(float((t[1:] - t[:-1]).norm(dim=1).min()) > 0 for t in trajectories)  # every epoch moves
    assert min(e["test_accuracy"] for e in meta["experts"]) > 0.6  # 3 well-separated classes


def test_buffer_resumes_an_interrupted_expert_exactly(tmp_path, tiny_buffer, monkeypatch):
    x, y = tiny()
    out = str(tmp_path / "b")
    real_save, calls = buffer_module._save, []

    def interrupted(path, obj):
        real_save(path, obj)
        calls.append(path)
        if len(calls) == 5:  # expert 0 finished (4 saves), expert 1 after its first epoch
            raise KeyboardInterrupt

    monkeypatch.setattr(buffer_module, "_save", interrupted)
    with pytest.raises(KeyboardInterrupt):
        train_buffer(x, y, x, y, 3, buffer_config(), out, dataset="tiny", progress=False)
    monkeypatch.setattr(buffer_module, "_save", real_save)
    assert os.path.exists(os.path.join(out, "partial_1.pt"))
    with pytest.raises(ValueError, match="other options"):  # an unfinished buffer refuses them too
        train_buffer(x, y, x, y, 3, buffer_config(lr=0.1), out, dataset="tiny", progress=False)
    assert len(json.load(open(os.path.join(out, "buffer.json")))["experts"]) == 1  # expert 0 is usable already
    train_buffer(x, y, x, y, 3, buffer_config(), out, dataset="tiny", progress=False)
    for k in range(2):
        a = torch.load(os.path.join(out, f"expert_{k}.pt"))["trajectory"]
        b = torch.load(os.path.join(tiny_buffer, f"expert_{k}.pt"))["trajectory"]
        torch.testing.assert_close(a, b, atol=0, rtol=0)
    assert not os.path.exists(os.path.join(out, "partial_1.pt"))
    with pytest.raises(ValueError, match="other options"):
        train_buffer(x, y, x, y, 3, buffer_config(lr=0.1), out, dataset="tiny", progress=False)


def mtt_config(buffer, **changes):
    base = dict(iterations=4, buffer=buffer, width=16, syn_steps=3, expert_epochs=1, max_start_epoch=2,
                lr_img=10.0, checkpoint_every_s=0.0)
    base.update(changes)
    return MTTConfig(**base)


def test_mtt_decreases_its_loss_and_learns_its_rate(tiny_buffer):
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    cfg = mtt_config(tiny_buffer, iterations=40, max_start_epoch=1, augment="none", lr_init=0.05)
    images, history = distill_mtt(syn, syn_y, x, y, 3, cfg, progress=False)
    assert np.mean(history.losses[-5:]) < 0.8 * np.mean(history.losses[:5])
    assert history.extra["lr"] != cfg.lr_init and history.extra["lr"] > 0
    assert not torch.equal(images, syn)


def test_mtt_resume_gives_the_uninterrupted_result(tmp_path, tiny_buffer):
    x, y = tiny()
    syn, syn_y = initialize(x, y, 2, "kt", seed=0)
    full, h_full = distill_mtt(syn, syn_y, x, y, 3, mtt_config(tiny_buffer), progress=False)
    ckpt = str(tmp_path / "ckpt.pt")
    distill_mtt(syn, syn_y, x, y, 3, mtt_config(tiny_buffer, iterations=2), checkpoint=ckpt, progress=False)
    resumed, h = distill_mtt(syn, syn_y, x, y, 3, mtt_config(tiny_buffer), checkpoint=ckpt, resume=True,
                             progress=False)
    torch.testing.assert_close(resumed, full, atol=0, rtol=0)
    assert h.losses == h_full.losses and h.extra == h_full.extra


@pytest.mark.parametrize("changes, error, match", [
    (dict(width=32), ValueError, "was made for"),
    (dict(max_start_epoch=3), ValueError, "exceeds"),
    (dict(syn_steps=0), ValueError, ">= 1"),
    (dict(buffer=""), ValueError, "needs an expert buffer"),
])
def test_mtt_rejects_a_buffer_that_does_not_fit(tiny_buffer, changes, error, match):
    x, y = tiny()
    syn, syn_y = initialize(x, y, 1, "real", seed=0)
    with pytest.raises(error, match=match):
        changes = dict(changes)
        distill_mtt(syn, syn_y, x, y, 3, mtt_config(changes.pop("buffer", tiny_buffer), **changes), progress=False)


def test_cli_buffer_then_mtt_evaluates_with_the_learned_rate(tmp_path, capsys):
    buf, out = str(tmp_path / "buf"), str(tmp_path / "mtt")
    assert cli.main(["buffer", "--model", "mlp", "--experts", "1", "--epochs", "2", "--out", buf, "--quiet"]) == 0
    assert "expert trajectories" in capsys.readouterr().out
    args = ["distill", "--method", "mtt", "--model", "mlp", "--buffer", buf, "--ipc", "1", "--iterations", "2",
            "--syn-steps", "2", "--expert-epochs", "1", "--max-start-epoch", "1", "--eval-model", "mlp",
            "--eval-epochs", "1", "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    saved = torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)
    metrics = json.load(open(os.path.join(out, "metrics.json")))
    assert saved["lr"] > 0 and metrics["eval"]["lr"] == saved["lr"]
    assert cli.main(["buffer", "--epochs", "0", "--out", buf, "--quiet"]) == 2
    assert "must be >= 1" in capsys.readouterr().err
