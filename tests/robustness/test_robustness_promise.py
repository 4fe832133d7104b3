"""The rest of the promise: finished work is never destroyed or redone, leftovers of killed
writers are removed, artifacts are 0644 in 0755 folders, and make does each stage's work once."""

from __future__ import annotations

import hashlib
import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

from robustness_support import TINY_FIT

ROOT = Path(__file__).resolve().parents[2]


def sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_fit_over_a_finished_checkpoint_of_the_same_configuration_does_nothing(workspace, capsys):
    from train.cli import main

    ckpt = workspace / "backbone" / "tiny.pt"
    before = (sha(ckpt), ckpt.stat().st_mtime_ns)
    assert main(["fit", *TINY_FIT, "--out", str(ckpt), "--episodes", "30"]) == 0  # episodes: not a training field
    assert (sha(ckpt), ckpt.stat().st_mtime_ns) == before
    assert "already a finished checkpoint of this configuration; nothing to do" in capsys.readouterr().err


def test_force_keeps_the_finished_checkpoint_until_the_new_run_ends(workspace):
    from train.checkpoint import load_checkpoint
    from train.easy import STATE_SUFFIX, FitConfig, fit

    ckpt = workspace / "backbone" / "tiny.pt"
    before = sha(ckpt)
    config = FitConfig(feature_maps=4, image_size=16, epochs=2, cycle_epochs=1, batch_size=512, val_episodes=10,
                       episodes=20, compare_untrained=False, device="cpu", out=str(ckpt), force=True)

    class Killed(Exception):
        pass

    def kill_after_first_epoch(record: dict) -> None:
        raise Killed

    with pytest.raises(Killed):
        fit(config, on_epoch_end=kill_after_first_epoch, log=lambda s: None)
    assert sha(ckpt) == before, "the finished checkpoint was overwritten by a partial one"
    assert Path(str(ckpt) + STATE_SUFFIX).is_file()
    done = fit(config, log=lambda s: None)          # the same command resumes and only then replaces it
    assert done.metrics["complete"] and load_checkpoint(ckpt).config["epochs"] == 2
    assert not Path(str(ckpt) + STATE_SUFFIX).exists()


def test_stale_temps_of_killed_writers_are_removed_live_ones_kept(tmp_path):
    from safeio import atomic_write_text, remove_stale_temps

    dead = subprocess.Popen(["true"])
    dead.wait()
    stale = [tmp_path / f".a.txt.{dead.pid}.0a1b.tmp", tmp_path / ".a.txt.k3j_x8a.tmp"]  # ours, old mkstemp style
    live = tmp_path / f".a.txt.{os.getppid()}.0a1b.tmp"
    other = tmp_path / f".b.txt.{dead.pid}.0a1b.tmp"
    for p in (*stale, live, other):
        p.write_bytes(b"")
    atomic_write_text(tmp_path / "a.txt", "done")
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(["a.txt", live.name, other.name])
    assert remove_stale_temps(tmp_path) == [other]


def test_a_folder_swap_killed_between_its_renames_is_put_back(tmp_path):
    from safeio import remove_stale_temps

    dead = subprocess.Popen(["true"])
    dead.wait()
    aside = tmp_path / f".bundle.{dead.pid}.0a1b.old"   # the name replace_folder gives the old folder
    aside.mkdir()
    (aside / "model.json").write_text("{}")
    remove_stale_temps(tmp_path)
    assert (tmp_path / "bundle" / "model.json").is_file() and not aside.exists()


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_artifacts_are_0644_in_0755_folders(artifacts):
    files = [artifacts.checkpoint, artifacts.onnx, artifacts.onnx.with_suffix(".json"), artifacts.samples,
             *artifacts.tensil.iterdir(), *artifacts.bundle.iterdir(), *artifacts.video.iterdir()]
    assert {str(f.relative_to(artifacts.root)): oct(_mode(f)) for f in files if _mode(f) != 0o644} == {}
    assert oct(_mode(artifacts.bundle)) == oct(0o755)


STUB = r"""#!/bin/sh
# A stand-in for the venv's python: logs the stage and creates the file(s) it would write.
echo "$*" >> "$STUB_LOG"
out=""; onnx=""; arch=""; ckpt=""
while [ $# -gt 0 ]; do
  case "$1" in --out) out="$2"; shift;; --onnx) onnx="$2"; shift;; --arch) arch="$2"; shift;;
    --checkpoint) ckpt="$2"; shift;; esac; shift
done
mkdir -p "$(dirname "$out")"
case "$out" in
  *.pt|*.npz) touch "$out";;
  build/export/) mkdir -p "$out"; touch "${out}$(basename "$ckpt" .pt).onnx";;
  build/tensil/) mkdir -p "$out"; touch "${out}$(basename "$onnx" .onnx)_${arch}.tmodel";;
  build/bundle/*) mkdir -p "$out"; touch "${out}model.json";;
  build/demo/input/) mkdir -p "$out"; touch "${out}video.avi";;
  build/demo/) mkdir -p "$out"; touch "${out}log.json";;
esac
"""


