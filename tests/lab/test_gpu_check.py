"""scripts/gpu_check.sh, which a GPU machine lent for minutes runs once: its plan fits the call,
and every stage still runs (on the CPU, at tiny sizes), so the script cannot rot between GPUs."""
import csv
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "scripts" / "gpu_check.sh"
STAGES = ["build", "cuda_tests", "bench_op", "bench_augment", "bench_steps", "sanitizer"]
MAX_TOTAL_S = 540  # the device tool allows 10 minutes per call; the check keeps a minute for its start


def _run(*args, env=None, timeout=600):
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True, timeout=timeout,
                          env={**os.environ, "PYTHON": sys.executable, **(env or {})})


def _summary(out: Path) -> dict:
    with open(out / "summary.tsv") as f:
        return {row["stage"]: row for row in csv.DictReader(f, delimiter="\t")}


def test_the_plan_lists_the_stages_in_priority_order_within_the_call():
    run = _run("--plan")
    assert run.returncode == 0, run.stderr
    lines = run.stdout.strip().splitlines()
    assert [line.split()[0] for line in lines[:-1]] == STAGES
    budgets = [int(line.split()[1]) for line in lines[:-1]]
    assert lines[-1] == f"total {sum(budgets)} s" and sum(budgets) <= MAX_TOTAL_S


@pytest.fixture(scope="module")
def dry_run(tmp_path_factory):
    # bench_augment gets 1 s: a stage over its budget is stopped and recorded, and the stages after it run.
    out = tmp_path_factory.mktemp("gpu_check")
    run = _run("--dry-run", env={"OUT": str(out), "GPU_CHECK_BUDGET_bench_augment": "1"})
    return run, out


def test_a_dry_run_runs_every_stage_and_returns_their_files(dry_run):
    run, out = dry_run
    summary = _summary(out)
    assert list(summary) == STAGES, run.stdout[-2000:]
    assert {s: summary[s]["status"] for s in STAGES if s != "bench_augment"} == {s: "ok" for s in STAGES
                                                                                 if s != "bench_augment"}
    with tarfile.open(out / "results.tar") as tar:
        names = set(tar.getnames())
    for name in ("build/build_info.json", "cuda_tests/collected.txt", "bench_op/bench_op_cpu.json",
                 "bench_op/gpu_model_vs_measured.md", "bench_steps/bench_steps_cpu.json"):
        assert name in names, sorted(names)
    assert "CUDA test cases collected" in (out / "gpu_check.log").read_text()
    assert len(list(out.iterdir())) <= 8  # what the device tool returns of $OUT


def test_a_stage_over_its_budget_is_stopped_and_the_rest_still_run(dry_run):
    run, out = dry_run
    summary = _summary(out)
    assert summary["bench_augment"]["status"] == "timeout"
    assert summary["bench_steps"]["status"] == "ok" and summary["sanitizer"]["status"] == "ok"
    assert run.returncode == 1  # a stage did not finish: the check says so
