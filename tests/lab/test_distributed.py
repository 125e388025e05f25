"""torchrun: DM sharded by class gives the same synthetic set as one process, resumes under another
number of ranks, and bad launches give one clear error (gloo on the CPU, one thread per process)."""
import json
import os
import shutil
import subprocess
import sys
import tempfile

import pytest
import torch

from kaleido_cuda.lab import cli
from kaleido_cuda.lab.distill import DMConfig, distill_dm
from kaleido_cuda.lab.distributed import World

# Every subprocess runs outside the source tree, so that it imports the installed package (with its
# compiled op), as pytest does, not the source folder.
_OUTSIDE = tempfile.gettempdir()
TORCHRUN = shutil.which("torchrun") or os.path.join(os.path.dirname(sys.executable), "torchrun")
pytestmark = pytest.mark.skipif(not os.path.exists(TORCHRUN), reason="torchrun is not installed")

# Small and quick: IPC 10 (the case) on a subset of the digits (40 training and 20 test images
# per class, conftest.digits_subset), a few DM iterations on real batches of at most 32 per class,
# one evaluation model of one epoch. What every test compares (ranks against one process) is the
# same for any data size; the time is not.
SMALL = ["--ipc", "10", "--batch-real", "32", "--eval-runs", "1", "--eval-epochs", "1", "--no-baselines", "--quiet",
         "--checkpoint-every", "0"]
DATA = []  # ["--dataset", the digits subset], set once for the module by _on_the_digits_subset


@pytest.fixture(autouse=True, scope="module")
def _on_the_digits_subset(digits_subset):
    DATA[:] = ["--dataset", digits_subset]


def _small():
    return [*DATA, *SMALL]


def _env():
    env = dict(os.environ, OMP_NUM_THREADS="1")  # the same threads per process in every launch
    for key in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"):
        env.pop(key, None)
    return env


def _launcher(ranks):
    """How to start a Python program as one process, or as `ranks` ranks under torchrun."""
    if ranks == 1:
        return [sys.executable]
    return [TORCHRUN, "--standalone", "--nproc-per-node", str(ranks)]


def _run(cmd, timeout=600):
    return subprocess.run(cmd, env=_env(), capture_output=True, text=True, timeout=timeout, cwd=_OUTSIDE)


def _kaleido(ranks, args):
    """`kaleido ARGS` as one process or under torchrun."""
    return _run(_launcher(ranks) + ["-m", "kaleido_cuda", *args])


def _distill(out, ranks, iterations, extra=()):
    return _kaleido(ranks, ["distill", "--out", str(out), "--iterations", str(iterations), *_small(), *extra])


def _images(out):
    return torch.load(os.path.join(out, "synthetic.pt"), map_location="cpu", weights_only=False)["images"]


