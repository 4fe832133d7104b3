"""The shared foundation: backbone zoo and checkpoint contract."""

import pytest
import torch

from train.backbones import BackboneError, BackboneSpec, build_backbone, final_map_size, parameter_count
from train.checkpoint import (
    BackboneCheckpoint,
    CheckpointError,
    Member,
    Preprocessing,
    build_model,
    load_checkpoint,
    save_checkpoint,
)


@pytest.mark.parametrize(
    "family,fm,dim,params",
    [("resnet9", 16, 80, 188_576), ("resnet12", 16, 160, 778_656), ("resnet8", 64, 256, 1_225_024)],
)
def test_backbone_shapes_and_parameters(family, fm, dim, params):
    net = build_backbone(BackboneSpec(family, fm))
    assert net(torch.randn(2, 3, 32, 32)).shape == (2, dim)
    assert net.feature_dim == dim
    assert parameter_count(net) == params


def test_resnet8_with_cifar10_head_matches_flocora_table():
    net = build_backbone(BackboneSpec("resnet8", 64))
    assert parameter_count(net) + 256 * 10 + 10 == 1_227_594


def test_resnet18_cifar_matches_thesis():
    net = build_backbone(BackboneSpec("resnet18", 64))
    assert parameter_count(net) + 512 * 10 + 10 == 11_173_962


@pytest.mark.parametrize("strided,size,expected", [(True, 32, 4), (False, 32, 4), (True, 84, 11), (False, 84, 10)])
def test_final_map_size(strided, size, expected):
    assert final_map_size(BackboneSpec("resnet9", 16, strided, image_size=size)) == expected


def test_bad_specs_are_refused():
    with pytest.raises(BackboneError, match="unknown backbone"):
        build_backbone(BackboneSpec("resnet7"))
    with pytest.raises(BackboneError, match="too small"):
        build_backbone(BackboneSpec("resnet12", strided=False, image_size=8))


def test_checkpoint_round_trip_and_ensemble(tmp_path):
    specs = [BackboneSpec("resnet9", 8), BackboneSpec("resnet9", 8)]
    members = [Member(s, build_backbone(s).state_dict()) for s in specs]
    ckpt = BackboneCheckpoint(members, Preprocessing(), torch.zeros(80))
    path = save_checkpoint(ckpt, tmp_path / "e.pt")
    model = build_model(load_checkpoint(path))
    assert model(torch.randn(1, 3, 32, 32)).shape == (1, 80)
    assert not list(tmp_path.glob("*.tmp"))


def test_corrupt_checkpoint_is_one_clear_error(tmp_path):
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(CheckpointError, match="cannot be read"):
        load_checkpoint(bad)
    with pytest.raises(CheckpointError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
