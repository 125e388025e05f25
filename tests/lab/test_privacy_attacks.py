"""Membership-inference building blocks: the figures (AUC, TPR at low FPR), the empirical epsilon
bound, data and model attack scores, and LiRA's Gaussian tests, on inputs whose answer is known."""
import math
import os

import numpy as np
import pytest
import torch

from kaleido_cuda.lab.privacy import attack_metrics, data_attack_scores, epsilon_lower_bound, lira_scores, model_scores
from kaleido_cuda.lab.privacy.epsilon import clopper_pearson_upper, epsilon_at

pytest.importorskip("sklearn")
pytest.importorskip("scipy")


def test_metrics_of_a_perfect_and_of_a_blind_attack():
    rng = np.random.default_rng(0)
    perfect = attack_metrics(rng.normal(10, 1, 500), rng.normal(0, 1, 2000))
    assert perfect["auc"] == 1.0 and perfect["tpr_at_1pct_fpr"] == 1.0 and perfect["tpr_at_0.1pct_fpr"] == 1.0
    blind = attack_metrics(rng.normal(0, 1, 5000), rng.normal(0, 1, 5000))
    assert abs(blind["auc"] - 0.5) < 0.02
    assert blind["tpr_at_1pct_fpr"] < 0.03 and blind["resolved_0.1pct"]


def test_tpr_at_low_fpr_by_hand():
    # 200 non-members scored 0..199; members: 3 above every non-member, 1 between the top two
    # non-members, the rest low. At FPR <= 1% (2 of 200 false positives) the threshold may pass
    # the top two non-members: 4 of 10 members are caught; at FPR 0.1% (unresolved with 200
    # non-members) only the 3 above all of them.
    nonmembers = np.arange(200.0)
    members = np.array([500, 400, 300, 198.5] + [-1.0] * 6)
    m = attack_metrics(members, nonmembers)
    assert m["tpr_at_1pct_fpr"] == pytest.approx(0.4)
    assert m["tpr_at_0.1pct_fpr"] == pytest.approx(0.3)
    assert m["resolved_1pct"] and not m["resolved_0.1pct"]
    assert m["members"] == 10 and m["nonmembers"] == 200


def test_metrics_refuse_empty_or_non_finite_scores():
    with pytest.raises(ValueError, match="no member"):
        attack_metrics([], [1.0])
    with pytest.raises(ValueError, match="finite"):
        attack_metrics([1.0, float("nan")], [0.0])


def test_clopper_pearson_and_the_epsilon_of_known_rates():
    assert clopper_pearson_upper(0, 100) == pytest.approx(1 - 0.025 ** (1 / 100), rel=1e-9)
    assert clopper_pearson_upper(100, 100) == 1.0
    # A test with FPR 1% and FNR 50% proves log(0.5 / 0.01) = log 50 (delta -> 0).
    assert epsilon_at(0.01, 0.5, 0.0) == pytest.approx(math.log(50))
    assert epsilon_at(0.5, 0.5, 1e-5) == 0.0


def test_epsilon_bound_large_for_a_perfect_attack_and_zero_for_a_blind_one():
    rng = np.random.default_rng(1)
    strong = epsilon_lower_bound(rng.normal(10, 1, 1000), rng.normal(0, 1, 1000))
    # 500 held-out of each, no error: the bound is log((1 - fnr_hi) / fpr_hi), fpr_hi = CP(0, 500).
    cp = clopper_pearson_upper(0, 500)
    assert strong["epsilon_lb"] == pytest.approx(math.log((1 - 1e-5 - cp) / cp), rel=1e-6)
    blind = epsilon_lower_bound(rng.normal(0, 1, 1000), rng.normal(0, 1, 1000))
    assert blind["epsilon_lb"] < 0.3


def test_epsilon_threshold_is_chosen_on_the_other_half():
    # Members and non-members from one distribution: choosing the best threshold on the same
    # examples finds a spurious gap, the held-out half does not confirm it.
    rng = np.random.default_rng(2)
    results = [epsilon_lower_bound(rng.normal(0, 1, 40), rng.normal(0, 1, 40), seed=s)["epsilon_lb"] for s in range(20)]
    assert np.mean(results) < 0.2


