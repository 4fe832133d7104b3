"""Unit tests of the federated building blocks: LoRA, quantisation, pruning, payload codec."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from flwr.app import Array, ArrayRecord

from fl_bridge.codec import CodecConfig, decode, encode, payload_nbytes
from fl_bridge.errors import FLError, MalformedUpdate
from fl_bridge.lora import LoRAConv2d, inject_lora, merge_lora
from fl_bridge.model import ModelConfig, build_model, get_communicated, layout
from fl_bridge.prune import global_threshold, prune, sparsity
from fl_bridge.quant import dequantize, pack_bits, quantize, unpack_bits
from fl_bridge.strategy import sample_nodes
from train.backbones import BackboneSpec

SMALL = BackboneSpec("resnet9", 8, True, 3, 16, "batch")


def test_lora_conv_equals_base_at_init_and_after_merge():
    torch.manual_seed(0)
    base = torch.nn.Conv2d(6, 10, 3, stride=2, padding=1, bias=False)
    x = torch.randn(2, 6, 9, 9)
    lora = LoRAConv2d(base, rank=4, alpha=64)
    assert torch.equal(lora(x), base(x))
    torch.nn.init.normal_(lora.lora_B.weight)
    merged = lora.merge()
    assert not torch.allclose(lora(x), base(x))
    assert torch.allclose(merged(x), lora(x), atol=1e-4)
    assert merged.stride == base.stride and merged.weight.shape == base.weight.shape


@pytest.mark.parametrize("family,norm", [("resnet9", "batch"), ("resnet8", "group")])
def test_injected_backbone_merges_to_the_plain_architecture(family, norm):
    spec = BackboneSpec(family, 8, True, 3, 16, norm)
    model = build_model(ModelConfig(spec, 5, "flocora", rank=2, alpha=32)).eval()
    for m in model.modules():
        if isinstance(m, LoRAConv2d):
            torch.nn.init.normal_(m.lora_B.weight, std=0.05)
    x = torch.randn(3, 3, 16, 16)
    before = model.backbone(x)
    plain_keys = set(build_model(ModelConfig(spec, 5, "fedavg")).backbone.state_dict())
    merge_lora(model.backbone)
    assert set(model.backbone.state_dict()) == plain_keys
    assert torch.allclose(model.backbone(x), before, atol=1e-4)


def test_flocora_trains_stem_norms_heads_and_adapters_only():
    model = build_model(ModelConfig(SMALL, 5, "flocora", rank=2, alpha=32))
    trained = {n for n, p in model.named_parameters() if p.requires_grad}
    assert "backbone.blocks.0.conv1.weight" in trained  # the stem, mode 3
    assert "backbone.blocks.0.shortcut.0.lora_A.weight" in trained
    assert "backbone.blocks.1.conv2.base.weight" not in trained
    assert {"classifier.weight", "classifier.bias", "backbone.blocks.2.bn3.weight"} <= trained
    again = build_model(ModelConfig(SMALL, 5, "flocora", rank=2, alpha=32))
    names = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert all(torch.equal(model.get_parameter(n), again.get_parameter(n)) for n in names)


def test_inject_lora_rejects_bad_rank():
    with pytest.raises(ValueError):
        inject_lora(torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3, bias=False)), rank=0, alpha=1)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_quantisation_error_bound_and_packing(bits):
    rng = np.random.default_rng(bits)
    x = rng.standard_normal((7, 5, 3, 3)).astype(np.float32)
    x[2] += 10.0  # a slice that does not straddle zero
    x[3] = 0.0  # an all-zero slice (LoRA B at round 1)
    q = quantize(x, bits)
    assert q.packed.dtype == np.uint8 and q.packed.size == (x.size * bits + 7) // 8
    err = np.abs(dequantize(q) - x).reshape(7, -1).max(axis=1)
    assert np.all(err <= q.scale * 0.5 + 1e-6)
    assert np.all(dequantize(q)[3] == 0)


@pytest.mark.parametrize("bits", [2, 4, 8])
def test_bit_packing_roundtrip(bits):
    codes = np.random.default_rng(0).integers(0, 2**bits, 37).astype(np.uint8)
    packed = pack_bits(codes, bits)
    assert packed.size == (37 * bits + 7) // 8
    assert np.array_equal(unpack_bits(packed, bits, 37), codes)
    if bits == 4:
        assert pack_bits(np.array([1, 2], np.uint8), 4)[0] == 0x21


def test_global_pruning_threshold():
    arrays = {"w": np.arange(1, 101, dtype=np.float32).reshape(10, 10), "b": np.full(4, 0.5, np.float32)}
    assert global_threshold(arrays, 0.3) == 31.0
    pruned = prune(arrays, 0.3)
    assert np.count_nonzero(pruned["w"]) == 70 and np.array_equal(pruned["b"], arrays["b"])
    assert sparsity(pruned) == pytest.approx(0.3)
    assert prune(arrays, 0.0)["w"] is arrays["w"]


@pytest.mark.parametrize("codec", [CodecConfig(32), CodecConfig(8), CodecConfig(4, deflate=True), CodecConfig(32, 0.8, True)])
def test_codec_roundtrip_and_sizes(codec):
    model = build_model(ModelConfig(SMALL, 5, "flocora", rank=2, alpha=32))
    lay, tensors = layout(model), get_communicated(model)
    record = encode(tensors, lay, codec)
    out = decode(record, lay, codec)
    assert list(out) == [n for n, _ in lay]
    if not codec.deflate:
        assert record["payload"].shape == (payload_nbytes(lay, codec.bits),)
    if codec == CodecConfig(32):
        assert all(np.array_equal(out[n], tensors[n]) for n in out)


def _record(blob: np.ndarray) -> ArrayRecord:
    return ArrayRecord({"payload": Array(blob)})


def test_codec_rejects_malformed_payloads():
    model = build_model(ModelConfig(SMALL, 5, "fedavg"))
    lay, codec = layout(model), CodecConfig(32)
    good = encode(get_communicated(model), lay, codec)["payload"].numpy()
    with pytest.raises(MalformedUpdate, match="exactly"):
        decode(_record(good[:-4]), lay, codec)
    with pytest.raises(MalformedUpdate, match="uint8"):
        decode(_record(good.view(np.float32)), lay, codec)
    nan = good.copy()
    nan[:4] = np.frombuffer(np.float32(np.nan).tobytes(), np.uint8)
    with pytest.raises(MalformedUpdate, match="NaN"):
        decode(_record(nan), lay, codec)
    with pytest.raises(MalformedUpdate, match="one array"):
        decode(ArrayRecord({"x": Array(good)}), lay, codec)
    bomb = np.frombuffer(__import__("zlib").compress(bytes(10 * good.size)), np.uint8)
    with pytest.raises(MalformedUpdate, match="inflate"):
        decode(_record(bomb), lay, CodecConfig(32, deflate=True))


@pytest.mark.parametrize("rotation", [False, True])
def test_local_training_updates_only_trainable_tensors(rotation):
    from fl_bridge.local import LocalConfig, train_local
    from train.checkpoint import Preprocessing

    model = build_model(ModelConfig(SMALL, 3, "flocora", rank=2, alpha=32, rotation=rotation))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (12, 3, 16, 16), dtype=np.uint8)
    loss = train_local(model, images, rng.integers(0, 3, 12), Preprocessing(16, 16), LocalConfig(batch_size=4, seed=1))
    assert np.isfinite(loss)
    after = model.state_dict()
    frozen = {n for n, p in model.named_parameters() if not p.requires_grad}
    assert all(torch.equal(before[n], after[n]) for n in frozen)
    assert not torch.equal(before["classifier.weight"], after["classifier.weight"])
    if rotation:
        assert not torch.equal(before["rotation.weight"], after["rotation.weight"])


@pytest.mark.parametrize("rank,alpha", [(1, 16.0), (4, 64.0), (8, 128.0), (8, 8.0)])
def test_lora_update_is_alpha_over_rank_times_b_of_a(rank, alpha):
    """FLoCoRA: W x + (alpha / r) B(A(x)), A with the base's kernel/stride/padding, B a 1x1 conv
    initialised to zero; checked against convolutions written out here."""
    from torch.nn import functional as F

    torch.manual_seed(rank)
    base = torch.nn.Conv2d(6, 10, 3, stride=2, padding=1, bias=False)
    lora = LoRAConv2d(base, rank=rank, alpha=alpha)
    assert lora.lora_A.weight.shape == (rank, 6, 3, 3) and lora.lora_B.weight.shape == (10, rank, 1, 1)
    assert not lora.lora_B.weight.any() and lora.lora_A.weight.abs().sum() > 0
    assert not lora.base.weight.requires_grad and lora.lora_A.weight.requires_grad and lora.lora_B.weight.requires_grad
    torch.nn.init.normal_(lora.lora_B.weight)
    x = torch.randn(2, 6, 9, 9)
    update = F.conv2d(F.conv2d(x, lora.lora_A.weight, stride=2, padding=1), lora.lora_B.weight)
    with torch.no_grad():
        assert torch.allclose(lora(x), F.conv2d(x, base.weight, stride=2, padding=1) + alpha / rank * update,
                              atol=1e-4, rtol=1e-4)


def test_node_sampling_keeps_uint64_node_ids_exact():
    """Flower's node ids fill 64 unsigned bits; a drawn id must be one of the connected ids
    (ids above 2^63 went through float64 once and the SuperLink refused the rounded id)."""
    nodes = [9209582696318995659, 17101359196524201983, 4801335408223349565]
    for server_round in range(1, 6):
        picked = sample_nodes(nodes, 2, 0, server_round)
        assert len(set(picked)) == 2 and set(picked) <= set(nodes)
    assert sample_nodes(nodes, 5, 0, 1) == sorted(nodes)
    assert sample_nodes(nodes, 2, 0, 3) == sample_nodes(nodes, 2, 0, 3)


def test_a_run_folder_accepts_changes_only_in_settings_its_method_never_reads(tmp_path):
    """RunDir.start refuses another run's settings, but not those of another method's block."""
    from fl_bridge.config import RunConfig
    from fl_bridge.rundir import RunDir

    run = RunDir(tmp_path / "run")
    fedavg = RunConfig(out=str(tmp_path / "run"), method="fedavg")
    run.start(fedavg)
    for other in ({"rank": 4}, {"eta_schedule": "1:5"}, {"int8_momentum": 8}, {"mpq_budgets": "4"},
                  {"halo_fpga_mhz": 125.0}, {"rounds": 3}):
        run.start(RunConfig(**{**fedavg.to_dict(), **other}))
    with pytest.raises(FLError, match="other settings"):
        run.start(RunConfig(**{**fedavg.to_dict(), "lr": 0.5}))
    qfed = RunDir(tmp_path / "qfed")
    qfed.start(RunConfig(out=str(tmp_path / "qfed"), method="q-fedupdate"))
    with pytest.raises(FLError, match="eta_schedule"):
        qfed.start(RunConfig(out=str(tmp_path / "qfed"), method="q-fedupdate", eta_schedule="1:5"))
