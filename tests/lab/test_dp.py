"""Formal DP: the accountant against dp-accounting and Opacus, the Gaussian mechanism of DP-DM (its
clipping and the variance of its noise), resume of the accounting, DP-SGD, and bad DP arguments."""
import json
import math
import os

import numpy as np
import pytest
import torch

from conftest import tiny_classes
from kaleido_cuda.lab import cli
from kaleido_cuda.lab.distill import DMConfig, distill_dm
from kaleido_cuda.init import initialize

dp_accounting = pytest.importorskip("dp_accounting")
scipy_stats = pytest.importorskip("scipy.stats")

from kaleido_cuda.lab.dp.accounting import (DPAccountant, calibrate_noise, epsilon_spent)  # noqa: E402
from kaleido_cuda.lab.dp.mechanism import ClassMeanMechanism, clip_rows, noisy_clipped_mean, poisson_batch  # noqa: E402


# --- accounting ---------------------------------------------------------------------------------------

def test_epsilon_equals_dp_accounting_and_opacus_called_directly():
    from dp_accounting import dp_event, pld, rdp

    sigma, q, steps, delta = 1.1, 0.05, 400, 1e-5
    event = dp_event.SelfComposedDpEvent(dp_event.PoissonSampledDpEvent(q, dp_event.GaussianDpEvent(sigma)), steps)
    direct = rdp.RdpAccountant().compose(event).get_epsilon(delta)
    assert epsilon_spent(sigma, q, steps, delta, "rdp") == pytest.approx(direct, rel=1e-12)
    direct_pld = pld.PLDAccountant().compose(event).get_epsilon(delta)
    assert epsilon_spent(sigma, q, steps, delta, "pld") == pytest.approx(direct_pld, rel=1e-12)
    assert direct_pld < direct  # the tighter analysis
    opacus = pytest.importorskip("opacus")
    from opacus.accountants import RDPAccountant

    accountant = RDPAccountant()
    accountant.history = [(sigma, q, steps)]
    assert epsilon_spent(sigma, q, steps, delta, "rdp") == pytest.approx(accountant.get_epsilon(delta), rel=1e-6)
    assert opacus is not None
    # Sample rate 1 is the plain Gaussian mechanism composed: the same as dp-accounting's.
    plain = rdp.RdpAccountant().compose(dp_event.SelfComposedDpEvent(dp_event.GaussianDpEvent(sigma), 10))
    assert epsilon_spent(sigma, 1.0, 10, delta) == pytest.approx(plain.get_epsilon(delta), rel=1e-12)


@pytest.mark.parametrize("kind", ["rdp", "pld"])
def test_calibrated_noise_spends_the_target_and_no_less_noise_would(kind):
    sigma = calibrate_noise(4.0, 1e-5, 0.2, 150, kind)
    assert 0.999 * 4.0 <= epsilon_spent(sigma, 0.2, 150, 1e-5, kind) <= 4.0 + 1e-6
    assert epsilon_spent(0.98 * sigma, 0.2, 150, 1e-5, kind) > 4.0


def test_accountant_state_is_all_it_needs():
    a = DPAccountant.for_target(2.0, 1e-5, 1.0, 20)
    for _ in range(7):
        a.step()
    b = DPAccountant(1.0, 0.5, 1e-3)
    b.load_state_dict(a.state_dict())
    assert b.epsilon() == a.epsilon() and a.steps == 7
    assert a.epsilon() < 2.0 and a.report()["accountant"].startswith("dp_accounting.rdp")


# --- the mechanism ------------------------------------------------------------------------------------

def test_clip_rows_bounds_norms_and_keeps_short_rows():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(50, 8, generator=g) * torch.linspace(0.1, 3, 50)[:, None]
    clipped = clip_rows(x, 1.0)
    assert clipped.norm(dim=1).max() <= 1.0 + 1e-6
    short = x.norm(dim=1) <= 1.0
    assert torch.equal(clipped[short], x[short])
    long = ~short
    torch.testing.assert_close(clipped[long] / clipped[long].norm(dim=1, keepdim=True),
                               x[long] / x[long].norm(dim=1, keepdim=True))