def test_dm_on_two_ranks_equals_one_process_and_resumes_on_another_count(tmp_path):
    one = _distill(tmp_path / "one", 1, 4)
    assert one.returncode == 0, one.stderr[-2000:]
    # Two ranks for 2 iterations, then the rest in one process from the two-rank checkpoint.
    two = _distill(tmp_path / "two", 2, 2)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "torchrun: 2 ranks" in open(tmp_path / "two" / "log.txt").read()
    resumed = _distill(tmp_path / "two", 1, 4, extra=["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.equal(_images(tmp_path / "one"), _images(tmp_path / "two"))
    # And the other way: one process for 2 iterations, two ranks for the rest.
    first = _distill(tmp_path / "three", 1, 2)
    assert first.returncode == 0, first.stderr[-2000:]
    rest = _distill(tmp_path / "three", 2, 4, extra=["--resume"])
    assert rest.returncode == 0, rest.stderr[-2000:]
    assert torch.equal(_images(tmp_path / "one"), _images(tmp_path / "three"))


def test_dp_dm_on_two_ranks_equals_one_process_with_the_same_accounting(tmp_path):
    # Each class's Poisson batch and noise come from its own keyed generator and every rank finds the
    # same clip norm and steps the same accountant, so the private set does not depend on the ranks.
    dp = ["--init", "noise", "--dp-epsilon", "8"]
    one, two = (_distill(tmp_path / name, ranks, 3, extra=dp) for name, ranks in (("one", 1), ("two", 2)))
    assert one.returncode == 0 and two.returncode == 0, (one.stderr + two.stderr)[-2000:]
    assert torch.equal(_images(tmp_path / "one"), _images(tmp_path / "two"))
    reports = [json.load(open(tmp_path / name / "metrics.json"))["dp"] for name in ("one", "two")]
    assert reports[0] == reports[1] and reports[0]["steps"] == 3


def test_evaluation_models_split_across_ranks_give_the_same_accuracies(tmp_path):
    # One distilled set, then `kaleido eval` with 3 models and the baselines, by 1 process and by 2 ranks.
    made = _distill(tmp_path / "run", 1, 1, extra=["--full-epochs", "1"])
    assert made.returncode == 0, made.stderr[-2000:]
    results = []
    for ranks in (1, 2):
        run = _kaleido(ranks, ["eval", str(tmp_path / "run"), "--eval-runs", "3", "--eval-epochs", "2", "--quiet"])
        assert run.returncode == 0, run.stderr[-2000:]
        metrics = json.load(open(tmp_path / "run" / "metrics.json"))
        results.append((metrics["accuracy"]["runs"], metrics["baselines"]))
    assert len(results[0][0]) == 3 and results[0] == results[1]


def test_ranks_launched_with_different_options_stop_with_one_clear_error(tmp_path):
    script = tmp_path / "launch.py"
    # Rank 1 gets another seed: what a hand-edited per-node command could do.
    script.write_text(
        "import os, sys\n"
        "from kaleido_cuda.lab.cli import main\n"
        f"args = ['distill', '--out', {str(tmp_path / 'r')!r}, '--iterations', '1'] + {_small()!r}\n"
        "args += ['--seed', '1'] if os.environ['RANK'] == '1' else []\n"
        "sys.exit(main(args))\n")
    run = _run(_launcher(2) + [str(script)], timeout=300)
    assert run.returncode != 0
    assert "were launched with other options than rank 0" in run.stderr
    assert not os.path.exists(tmp_path / "r" / "synthetic.pt")


def test_more_ranks_than_classes_is_refused(monkeypatch):
    import kaleido_cuda.lab.distill.dm as dm

    monkeypatch.setattr(dm, "current_world", lambda: World(rank=0, size=3))
    x = torch.randn(4, 1, 8, 8)
    y = torch.tensor([0, 0, 1, 1])
    with pytest.raises(ValueError, match="3 ranks but only 2 classes"):
        distill_dm(x[::2].clone(), y[::2].clone(), x, y, 2, DMConfig(iterations=1), progress=False)


def test_commands_not_sharded_refuse_to_run_under_torchrun(monkeypatch, capsys, tmp_path):
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert cli.main(["quickstart", "--out", str(tmp_path)]) == 2
    assert "only `kaleido distill` (DM, DC), `buffer`, `eval` and `audit` run under torchrun" in \
        capsys.readouterr().err


@pytest.mark.parametrize("size", [1, 2, 3, 4, 7])
def test_classes_are_split_into_contiguous_balanced_blocks(size):
    for keys in range(size, 13):
        owners = [World(rank=0, size=size).owner(k, keys) for k in range(keys)]
        assert owners == sorted(owners) and set(owners) == set(range(size))
        counts = [owners.count(r) for r in range(size)]
        assert max(counts) - min(counts) <= 1
        for r in range(size):
            assert World(rank=r, size=size).owned(keys) == [k for k in range(keys) if owners[k] == r]


_DC_SCRIPT = """
import sys, torch
from kaleido_cuda.lab.distill import DCConfig, distill_dc
from kaleido_cuda.lab.distributed import close_world, init_world
world = init_world('cpu')
g = torch.Generator().manual_seed(0)
x = torch.randn(60, 1, 8, 8, generator=g)
y = torch.arange(60) % 3
syn_rows = torch.cat([torch.nonzero(y == c).flatten()[:2] for c in range(3)])
cfg = DCConfig(iterations=2, width=8, outer_loop=3, inner_loop=2, batch_real=8, batch_train=4,
               checkpoint_every_s=0)
images, history = distill_dc(x[syn_rows], y[syn_rows], x, y, 3, cfg, progress=False)
if world.main:
    torch.save({"images": images, "losses": history.losses}, sys.argv[1])
close_world()
"""


def test_dc_on_two_ranks_equals_one_process(tmp_path):
    # 3 matching rounds with network training between them: the rows each rank owns are gathered
    # before every training round, so a missing or misplaced gather changes the set.
    script = tmp_path / "dc.py"
    script.write_text(_DC_SCRIPT)
    one = _run(_launcher(1) + [str(script), str(tmp_path / "one.pt")], timeout=300)
    assert one.returncode == 0, one.stderr[-2000:]
    two = _run(_launcher(2) + [str(script), str(tmp_path / "two.pt")], timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    a, b = torch.load(tmp_path / "one.pt"), torch.load(tmp_path / "two.pt")
    assert torch.equal(a["images"], b["images"])
    assert a["losses"] == pytest.approx(b["losses"], rel=1e-6)


def test_buffer_experts_split_across_ranks_give_the_same_trajectories(tmp_path):
    listings = []
    for ranks, name in ((1, "one"), (2, "two")):
        run = _kaleido(ranks, ["buffer", *DATA, "--experts", "3", "--epochs", "1", "--batch-size", "128", "--quiet",
                               "--out", str(tmp_path / name)])
        assert run.returncode == 0, run.stderr[-2000:]
        listings.append(json.load(open(tmp_path / name / "buffer.json"))["experts"])
    assert len(listings[0]) == 3 and listings[0] == listings[1]
    for k in range(3):  # expert 2 was trained by rank 1
        a = torch.load(tmp_path / "one" / f"expert_{k}.pt")["trajectory"]
        b = torch.load(tmp_path / "two" / f"expert_{k}.pt")["trajectory"]
        assert torch.equal(a, b)


def _rank_pid(tag, rank):
    """The pid of the torchrun worker of this launch (env KALEIDO_TEST_TAG=tag) with the given RANK."""
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            env = open(f"/proc/{entry}/environ", "rb").read().split(b"\0")
        except OSError:
            continue
        if f"KALEIDO_TEST_TAG={tag}".encode() in env and f"RANK={rank}".encode() in env \
                and b"TORCHELASTIC_RUN_ID" in b"".join(env):
            return int(entry)
    return None


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="finds the rank's process in /proc")
def test_a_killed_rank_stops_the_run_and_resume_gives_the_uninterrupted_set(tmp_path):
    import signal
    import time

    iterations = 16
    one = _distill(tmp_path / "one", 1, iterations)
    assert one.returncode == 0, one.stderr[-2000:]
    out, tag = tmp_path / "killed", str(tmp_path)
    env = dict(_env(), KALEIDO_TEST_TAG=tag, KALEIDO_DIST_TIMEOUT_S="60")
    args = ["distill", "--out", str(out), "--iterations", str(iterations), *_small()]
    launch = subprocess.Popen(_launcher(2) + ["-m", "kaleido_cuda", *args],
                              env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=_OUTSIDE)
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:  # kill rank 1 once a few iterations are checkpointed
            ckpt = out / "checkpoint.pt"
            if ckpt.exists() and torch.load(ckpt, weights_only=False)["iteration"] >= 2:
                break
            time.sleep(0.05)
        done = torch.load(out / "checkpoint.pt", weights_only=False)["iteration"]
        assert done < iterations, "the run finished before a rank could be killed"
        os.kill(_rank_pid(tag, 1), signal.SIGKILL)
        _, stderr = launch.communicate(timeout=240)  # no hang: torchrun stops rank 0 too
    finally:
        launch.kill()
    assert launch.returncode != 0
    assert "Root Cause" in stderr and "rank      : 1" in stderr and "SIGKILL" in stderr  # torchrun names it
    assert not (out / "synthetic.pt").exists()
    resumed = _distill(out, 2, iterations, extra=["--resume"])
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert torch.equal(_images(tmp_path / "one"), _images(out))


def test_audit_models_and_shadows_split_across_ranks_give_the_same_figures(tmp_path):
    made = _distill(tmp_path / "run", 1, 1)
    assert made.returncode == 0, made.stderr[-2000:]
    reports = []
    for ranks in (1, 2):  # each audit on its own copy: the shadows are cached in the run folder
        run = tmp_path / f"run{ranks}"
        shutil.copytree(tmp_path / "run", run)
        done = _kaleido(ranks, ["audit", str(run), "--attacks", "data,model,lira", "--models", "3", "--shadows", "2",
                                "--shadow-iterations", "1", "--epochs", "2", "--quiet"])
        assert done.returncode == 0, done.stderr[-2000:]
        assert sorted(os.listdir(run / "shadows")) == ["shadow_0.pt", "shadow_1.pt", "shadows.json"]
        reports.append(json.load(open(run / "audit.json")))
    assert len(reports[0]["target_accuracy"]) == 3
    for key in ("target_accuracy", "attacks", "epsilon_lb"):
        assert reports[0][key] == reports[1][key]
    # A set made by another tool (a dict of images and labels): the same figures under 2 ranks.
    saved = torch.load(tmp_path / "run" / "synthetic.pt", weights_only=False)
    foreign = []
    for ranks in (1, 2):
        folder = tmp_path / f"foreign{ranks}"
        folder.mkdir()
        torch.save({"images": saved["images"], "labels": saved["labels"]}, folder / "set.pt")
        done = _kaleido(ranks, ["audit", "--synthetic", str(folder / "set.pt"), *DATA,
                                "--attacks", "data,model", "--models", "3", "--epochs", "2", "--quiet"])
        assert done.returncode == 0, done.stderr[-2000:]
        foreign.append(json.load(open(folder / "audit.json")))
    for key in ("target_accuracy", "attacks"):
        assert foreign[0][key] == foreign[1][key]