def _stub_make(tmp_path: Path):
    """A `make` in tmp_path whose venv python only logs its arguments and touches its outputs:
    returns a function running make with the given arguments and returning the logged commands."""
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text(STUB)
    (venv / "bin" / "python").chmod(0o755)
    shutil.copy(ROOT / "pyproject.toml", tmp_path)   # the setup stamp's input, older than the stamp
    (venv / ".installed").touch()
    log = tmp_path / "stages.log"
    env = dict(os.environ, STUB_LOG=str(log))

    def make(*args: str) -> list[str]:
        log.write_text("")
        subprocess.run(["make", "-s", "-f", str(ROOT / "Makefile"), f"VENV={venv}", *args], cwd=tmp_path,
                       env=env, check=True, capture_output=True, timeout=60)
        return log.read_text().splitlines()

    return make


def _stages(lines: list[str]) -> list[str]:
    """`-m train fit --out ...` -> `train fit`."""
    return [line.split()[1] + (" " + line.split()[2] if line.split()[1] in ("train", "board", "tensil") else "")
            for line in lines]


def test_make_all_twice_does_the_work_once_and_reruns_what_changed(tmp_path):
    run = _stub_make(tmp_path)

    def make(*args: str) -> list[str]:
        return _stages(run(*args))

    first = make("all")
    assert first == ["train fit", "export", "tensil compile", "board bundle", "train sample-images", "board video",
                     "board demo"]
    assert make("all") == []                                            # twice: the work once
    assert make("all", "BACKEND=onnx") == ["board demo"]                # configuration of one stage
    assert make("all", "BACKEND=onnx", "ARCH=other") == ["tensil compile", "board bundle", "board demo"]
    os.utime(tmp_path / "build/backbone/default.pt")                    # a new input file
    assert make("all", "BACKEND=onnx", "ARCH=other") == ["export", "tensil compile", "board bundle", "board demo"]
    assert make("all", "BACKEND=onnx", "ARCH=other", "TRAIN_FLAGS=--epochs 3") == [
        "train fit", "export", "tensil compile", "board bundle", "board demo"]


def test_make_carries_the_dataset_through_every_stage(tmp_path):
    make = _stub_make(tmp_path)
    make("all")
    fm = ("DATASET=fashionmnist", "DATA_ROOT=/data/fm", "IMAGE_SIZE=40")
    lines = make("all", *fm)
    assert lines == [
        "-m train fit --out build/backbone/fashionmnist.pt --dataset fashionmnist --data-root /data/fm --image-size 40"
        " --epochs 2 --cycle-epochs 2",
        "-m export --checkpoint build/backbone/fashionmnist.pt --out build/export/ --data-root /data/fm",
        "-m tensil compile --onnx build/export/fashionmnist.onnx --arch custom_perf --out build/tensil/",
        "-m board bundle --onnx build/export/fashionmnist.onnx --tensil build/tensil/ --arch custom_perf"
        " --fpga build/fpga/custom_perf_50MHz --out build/bundle/fashionmnist/",
        "-m train sample-images --dataset fashionmnist --data-root /data/fm --image-size 40 --split novel"
        " --classes 5 --per-class 20 --seed 0 --out build/demo/samples.npz",
        "-m board video --samples build/demo/samples.npz --out build/demo/input/",
        "-m board demo --bundle build/bundle/fashionmnist/ --backend emulator --video build/demo/input/ --out build/demo/"]
    assert make("all", *fm) == []
    # Back to the default: its model is up to date, the demo's pictures and run are not.
    back = make("all")
    assert _stages(back) == ["train sample-images", "board video", "board demo"]
    assert "--dataset synthetic --image-size 96" in back[0] and "--bundle build/bundle/default/" in back[2]
    assert _stages(make("all", *fm[:2], "IMAGE_SIZE=48")) == [
        "train fit", "export", "tensil compile", "board bundle", "train sample-images", "board video", "board demo"]
    assert _stages(make("all", *fm[:2], "IMAGE_SIZE=48", "DATA_ROOT=/elsewhere")) == [
        "train fit", "export", "tensil compile", "board bundle", "train sample-images", "board video", "board demo"]
    assert _stages(make("all", *fm[:2], "IMAGE_SIZE=48", "DATA_ROOT=/elsewhere", "NAME=mine")) == [
        "train fit", "export", "tensil compile", "board bundle", "board demo"]


def test_a_bit_flipped_federated_state_is_one_line(tmp_path):
    import numpy as np

    from fl_bridge.errors import FLError
    from fl_bridge.rundir import RunDir, ServerState
    from robustness_support import bitflip

    run = RunDir(tmp_path)
    run.save_state(ServerState(3, {"w": np.arange(4096, dtype=np.float32).reshape(64, 64)}, [{"round": 3}]))
    assert run.load_state([("w", (64, 64))]).round == 3
    bitflip(run.state_path)
    with pytest.raises(FLError, match=r"state.pt is corrupt, truncated or of another model; delete it") as e:
        run.load_state([("w", (64, 64))])
    assert "\n" not in str(e.value)
