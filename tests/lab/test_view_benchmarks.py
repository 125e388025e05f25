"""The views benchmarks run end to end: benchmarks/bench_views.py at a tiny size, and
benchmarks/kt_frontier.py's plan (priority order) and per-point summary."""
import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))


def test_bench_views_tiny_writes_its_results(tmp_path):
    done = subprocess.run([sys.executable, os.path.join(ROOT, "benchmarks", "bench_views.py"), "--tiny",
                           "--out", str(tmp_path)], capture_output=True, text=True, cwd="/")
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.load(open(tmp_path / "bench_views_cpu.json"))
    (row,) = result["rows"]
    assert row["views"] == 3 and len(row["fwd_bwd_ms"]) == 3 and all(t > 0 for t in row["fwd_bwd_ms"].values())
    assert "| (4, 3, 8, 8) | 3 |" in (tmp_path / "bench_views_cpu.md").read_text()


def test_kt_frontier_plan_puts_every_points_first_seed_first():
    import kt_frontier

    order = kt_frontier.plan([0, 1, 2])
    points = list(kt_frontier.POINTS)
    assert order[:len(points)] == [(p, 0) for p in points]
    tail = [*kt_frontier.ABLATION, *kt_frontier.HIGH_IPC]
    assert len(order) == 3 * len(points) + len(tail) == 24
    assert order[-len(tail):] == [(a, 0) for a in tail]


def test_kt_frontier_summary_averages_seeds():
    import kt_frontier

    rows = [dict(name="kt_v3", accuracy=0.90, nn_ssim=0.5, canary_auc_max=0.5, heldout_nn_ssim=0.85),
            dict(name="kt_v3", accuracy=0.92, nn_ssim=0.7, canary_auc_max=0.6, heldout_nn_ssim=0.85),
            dict(name="noise", accuracy=0.80, nn_ssim=0.1, canary_auc_max=None, heldout_nn_ssim=0.85),
            dict(name="real_ipc50", ipc=50, accuracy=0.98, nn_ssim=0.99, canary_auc_max=1.0, heldout_nn_ssim=0.85)]
    kt, noise, high = kt_frontier.summary(rows)
    assert kt["seeds"] == 2 and kt["accuracy_mean"] == pytest.approx(91.0) and kt["nn_ssim"] == pytest.approx(0.6)
    assert kt["accuracy_std"] == pytest.approx(1.4142, abs=1e-3) and kt["canary_auc_max"] == pytest.approx(0.55)
    assert noise["canary_auc_max"] is None and noise["accuracy_std"] == 0.0
    table = kt_frontier.markdown(
        {"machine": {"commit": "x", "torch": "t", "cpu": "c", "torch_threads": 2, "date": "d"}, "command": "c",
         "iterations": 1, "eval_epochs": 1, "summary": [kt, noise, high]})
    assert "| noise | 10 | 1 | 80.0 +- 0.0 | 0.100 | - |" in table
    assert "| real_ipc50 | 50 | 1 | 98.0 +- 0.0 | 0.990 | 1.000 |" in table


def test_label_stability_is_the_accuracy_on_kt_images_and_strength_zero_changes_nothing():
    import torch

    import kaleido_cuda as kc
    from conftest import tiny_classes
    from kaleido_cuda.lab.train.evaluate import EvalConfig, accuracy, train_model
    from kaleido_cuda.lab.train.stability import perturbed_accuracy

    x, y = tiny_classes(n_per_class=8, classes=3, size=16)
    model = train_model(x, y, 3, EvalConfig(epochs=5, width=16, augment=False), seed=0)
    clean = accuracy(model, x, y)
    assert perturbed_accuracy(model, x, y, strength=0.0, views=3) == clean
    p = kc.sample_params(len(x), "kt", size=16, seed=4, views=3, families="warp,fold")
    want = accuracy(model, kc.kaleidoscope(x, p), y)
    assert perturbed_accuracy(model, x, y, views=3, families="warp,fold", seed=4) == want


def test_kt_frontier_keeps_committed_rows_of_the_same_budget(tmp_path):
    import argparse

    import kt_frontier

    path = tmp_path / "kt_frontier.json"
    path.write_text(json.dumps({"iterations": 100, "eval_epochs": 300, "rows": [{"name": "real", "seed": 0}]}))
    same = argparse.Namespace(iterations=100, eval_epochs=300)
    other = argparse.Namespace(iterations=50, eval_epochs=300)
    assert kt_frontier.committed_rows(str(path), same) == [{"name": "real", "seed": 0}]
    assert kt_frontier.committed_rows(str(path), other) == []
    assert kt_frontier.committed_rows(str(tmp_path / "none.json"), same) == []


def test_methods_table_keeps_committed_rows_and_says_where_each_was_measured(tmp_path):
    import argparse

    import methods_table

    machine = {"commit": "abc1234", "cpu": "Some CPU", "date": "2026-12-02T00:00:00Z"}
    path = tmp_path / "methods_table.json"
    path.write_text(json.dumps({"iterations": 100, "eval_epochs": 300, "machine": machine,
                                "rows": [{"name": "datm_kt_ipc10"}]}))
    rows = methods_table.earlier_rows(str(path), argparse.Namespace(iterations=100, eval_epochs=300))
    assert rows == [{"name": "datm_kt_ipc10", "measured": machine, "label_init": "images"}]
    assert methods_table.earlier_rows(str(path), argparse.Namespace(iterations=50, eval_epochs=300)) == []
    # Every DATM point names where its labels start; the committed KT row keeps DATM's rule.
    assert all((p[3] is not None) == (p[0] == "datm") for p in methods_table.POINTS.values())
    assert methods_table.POINTS["datm_kt_ipc10"][3] == "images"