def test_audit_figures_bound_epsilon_on_all_members_when_there_are_no_canaries():
    # A set made without canaries (noise init, DP-DM) still gets a bound, from all members.
    from kaleido_cuda.lab.privacy.audit import _figures

    g = torch.Generator().manual_seed(5)
    members, nonmembers = torch.randn(400, generator=g).double() + 6, torch.randn(400, generator=g).double()
    f = _figures(members, nonmembers, torch.zeros(0, dtype=torch.int64), 1e-5)
    assert f["canaries"] is None and f["epsilon"] is None and f["epsilon_all"]["epsilon_lb"] > 3
    blind = _figures(torch.randn(400, generator=g).double(), nonmembers, torch.arange(10), 1e-5)
    assert blind["epsilon_all"]["epsilon_lb"] < 0.3 and blind["epsilon"] is not None


def test_data_attack_finds_copies():
    g = torch.Generator().manual_seed(0)
    candidates = torch.rand(12, 1, 16, 16, generator=g)
    synthetic = torch.cat([candidates[:3], torch.rand(5, 1, 16, 16, generator=g)])
    scores = data_attack_scores(candidates, synthetic)
    assert torch.allclose(scores["ssim"][:3], torch.ones(3), atol=1e-5)
    assert torch.all(scores["neg_l2"][:3] == 0)
    assert scores["ssim"][3:].max() < 0.5 and scores["neg_l2"][3:].max() < -1
    with pytest.raises(ValueError, match="one shape"):
        data_attack_scores(candidates, torch.rand(2, 3, 16, 16))


def test_model_scores_match_their_definitions():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 4))
    x, y = torch.randn(9, 1, 4, 4), torch.randint(0, 4, (9,))
    s = model_scores(model, x, y, batch_size=4)
    p = model(x).double().softmax(1).gather(1, y[:, None]).squeeze(1)
    torch.testing.assert_close(s["logit_conf"].double(), torch.log(p / (1 - p)), atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(s["neg_loss"].double(), torch.log(p), atol=1e-5, rtol=1e-5)


def test_model_scores_stay_finite_when_confidence_rounds_to_one():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(4, 2))
    with torch.no_grad():
        model[1].weight.zero_()
        model[1].bias.copy_(torch.tensor([80.0, -80.0]))
    s = model_scores(model, torch.zeros(2, 1, 2, 2), torch.tensor([0, 1]))
    assert torch.isfinite(s["logit_conf"]).all()
    assert float(s["logit_conf"][0]) == pytest.approx(160.0) and float(s["logit_conf"][1]) == pytest.approx(-160.0)


def _shadow_world(m=400, k=16, shift=2.0, seed=0):
    """Candidates with their own difficulty; training on one raises its statistic by `shift`.
    Shadows each train on a random half; the target trains on the first half of the candidates."""
    rng = np.random.default_rng(seed)
    difficulty = rng.normal(0, 3, m)
    in_mask = rng.random((k, m)) < 0.5
    shadow = difficulty + shift * in_mask + rng.normal(0, 0.5, (k, m))
    member = np.arange(m) < m // 2
    target = difficulty + shift * member + rng.normal(0, 0.5, m)
    return target, shadow, in_mask, member


@pytest.mark.parametrize("online", [True, False])
def test_lira_beats_a_global_threshold_when_examples_differ(online):
    target, shadow, in_mask, member = _shadow_world()
    lira = attack_metrics(*(lambda s: (s[member], s[~member]))(lira_scores(target, shadow, in_mask, online=online)))
    threshold = attack_metrics(target[member], target[~member])  # the same statistic, no calibration
    assert lira["auc"] > 0.95 and threshold["auc"] < 0.75
    assert lira["tpr_at_1pct_fpr"] > 0.5 > threshold["tpr_at_1pct_fpr"]


def test_lira_refuses_candidates_without_shadows_and_bad_shapes():
    target, shadow, in_mask, _ = _shadow_world(m=10, k=4)
    in_mask[:, 0] = True  # candidate 0 is in every shadow: no 'out' fit
    with pytest.raises(ValueError, match="no 'out' shadow"):
        lira_scores(target, shadow, in_mask)
    with pytest.raises(ValueError, match="shape"):
        lira_scores(target[:5], shadow, in_mask)