def test_noisy_clipped_mean_has_the_variance_the_mechanism_claims():
    # Fixed embeddings (some longer than the clip norm), many draws of the released mean: it is
    # unbiased for the clipped mean, and each coordinate's variance is (sigma C / n)^2.
    g = torch.Generator().manual_seed(1)
    n, dim, clip, sigma, draws = 40, 16, 2.0, 1.5, 4000
    emb = torch.randn(n, dim, generator=g, dtype=torch.float64) * 1.2
    expected = clip_rows(emb, clip).sum(0) / n
    noise_gen = torch.Generator().manual_seed(2)
    out = torch.stack([noisy_clipped_mean(emb, dim, clip, sigma, n, noise_gen) for _ in range(draws)]).numpy()
    std = sigma * clip / n
    z = (out.mean(0) - expected.numpy()) / (std / math.sqrt(draws))
    assert np.abs(z).max() < 4.5  # 16 coordinates, a 4.5-sigma band
    # Pooled over coordinates, (draws - 1) s^2 / std^2 ~ chi^2 with dim (draws - 1) degrees of freedom.
    stat = ((out - out.mean(0)) ** 2).sum() / std ** 2
    dof = dim * (draws - 1)
    lo, hi = scipy_stats.chi2.ppf([0.0005, 0.9995], dof)
    assert lo < stat < hi, (stat / dof)


def test_noise_is_scaled_to_the_expected_batch_and_empty_batches_release_noise_only():
    g = torch.Generator().manual_seed(3)
    emb = torch.randn(10, 4, generator=g, dtype=torch.float64)
    mech = ClassMeanMechanism(noise_multiplier=0.0, sample_rate=0.5, clip=100.0)
    # No noise: the sum over the batch divided by the expected size q n_c, not by the batch's own size.
    torch.testing.assert_close(mech.real_mean(emb, 4, 30, g), emb.sum(0) / 15)
    noisy = ClassMeanMechanism(noise_multiplier=1.0, sample_rate=0.5, clip=3.0)
    draws = torch.stack([noisy.real_mean(None, 4, 30, g) for _ in range(3000)])
    assert draws.mean().abs() < 0.01 and abs(float(draws.std()) - 3.0 / 15) < 0.01


def test_poisson_batch_includes_each_example_at_the_sample_rate():
    g = torch.Generator().manual_seed(4)
    sizes = [len(poisson_batch(1000, 0.3, g)) for _ in range(50)]
    total = sum(sizes)
    assert scipy_stats.binomtest(total, 50 * 1000, 0.3).pvalue > 1e-3
    assert len(poisson_batch(7, 1.0, g)) == 7


# --- DP-DM ----------------------------------------------------------------------------------------------

def dp_config(**changes):
    base = dict(iterations=4, width=16, batch_real=8, checkpoint_every_s=0.0, dp_epsilon=4.0, dp_sample_rate=0.5)
    base.update(changes)
    return DMConfig(**base)


def test_dp_dm_spends_its_budget_and_differs_from_plain_dm():
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    images, history = distill_dm(syn, syn_y, x, y, 3, dp_config(), progress=False)
    dp = history.dp
    assert dp["steps"] == 4 and dp["sample_rate"] == 0.5
    assert 0.999 * 4.0 <= dp["epsilon"] <= 4.0 + 1e-6
    assert dp["epsilon"] == pytest.approx(epsilon_spent(dp["noise_multiplier"], 0.5, 4, 1e-5))
    plain, plain_history = distill_dm(syn, syn_y, x, y, 3, dp_config(dp_epsilon=None), progress=False)
    assert not plain_history.dp and not torch.equal(plain, images)
    again, _ = distill_dm(syn, syn_y, x, y, 3, dp_config(), progress=False)
    torch.testing.assert_close(again, images, atol=0, rtol=0)  # the noise is seeded: reproducible


class Interrupted(Exception):
    pass


