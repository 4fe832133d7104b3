"""The thesis's parameter and message-size arithmetic for ResNet-8, and measured bytes."""

from __future__ import annotations

import pytest

from fl_bridge.accounting import count_message
from fl_bridge.codec import CodecConfig, encode, record_nbytes
from fl_bridge.model import ModelConfig, build_model, get_communicated, layout
from train.backbones import BackboneSpec

RESNET8 = BackboneSpec("resnet8", 64, True, 3, 32, "group")


@pytest.fixture(scope="module")
def plain():
    return build_model(ModelConfig(RESNET8, 10, "fedavg"))


# Thesis Table 4 (ResNet-8, CIFAR-10): trained parameters, PEFT total and percentage.
TABLE4 = {8: (69_450, 1_297_044, 5.35), 16: (131_914, 1_359_508, 9.70), 32: (256_842, 1_484_436, 17.30),
          64: (506_698, 1_734_292, 29.22), 128: (1_006_410, 2_234_004, 45.05)}


def test_fedavg_resnet8_counts(plain):
    c = count_message(plain, None)
    assert c.trained == c.peft_total == 1_227_594
    assert c.nbytes() == 4_910_376
    assert c.tcc_bytes(100) == 982_075_200  # 982.08 MB (Table 6/7)


@pytest.mark.parametrize("rank", sorted(TABLE4))
def test_table4_flocora_counts(plain, rank):
    trained, total, pct = TABLE4[rank]
    c = count_message(plain, rank)
    assert (c.trained, c.peft_total) == (trained, total)
    assert round(100 * c.trained / c.peft_total, 2) == pct


def test_table7_quantised_messages(plain):
    c = count_message(plain, 32)
    assert [c.nbytes(b) for b in (32, 8, 4, 2)] == [1_027_368, 277_816, 150_744, 87_208]
    assert [round(c.tcc_bytes(100, b) / 1e6, 2) for b in (8, 4, 2)] == [55.56, 30.15, 17.44]
    fedavg = count_message(build_model(ModelConfig(RESNET8, 10, "fedavg")), None).tcc_bytes(100)
    assert [round(fedavg / c.tcc_bytes(100, b), 1) for b in (8, 4, 2)] == [17.7, 32.6, 56.3]


def test_table8_resnet18_messages():
    r18 = build_model(ModelConfig(BackboneSpec("resnet18", 64, True, 3, 32, "group"), 10, "fedavg"))
    assert count_message(r18, None).base == 11_173_962
    sizes = {(r, b): count_message(r18, r).nbytes(b) / 1e6 for r in (64, 32, 16) for b in (32, 8)}
    assert [round(sizes[(r, 32)], 3) for r in (64, 32, 16)] == [9.208, 4.637, 2.351]
    assert [round(sizes[(r, 8)], 3) for r in (64, 32, 16)] == [2.379, 1.231, 0.658]


@pytest.mark.parametrize("method,bits", [("fedavg", 32), ("flocora", 32), ("flocora", 8), ("flocora", 4), ("flocora", 2)])
def test_measured_bytes_within_one_percent_of_formula(plain, method, bits):
    cfg = ModelConfig(RESNET8, 10, method, rank=32, alpha=512)
    model = build_model(cfg)
    measured = record_nbytes(encode(get_communicated(model), layout(model), CodecConfig(bits)))
    formula = count_message(plain, 32 if method == "flocora" else None).nbytes(bits)
    assert formula <= measured <= 1.01 * formula