def test_membership_split_refuses_indices_outside_the_training_split():
    from types import SimpleNamespace

    from kaleido_cuda.lab.privacy import membership_split

    ds = SimpleNamespace(name="toy", train_images=torch.zeros(5, 1, 2, 2), train_labels=torch.arange(5),
                         test_images=torch.ones(3, 1, 2, 2), test_labels=torch.arange(3))
    split = membership_split(ds, [4, 0])
    assert split.canary_labels.tolist() == [4, 0] and len(split.nonmember_images) == 3
    assert membership_split(ds, []).canaries.numel() == 0
    with pytest.raises(ValueError, match="must lie in"):
        membership_split(ds, [5])
    with pytest.raises(ValueError, match="repeat"):
        membership_split(ds, [1, 1])


def test_audit_of_a_real_init_run_finds_the_canaries(tmp_path, capsys):
    """A run from real images, distilled one step: its images are near-copies of the canaries,
    and the data attack says so; the outputs are written."""
    import json
    import os

    from kaleido_cuda.lab import cli

    out = str(tmp_path / "real")
    assert cli.main(["distill", "--ipc", "2", "--init", "real", "--iterations", "1", "--batch-real", "8",
                     "--eval-epochs", "1", "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]) == 0
    assert cli.main(["audit", out, "--models", "1", "--epochs", "2", "--quiet"]) == 0
    report = json.load(open(os.path.join(out, "audit.json")))
    assert report["canaries"] == 20 and report["members"] == 1257 and report["nonmembers"] == 540
    assert report["attacks"]["data_ssim"]["canaries"]["auc"] > 0.95
    assert report["attacks"]["data_neg_l2"]["canaries"]["tpr_at_1pct_fpr"] > 0.9
    assert report["attacks"]["data_ssim"]["all"]["auc"] < 0.6  # 20 of 1,257 members are in the set
    assert set(report["attacks"]) == {"data_ssim", "data_neg_l2", "model_neg_loss", "model_logit_conf"}
    assert report["epsilon_lb"]["epsilon_lb"] > 1
    assert "membership" in json.load(open(os.path.join(out, "metrics.json")))
    assert os.path.getsize(os.path.join(out, "audit_roc.png")) > 1000
    assert "epsilon >=" in capsys.readouterr().out
    # An audit whose targets are the evaluation's models (same seed, same epochs) reads them back.
    evaluated = json.load(open(os.path.join(out, "metrics.json")))["accuracy"]["runs"]
    saved = sorted(os.listdir(os.path.join(out, "models")))
    assert len(saved) == 2 and all(name.startswith("seed_0_") for name in saved)  # the 1- and 2-epoch models
    stamps = [os.path.getmtime(os.path.join(out, "models", name)) for name in saved]
    assert cli.main(["audit", out, "--attacks", "model", "--models", "1", "--epochs", "1", "--quiet"]) == 0
    assert json.load(open(os.path.join(out, "audit.json")))["target_accuracy"] == pytest.approx(evaluated)
    assert [os.path.getmtime(os.path.join(out, "models", name)) for name in saved] == stamps


def test_audit_bad_input_gives_one_line_and_exit_2(tmp_path, capsys):
    from kaleido_cuda.lab import cli

    assert cli.main(["audit", str(tmp_path), "--quiet"]) == 2
    assert "not a finished run" in capsys.readouterr().err
    assert cli.main(["audit", str(tmp_path), "--attacks", "nope", "--quiet"]) == 2
    assert "unknown attack" in capsys.readouterr().err
    assert not any(p.name.startswith("audit") for p in tmp_path.iterdir())


def _digits_copies(per_class=2):
    from kaleido_cuda.lab.train.data import load_dataset
    from kaleido_cuda.init import select_real

    ds = load_dataset("digits")
    idx = select_real(ds.train_labels, per_class, ds.num_classes, seed=4)
    return ds, ds.train_images[idx], ds.train_labels[idx]


def test_audit_of_foreign_sets_in_dc_and_mtt_formats(tmp_path, capsys):
    import json
    import os

    from kaleido_cuda.lab import cli

    ds, images, labels = _digits_copies()
    noise = torch.randn_like(images)
    torch.save([[noise, labels], [images, labels]], tmp_path / "res_DM_digits.pt")  # DC-benchmark data_save
    assert cli.main(["audit", "--synthetic", str(tmp_path / "res_DM_digits.pt"), "--dataset", "digits",
                     "--attacks", "data", "--out", str(tmp_path / "dc"), "--quiet"]) == 0
    report = json.load(open(tmp_path / "dc" / "audit.json"))
    assert report["canaries"] == 0 and report["epsilon_lb"] is None and "no canaries" in capsys.readouterr().out
    # The last experiment (the default) holds 20 exact training images: the L2 attack flags all of
    # them before any non-member.
    assert report["attacks"]["data_neg_l2"]["all"]["tpr_at_0.1pct_fpr"] >= 20 / 1257
    mtt = tmp_path / "mtt"
    mtt.mkdir()
    torch.save(ds.denormalise(images), mtt / "images_best.pt")
    torch.save(labels, mtt / "labels_best.pt")
    assert cli.main(["audit", "--synthetic", str(mtt / "images_best.pt"), "--dataset", "digits", "--pixel-range", "01",
                     "--attacks", "data", "--quiet"]) == 0
    assert os.path.exists(mtt / "audit_roc.png")


@pytest.mark.parametrize("make, match", [
    (lambda d, l: {"images": d.repeat(1, 3, 1, 1), "labels": l}, "but digits images are"),
    (lambda d, l: {"images": d, "labels": l + 10}, "classes"),
    (lambda d, l: {"pixels": d}, "a dict without"),
    (lambda d, l: d, "labels_best.pt"),
])
def test_foreign_sets_that_do_not_fit_give_one_line_and_exit_2(tmp_path, capsys, make, match):
    from kaleido_cuda.lab import cli

    _, images, labels = _digits_copies(1)
    torch.save(make(images, labels), tmp_path / "set.pt")
    assert cli.main(["audit", "--synthetic", str(tmp_path / "set.pt"), "--dataset", "digits", "--quiet"]) == 2
    err = capsys.readouterr().err
    assert match in err and len(err.strip().splitlines()) == 1
    assert not any(p.name.startswith("audit") for p in tmp_path.iterdir())


def test_lira_with_shadow_pipelines_is_cached_resumable_and_refuses_other_options(tmp_path, capsys):
    import json
    import os

    from kaleido_cuda.lab import cli

    out = str(tmp_path / "run")
    assert cli.main(["distill", "--ipc", "1", "--iterations", "1", "--batch-real", "8", "--eval-epochs", "1",
                     "--eval-runs", "1", "--no-baselines", "--out", out, "--quiet"]) == 0
    lira = ["audit", out, "--attacks", "lira", "--models", "1", "--epochs", "1", "--shadow-iterations", "1",
            "--shadow-epochs", "1", "--quiet"]
    assert cli.main(lira + ["--shadows", "2"]) == 0
    report = json.load(open(os.path.join(out, "audit.json")))
    assert set(report["attacks"]) == {"lira_online", "lira_offline"}
    first = os.path.getmtime(os.path.join(out, "shadows", "shadow_0.pt"))
    assert cli.main(lira + ["--shadows", "3"]) == 0  # reuses shadows 0 and 1, adds shadow 2
    assert os.path.getmtime(os.path.join(out, "shadows", "shadow_0.pt")) == first
    assert os.path.exists(os.path.join(out, "shadows", "shadow_2.pt"))
    masks = [torch.load(os.path.join(out, "shadows", f"shadow_{s}.pt"))["in_mask"] for s in range(3)]
    # Shadows 0 and 1 train on complementary halves; shadow 2 starts the next pair.
    assert torch.equal(masks[0], ~masks[1]) and int(masks[0].sum()) == (1257 + 540) // 2
    assert not torch.equal(masks[2], masks[0]) and int(masks[2].sum()) == (1257 + 540) // 2
    capsys.readouterr()
    other_epochs = [a if i != lira.index("--shadow-epochs") + 1 else "2" for i, a in enumerate(lira)]
    assert cli.main(other_epochs + ["--shadows", "2"]) == 2
    assert "other options" in capsys.readouterr().err
    assert cli.main(lira + ["--shadows", "1"]) == 2
    assert "at least 2 shadow" in capsys.readouterr().err


def test_full_training_set_reference_audits_models_trained_on_every_member(tmp_path, digits_subset):
    """The reference audit: every member is a canary (the models train on each as itself), LiRA's
    shadows train on halves of the pool, and the data attacks are refused (nothing is released
    but the training images)."""
    from kaleido_cuda.lab.privacy.audit import AuditConfig
    from kaleido_cuda.lab.pipeline.references import audit_full_training_set

    cfg = AuditConfig(attacks=("model", "lira"), models=1, shadows=2, epochs=3)
    report = audit_full_training_set(str(tmp_path / "full"), digits_subset, cfg, progress=False)
    assert report["canaries"] == report["members"] == 400  # 40 training images per class
    assert {"lira_online", "lira_offline", "model_logit_conf"} <= set(report["attacks"])
    assert len(report["target_accuracy"]) == 1 and 0.2 < report["target_accuracy"][0] <= 1  # chance: 0.1
    assert len([f for f in os.listdir(tmp_path / "full" / "shadows") if f.startswith("shadow_")]) == 2
    with pytest.raises(ValueError, match="data attacks do not apply"):
        audit_full_training_set(str(tmp_path / "x"), "digits", AuditConfig(attacks=("data",)), progress=False)
    assert not os.path.exists(tmp_path / "x")


# --- min-LPIPS (the paper's visual-privacy metric) --------------------------------------------------

def _alexnet_weights(path):
    """A randomly initialised torchvision AlexNet saved as its ImageNet weights would be."""
    import torchvision

    torch.manual_seed(0)
    torch.save(torchvision.models.alexnet(weights=None).state_dict(), path)
    return str(path)


def test_min_lpips_scores_a_copy_zero_and_orders_by_distance(tmp_path):
    pytest.importorskip("lpips")
    from kaleido_cuda.lab.privacy.lpips_distance import load_metric, min_lpips

    metric = load_metric(_alexnet_weights(tmp_path / "alexnet.pth"))
    g = torch.Generator().manual_seed(1)
    train = torch.rand(6, 1, 32, 32, generator=g)
    near = (train[2:3] + 0.05 * torch.randn(1, 1, 32, 32, generator=g)).clamp(0, 1)
    far = torch.rand(1, 1, 32, 32, generator=g)
    d = min_lpips(metric, torch.cat([train[4:5], near, far]), train, batch=4)
    assert float(d[0]) == pytest.approx(0.0, abs=1e-6) and 0 < float(d[1]) < float(d[2])


def test_lpips_report_is_skipped_in_one_line_without_weights_and_bad_files_are_refused(tmp_path, monkeypatch):
    pytest.importorskip("lpips")
    from kaleido_cuda.lab.privacy.lpips_distance import find_weights, load_metric, lpips_report

    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    x = torch.rand(3, 1, 16, 16)
    report = lpips_report(x, x, x)
    assert list(report) == ["lpips"] and report["lpips"].startswith("skipped: no AlexNet weights in the torch hub cache")
    with pytest.raises(ValueError, match="no such file"):
        find_weights(str(tmp_path / "missing.pth"))
    torch.save({"fc.weight": torch.zeros(2, 2)}, tmp_path / "other.pth")
    with pytest.raises(ValueError, match="does not hold torchvision AlexNet weights"):
        load_metric(str(tmp_path / "other.pth"))
    (tmp_path / "text.pth").write_text("not weights")
    with pytest.raises(ValueError, match="is not a torch weights file"):
        load_metric(str(tmp_path / "text.pth"))
    full = lpips_report(x, x, x, weights=_alexnet_weights(tmp_path / "alexnet.pth"))
    assert full["min_lpips_mean"] == pytest.approx(0.0, abs=1e-6) and full["heldout_min_lpips_mean"] == pytest.approx(0.0, abs=1e-6)


def test_cli_refuses_a_wrong_lpips_weights_file_before_any_work(tmp_path):
    pytest.importorskip("lpips")
    from kaleido_cuda.lab import cli

    out = tmp_path / "run"
    args = ["distill", "--ipc", "1", "--iterations", "0", "--out", str(out), "--quiet", "--lpips-weights"]
    assert cli.main(args + [str(tmp_path / "missing.pth")]) == 2
    assert not out.exists()