def test_dp_dm_resume_continues_the_accounting_exactly(tmp_path, monkeypatch):
    x, y = tiny_classes(8)
    syn, syn_y = initialize(x, y, 2, "noise", seed=0)
    full, full_history = distill_dm(syn, syn_y, x, y, 3, dp_config(iterations=5), progress=False)
    ckpt = str(tmp_path / "ckpt.pt")
    import kaleido_cuda.lab.distill.dm as dm

    real_get_model, calls = dm.get_model, []

    def interrupted_after_two(*args, **kwargs):  # the run dies in its third iteration
        calls.append(1)
        if len(calls) == 3:
            raise Interrupted
        return real_get_model(*args, **kwargs)

    monkeypatch.setattr(dm, "get_model", interrupted_after_two)
    with pytest.raises(Interrupted):
        distill_dm(syn, syn_y, x, y, 3, dp_config(iterations=5), checkpoint=ckpt, progress=False)
    monkeypatch.setattr(dm, "get_model", real_get_model)
    saved = torch.load(ckpt, weights_only=False)
    assert saved["iteration"] == 2 and saved["state"]["dp_accountant"]["steps"] == 2
    resumed, history = distill_dm(syn, syn_y, x, y, 3, dp_config(iterations=5), checkpoint=ckpt, resume=True,
                                  progress=False)
    torch.testing.assert_close(resumed, full, atol=0, rtol=0)
    assert history.dp == full_history.dp
    # More iterations than the noise was calibrated for: the same mechanism goes on, and the
    # accountant says what the extra iterations cost.
    longer, longer_history = distill_dm(syn, syn_y, x, y, 3, dp_config(iterations=8), checkpoint=ckpt, resume=True,
                                        progress=False)
    assert longer_history.dp["noise_multiplier"] == full_history.dp["noise_multiplier"]
    assert longer_history.dp["steps"] == 8 and longer_history.dp["epsilon"] > 4.0
    with pytest.raises(ValueError, match="another configuration"):  # a plain DM cannot resume a DP checkpoint
        distill_dm(syn, syn_y, x, y, 3, dp_config(iterations=8, dp_epsilon=None), checkpoint=ckpt, resume=True,
                   progress=False)


