"""The CLI: bad input gives one `fl_bridge: error:` line and status 2."""

from __future__ import annotations

import pytest

from fl_bridge.cli import build_parser, main


@pytest.mark.parametrize("argv,message", [
    (["run", "--rank", "0"], "LoRA rank"),
    (["run", "--per-round", "30"], "per-round"),
    (["run", "--quant-bits", "3"], "message bits"),
    (["run", "--backbone", "vgg"], "unknown backbone"),
    (["run", "--prune-rate", "1.0"], "pruning rate"),
    (["deploy", "--run", "/nonexistent/run"], "not a federated run folder"),
    (["run", "--method", "q-fedupdate", "--quant-bits", "4"], "must be 8"),
    (["run", "--method", "fedavg", "--lora"], "--lora"),
    (["run", "--method", "q-fedavg", "--eta", "8"], "eta"),
    (["run", "--method", "q-fedavg", "--grid-update", "adam"], "grid-update"),
    (["run", "--method", "int8"], "method must be one of"),
    (["precision-sweep", "--per-round-list", "0", "5"], "per-round-list"),
    (["timing", "--method", "fedavg"], "q-fedupdate"),
    (["compare", "--method", "q-fedupdate"], "precision-sweep"),
])
def test_bad_input_is_one_line_and_status_2(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("fl_bridge: error:") and message in err[-1]
    assert not any("Traceback" in line for line in err)


def test_defaults_are_the_embedded_default():
    args = build_parser().parse_args(["run"])
    assert (args.out, args.dataset, args.backbone, args.feature_maps, args.image_size) == (
        "build/fl/default", "synthetic", "resnet9", 16, 32)
    assert (args.method, args.rank, args.alpha, args.quant_bits, args.clients, args.per_round) == (
        "flocora", 16, 256.0, 8, 20, 5)
    assert build_parser().parse_args(["deploy"]).run == "build/fl/default"


def test_deploy_ends_with_a_verdict(tmp_path):
    from fl_bridge.cli import deploy_verdict

    report = {"bundle": "build/bundle/fl_default", "bitstream": None,
              "emulator_vs_torch": {"images": 8, "min_cosine": 0.99981234, "max_abs_diff": 0.01234,
                                    "mean_abs_diff": 0.002, "feature_scale": 3.14159}}
    assert deploy_verdict(report, tmp_path / "deploy.json") == (
        "fl_bridge: summary: bundle build/bundle/fl_default (emulator only, no bitstream); the emulated fixed-point "
        "backbone agrees with the float one on 8 images: min cosine 0.99981 (at least 0.99 required), "
        f"max |diff| 0.0123 for features up to 3.142; details in {tmp_path / 'deploy.json'}")
