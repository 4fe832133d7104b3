"""Training end to end on a tiny configuration: checkpoint contents, resume, CLI errors."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
import torch

from train.checkpoint import load_checkpoint
from train.cli import main
from train.easy import STATE_SUFFIX, STATE_VERSION, FitConfig, fit, save_resume_state

TINY = FitConfig(feature_maps=4, image_size=16, epochs=2, cycle_epochs=1, batch_size=512, val_episodes=20,
                 episodes=40, device="cpu")
ROOT = Path(__file__).resolve().parents[2]


class Interrupt(Exception):
    pass


def stop_after_first_epoch(record: dict) -> None:
    if record["epoch"] == 1:
        raise Interrupt


def test_resume_gives_the_same_result_as_one_run(tmp_path):
    whole = fit(replace(TINY, out=str(tmp_path / "whole.pt"), compare_untrained=False), log=lambda s: None)
    cut = replace(TINY, out=str(tmp_path / "cut.pt"), compare_untrained=False)
    with pytest.raises(Interrupt):
        fit(cut, on_epoch_end=stop_after_first_epoch, log=lambda s: None)
    assert Path(cut.out + STATE_SUFFIX).is_file()
    partial = load_checkpoint(cut.out)
    assert partial.metrics["complete"] is False and len(partial.metrics["history"]) == 1
    resumed = fit(cut, log=lambda s: None)
    assert not Path(cut.out + STATE_SUFFIX).exists()
    for a, b in zip(whole.members[0].state_dict.values(), resumed.members[0].state_dict.values()):
        assert torch.equal(a, b)
    assert torch.equal(whole.base_mean, resumed.base_mean)
    assert whole.metrics["members"][0]["history"] == resumed.metrics["members"][0]["history"]


def test_ensemble_checkpoint_and_evaluate_cli(tmp_path, capsys):
    out = tmp_path / "ens.pt"
    ckpt = fit(replace(TINY, epochs=1, ensemble=2, out=str(out)), log=lambda s: None)
    saved = load_checkpoint(out)
    assert len(saved.members) == 2 and saved.feature_dim == 40 and saved.base_mean.shape == (40,)  # 2 x 5 fm
    assert saved.metrics["complete"] and saved.config["ensemble"] == 2 and saved.dataset == "synthetic"
    assert saved.preprocessing.image_size == 16
    assert not torch.equal(saved.members[0].state_dict["blocks.0.conv1.weight"],
                           saved.members[1].state_dict["blocks.0.conv1.weight"])
    for fitted, loaded in zip(ckpt.members, saved.members):  # the round trip keeps every weight, bit for bit
        assert fitted.state_dict.keys() == loaded.state_dict.keys()
        assert all(torch.equal(fitted.state_dict[k], loaded.state_dict[k]) for k in fitted.state_dict)
    assert torch.equal(ckpt.base_mean, saved.base_mean) and ckpt.preprocessing == saved.preprocessing
    for key in ("trained_novel_5way_1shot", "untrained_novel_5way_5shot_ci95", "pixels_novel_5way_1shot"):
        assert 0 <= ckpt.metrics[key] <= 1
    assert main(["evaluate", "--checkpoint", str(out), "--episodes", "30", "--shots", "5", "--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert 0.2 <= result["accuracy"] <= 1 and result["ci95"] > 0 and result["shots"] == 5


def test_trained_beats_untrained_beats_chance(tmp_path):
    """Two tiny epochs on the default synthetic data already separate the three (200 episodes)."""
    ckpt = fit(replace(TINY, episodes=200, out=str(tmp_path / "t.pt")), log=lambda s: None)
    m = ckpt.metrics
    trained, untrained = m["trained_novel_5way_1shot"], m["untrained_novel_5way_1shot"]
    assert trained - m["trained_novel_5way_1shot_ci95"] > untrained + m["untrained_novel_5way_1shot_ci95"]
    assert untrained - m["untrained_novel_5way_1shot_ci95"] > 1 / 5  # chance of a 5-way episode


def test_sample_images_npz(tmp_path):
    out = tmp_path / "novel.npz"
    assert main(["sample-images", "--split", "novel", "--classes", "3", "--per-class", "4", "--image-size", "24",
                 "--out", str(out)]) == 0
    z = np.load(out)
    assert z["images"].shape == (12, 24, 24, 3) and z["images"].dtype == np.uint8
    assert z["labels"].tolist() == [0] * 4 + [1] * 4 + [2] * 4 and len(z["class_names"]) == 3


@pytest.mark.parametrize("argv,message", [
    (["fit", "--backbone", "resnet99"], "unknown backbone 'resnet99'"),
    (["fit", "--image-size", "4", "--feature-maps", "4"], "image size 4 is too small"),
    (["fit", "--dataset", "cifarfs", "--data-root", "/nonexistent"], "data root /nonexistent does not exist"),
    (["fit", "--epochs", "0"], "epochs must be at least 1"),
    (["evaluate", "--checkpoint", "/nonexistent.pt"], "checkpoint /nonexistent.pt does not exist"),
    (["sample-images", "--split", "train"], "unknown split 'train'"),
    (["sample-images", "--classes", "30"], "has 20 classes, fewer than --classes 30"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, tmp_path, capsys):
    out = tmp_path / "x.pt"
    assert main([*argv, "--out", str(out)] if argv[0] != "evaluate" else argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("train: error: ") and message in err and len(err.splitlines()) == 1
    assert not list(tmp_path.iterdir())  # nothing half-written


def test_corrupt_dataset_through_the_real_cli(tmp_path):
    (tmp_path / "base" / "a").mkdir(parents=True)
    (tmp_path / "novel" / "b").mkdir(parents=True)
    (tmp_path / "base" / "a" / "x.png").write_bytes(b"garbage")
    (tmp_path / "novel" / "b" / "y.png").write_bytes(b"garbage")
    proc = subprocess.run([sys.executable, "-m", "train", "fit", "--dataset", "folder", "--data-root", str(tmp_path),
                           "--out", str(tmp_path / "o.pt")], cwd=ROOT, capture_output=True, text=True,
                          env={"FSL_CACHE_DIR": str(tmp_path / "cache"), "OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip().splitlines() == [f"train: error: corrupt or unsupported image {tmp_path}/base/a/x.png"]
    assert not (tmp_path / "o.pt").exists()


def test_foreign_resume_state_is_refused(tmp_path, capsys):
    out = tmp_path / "a.pt"
    config = FitConfig(feature_maps=4, image_size=16, out=str(out))
    foreign = {**config.training_fields(), "epochs": 99}
    save_resume_state({"version": STATE_VERSION, "config": foreign}, Path(str(out) + STATE_SUFFIX))
    argv = ["fit", "--feature-maps", "4", "--image-size", "16", "--out", str(out)]
    assert main(argv) == 2
    assert "was written with other values of epochs; use the same flags" in capsys.readouterr().err
    assert not out.exists()


def test_corrupt_resume_state_is_called_corrupt(tmp_path, capsys):
    out = tmp_path / "a.pt"
    config = FitConfig(feature_maps=4, image_size=16, out=str(out))
    state = Path(str(out) + STATE_SUFFIX)
    save_resume_state({"version": STATE_VERSION, "config": config.training_fields()}, state)
    data = bytearray(state.read_bytes())
    data[-5] ^= 0x10
    state.write_bytes(bytes(data))
    assert main(["fit", "--feature-maps", "4", "--image-size", "16", "--out", str(out)]) == 2
    assert "is corrupt or truncated; delete it" in capsys.readouterr().err


def test_dataset_without_val_keeps_the_last_epoch(tmp_path):
    import cv2

    rng = np.random.default_rng(0)
    for split, classes, per_class in (("base", 3, 6), ("novel", 5, 20)):
        for c in range(classes):
            (tmp_path / "d" / split / f"{split}{c}").mkdir(parents=True)
            for i in range(per_class):
                image = rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)
                cv2.imwrite(str(tmp_path / "d" / split / f"{split}{c}" / f"{i}.png"), image)
    config = replace(TINY, dataset="folder", data_root=str(tmp_path / "d"), batch_size=8, out=str(tmp_path / "f.pt"))
    ckpt = fit(config, log=lambda s: None)
    member = ckpt.metrics["members"][0]
    assert member["best_epoch"] == 2 and "val_1shot" not in member["history"][-1]
    assert ckpt.base_mean.shape == (20,) and 0 <= ckpt.metrics["trained_novel_5way_5shot"] <= 1