def test_cli_dp_dm_records_the_spent_epsilon(tmp_path, capsys):
    out = str(tmp_path / "dpdm")
    args = ["distill", "--init", "noise", "--dp-epsilon", "8", "--ipc", "1", "--iterations", "2", "--eval-epochs", "1",
            "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]
    assert cli.main(args) == 0
    dp = json.load(open(os.path.join(out, "metrics.json")))["dp"]
    assert 0.999 * 8 <= dp["epsilon"] <= 8 + 1e-6 and dp["steps"] == 2 and dp["sample_rate"] == 1.0
    assert "RdpAccountant" in dp["accountant"]
    assert torch.load(os.path.join(out, "synthetic.pt"), weights_only=False)["dp"] == dp
    assert "DP-DM: epsilon" in open(os.path.join(out, "log.txt")).read()
    assert "DP-DM: epsilon 8.000 at delta 1e-05" in capsys.readouterr().out


@pytest.mark.parametrize("args, match", [
    (["--dp-epsilon", "0"], "--dp-epsilon must be positive"),
    (["--dp-epsilon", "-2"], "--dp-epsilon must be positive"),
    (["--dp-epsilon", "4", "--dp-delta", "1.5"], r"--dp-delta must lie in \(0, 1\)"),
    (["--dp-epsilon", "4", "--dp-delta", "0"], r"--dp-delta must lie in \(0, 1\)"),
    (["--dp-epsilon", "4", "--dp-clip", "0"], "--dp-clip must be positive"),
    (["--dp-epsilon", "4", "--dp-sample-rate", "1.5"], "--dp-sample-rate must lie in"),
    (["--dp-epsilon", "4", "--init", "kt"], "--init kt with --dp-epsilon"),
    (["--dp-epsilon", "4", "--init", "real"], "--init real with --dp-epsilon"),
    (["--dp-epsilon", "4", "--method", "dc"], "use it with --method dm"),
    (["--dp-epsilon", "4", "--model", "convnet_bn"], "batch norm mixes the examples"),
])
def test_cli_bad_dp_arguments_give_one_line_and_write_nothing(tmp_path, capsys, args, match):
    out = tmp_path / "r"
    base = ["distill", "--out", str(out), "--iterations", "1", "--quiet"]
    if "--init" not in args:
        base += ["--init", "noise"]
    code = cli.main(base + args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    import re

    assert re.search(match, err), err
    assert not out.exists()


def test_public_init_flag_allows_kt_init_with_dp(tmp_path):
    from kaleido_cuda.lab.pipeline.config import RunConfig

    cfg = RunConfig(init="kt", dm=DMConfig(dp_epsilon=4.0, dp_public_init=True))
    cfg.check()  # no error: the user declared the initial images public


# --- DP-SGD ---------------------------------------------------------------------------------------------

opacus = pytest.importorskip("opacus")


def test_dpsgd_spends_its_budget_as_opacus_accounts_and_is_reproducible():
    from opacus.accountants import RDPAccountant

    from kaleido_cuda.lab.dp.dpsgd import DPSGDConfig, train_dpsgd

    x, y = tiny_classes(20)
    cfg = DPSGDConfig(epsilon=3.0, epochs=3, batch_size=15, width=16, lr=1.0)
    model, report = train_dpsgd(x, y, 3, cfg, seed=0)
    assert 0.95 * 3.0 <= report["epsilon"] <= 3.0 + 1e-6
    accountant = RDPAccountant()
    accountant.history = [(report["noise_multiplier"], report["sample_rate"], report["steps"])]
    assert report["epsilon"] == pytest.approx(accountant.get_epsilon(1e-5), rel=1e-9)
    assert report["sample_rate"] == pytest.approx(15 / 60) and report["steps"] == 3 * 4
    assert not hasattr(model, "_module") and not model.training  # a plain module, Opacus's hooks gone
    again, _ = train_dpsgd(x, y, 3, cfg, seed=0)
    for a, b in zip(model.parameters(), again.parameters()):
        torch.testing.assert_close(a, b, atol=0, rtol=0)


@pytest.mark.parametrize("args, match", [
    (["--epsilon", "0"], "--epsilon must be positive"),
    (["--epsilon", "4", "--delta", "1"], r"--delta must lie in \(0, 1\)"),
    (["--epsilon", "4", "--clip", "-1"], "--clip must be positive"),
    (["--epsilon", "4", "--model", "convnet_bn"], "batch norm"),
])
def test_cli_dpsgd_bad_arguments(tmp_path, capsys, args, match):
    import re

    out = tmp_path / "d"
    code = cli.main(["dpsgd", "--out", str(out), "--quiet"] + args)
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and re.search(match, err), err
    assert not out.exists()


def test_dpsgd_refuses_a_folder_that_holds_another_kind_of_run(tmp_path, capsys):
    (tmp_path / "config.json").write_text(json.dumps({"dataset": "digits", "method": "dm"}))  # a distillation run's
    assert cli.main(["dpsgd", "--epsilon", "8", "--out", str(tmp_path), "--quiet"]) == 2
    assert "holds another kind of run (not DP-SGD)" in capsys.readouterr().err
    assert not (tmp_path / "models").exists()


def test_cli_dpsgd_run_resumes_and_is_audited(tmp_path, capsys, digits_subset):
    out = str(tmp_path / "dpsgd")
    base = ["dpsgd", "--dataset", digits_subset, "--epsilon", "8", "--epochs", "1", "--out", out, "--quiet"]
    assert cli.main(base + ["--models", "1"]) == 0
    first = json.load(open(os.path.join(out, "metrics.json")))["accuracy"]["runs"][0]
    stamp = os.path.getmtime(os.path.join(out, "models", "seed_0.pt"))
    assert cli.main(base + ["--models", "2"]) == 0  # reuses model 0, trains model 1
    m = json.load(open(os.path.join(out, "metrics.json")))
    assert m["accuracy"]["runs"][0] == first and len(m["accuracy"]["runs"]) == 2
    assert os.path.getmtime(os.path.join(out, "models", "seed_0.pt")) == stamp
    assert m["dp"]["epsilon"] <= 8 + 1e-6 and "RDPAccountant" in m["dp"]["accountant"]
    assert cli.main(base + ["--models", "2", "--lr", "1.0"]) == 2  # other options: refused
    assert "other options" in capsys.readouterr().err
    assert cli.main(["audit", out, "--attacks", "data,model", "--quiet"]) == 2
    assert "do not apply" in capsys.readouterr().err
    assert cli.main(["audit", out, "--attacks", "model,lira", "--shadows", "2", "--models", "1", "--quiet"]) == 0
    report = json.load(open(os.path.join(out, "audit.json")))
    assert report["target_accuracy"] == pytest.approx([m["accuracy"]["runs"][0]])  # the run's own model of seed 0
    assert report["canaries"] == report["members"] == 400  # every member is trained on (40 per class)
    assert set(report["attacks"]) >= {"model_neg_loss", "model_logit_conf", "lira_online", "lira_offline"}
    assert "membership" in json.load(open(os.path.join(out, "metrics.json")))
    assert os.path.exists(os.path.join(out, "shadows", "shadow_1.pt"))
