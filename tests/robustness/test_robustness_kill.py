"""kill -9 at a random point of `train fit`, `tensil compile`, `board bundle` and a federated run:
a finished artifact is never destroyed, no visible file is half-written, and the leftovers of the
killed writer (hidden, pid-tagged temps) are removed by the next writer. The seed of the random
kill points is in every failure message (ROBUSTNESS_SEED reproduces a run)."""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from robustness_support import TINY_FIT

ROOT = Path(__file__).resolve().parents[2]
SEED = int(os.environ.get("ROBUSTNESS_SEED", time.time_ns() % 100_000))
TEMP = re.compile(r"^\..*\.(\d+)\.[0-9a-f]+\.(tmp|old)(\.\w+)?$")


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def run_and_kill(argv: list[str], delay: float) -> bool:
    """Run `argv` in its own process group and SIGKILL the group after `delay` s; True if killed."""
    env = dict(os.environ, OMP_NUM_THREADS="1")
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    try:
        proc.wait(timeout=delay)
        return False
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        return True


def visible(folder: Path) -> list[Path]:
    return sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith("."))


def _free_lock(path: Path) -> bool:
    """A `.NAME.lock` whose holder is gone (the kernel released it; the next writer reuses it)."""
    if not path.name.endswith(".lock"):
        return False
    with open(path) as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return False
    return True


def hidden_leftovers(folder: Path) -> list[str]:
    """Hidden files other than pid-tagged temps of dead writers and free locks (the next writer
    removes or reuses those)."""
    out = []
    for p in folder.rglob(".*"):
        m = TEMP.match(p.name)
        if _free_lock(p):
            continue
        if m is None or Path(f"/proc/{m[1]}").exists():
            out.append(p.name)
    return out


@pytest.fixture
def rng() -> random.Random:
    return random.Random(SEED)


def test_kill_train_fit_never_destroys_the_finished_checkpoint(workspace, rng):
    from train.checkpoint import load_checkpoint

    ckpt = workspace / "backbone" / "tiny.pt"
    finished = sha(ckpt)
    delay = rng.uniform(1.0, 25.0)
    killed = run_and_kill([sys.executable, "-m", "train", "fit", *TINY_FIT, "--epochs", "2", "--force",
                           "--out", str(ckpt)], delay)
    why = f"seed {SEED}, killed after {delay:.1f} s"
    if not (killed and sha(ckpt) == finished):
        # the run finished, or was killed after it had replaced the checkpoint (--force) and before it
        # exited: only a whole new checkpoint may have taken the finished one's place
        assert load_checkpoint(ckpt).config["epochs"] == 2, f"finished checkpoint replaced by an incomplete one ({why})"
    for f in visible(workspace / "backbone"):
        assert f.name in ("tiny.pt", "tiny.pt.state.pt", "tiny.curves.png"), f"unexpected {f} ({why})"
    state = ckpt.with_name("tiny.pt.state.pt")
    if state.exists():  # a complete, checksummed resume state
        from train.easy import FitConfig, load_resume_state

        config = FitConfig(feature_maps=4, image_size=16, epochs=2, cycle_epochs=1, batch_size=512, val_episodes=10,
                           episodes=20, compare_untrained=False, device="cpu", out=str(ckpt))
        assert load_resume_state(config) is not None, why
    assert hidden_leftovers(workspace / "backbone") == [], why


def test_kill_tensil_compile_leaves_whole_models(workspace, rng):
    out = workspace / "tensil"
    model = lambda: {f.name: sha(f) for f in visible(out) if f.suffix in (".tmodel", ".tprog", ".tdata")}  # noqa: E731
    before = model()
    argv = [sys.executable, "-m", "tensil", "compile", "--onnx", str(workspace / "export" / "tiny.onnx"),
            "--out", str(out), "--samples", "1"]
    delay = rng.uniform(0.5, 12.0)
    run_and_kill(argv, delay)
    why = f"seed {SEED}, killed after {delay:.1f} s"
    assert model() == before, f"a compiled file changed or is half-written ({why})"   # same ONNX, same bytes
    json.loads((out / "tiny_custom_perf.report.json").read_text())                     # whole (its timings differ)
    assert hidden_leftovers(out) == [], why
    assert subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    assert [p.name for p in out.iterdir() if p.name.startswith(".")] == [], f"stale temps not removed ({why})"


def test_kill_board_bundle_leaves_a_whole_bundle(workspace, rng):
    from board.bundle import load_bundle

    argv = [sys.executable, "-m", "board", "bundle", "--onnx", str(workspace / "export" / "tiny.onnx"),
            "--tensil", str(workspace / "tensil"), "--fpga", "none", "--out", str(workspace / "bundle"),
            "--verify-samples", "1"]
    delay = rng.uniform(0.5, 10.0)
    run_and_kill(argv, delay)
    why = f"seed {SEED}, killed after {delay:.1f} s"
    load_bundle(workspace / "bundle", check_hashes=True)
    assert hidden_leftovers(workspace) == [], why
    assert subprocess.run(argv, cwd=ROOT, capture_output=True, timeout=300).returncode == 0
    assert [p.name for p in workspace.iterdir() if p.name.startswith(".")] == [], f"stale temps ({why})"
    load_bundle(workspace / "bundle", check_hashes=True)


FL_TINY = ["--rounds", "2", "--image-size", "16", "--feature-maps", "4", "--clients", "4", "--per-round", "2",
           "--samples-per-client", "16", "--batch-size", "8", "--epochs", "1", "--eval-every", "2", "--episodes", "4",
           "--shots", "1", "--queries", "5"]


def test_kill_federated_run_leaves_a_resumable_run_folder(tmp_path, artifacts, rng):
    from fl_bridge.rundir import RunDir
    from train.checkpoint import load_checkpoint

    out = tmp_path / "fl"
    delay = rng.uniform(2.0, 20.0)
    run_and_kill([sys.executable, "-m", "fl_bridge", "run", "--out", str(out), *FL_TINY], delay)  # inline engine
    why = f"seed {SEED}, killed after {delay:.1f} s"
    for f in visible(out) if out.exists() else []:
        if f.suffix == ".json":
            json.loads(f.read_text())
        elif f.name == "backbone.pt":
            load_checkpoint(f)
        elif f.name == "convergence.png":
            assert f.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", why
        elif f.name == "state.pt":
            import torch

            state = torch.load(f, weights_only=True)
            assert set(state) == {"round", "tensors", "rounds", "sha256"}, why
        else:
            pytest.fail(f"unexpected {f} ({why})")
    if out.exists():
        assert hidden_leftovers(out) == [], why
        assert RunDir(out).config_path.is_file(), why
    done = subprocess.run([sys.executable, "-m", "fl_bridge", "run", "--out", str(out), *FL_TINY], cwd=ROOT,
                          capture_output=True, text=True)  # resumes (or starts) and finishes
    assert done.returncode == 0, (why, done.stderr[-2000:])
    assert [r["round"] for r in json.loads(RunDir(out).metrics_path.read_text())["rounds"]] == [0, 1, 2], why
    load_checkpoint(RunDir(out).checkpoint_path)
