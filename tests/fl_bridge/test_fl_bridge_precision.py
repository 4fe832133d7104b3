"""The low-precision core (fl_bridge/precision): quantizers, rounding, fake quantization with
straight-through estimators, grid optimisers, the exact integer engine, the power-of-two codec
and bit accounting, and the erasure of small updates by Q-FedAvg that Q-FedUpdate avoids."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from fl_bridge.codec import CodecConfig, decode, encode, payload_nbytes
from fl_bridge.errors import MalformedUpdate
from fl_bridge.precision import niti
from fl_bridge.precision.accounting import message_bits
from fl_bridge.precision.fakequant import (LayerPrecision, fake_quant_a, fake_quant_e, fake_quant_w,
                                           fake_quantized)
from fl_bridge.precision.engine import eta_for_round, parse_eta_schedule
from fl_bridge.precision.optim import GridSGD, NITIUpdate, grid_exponent
from fl_bridge.precision.quantizers import AffineQuantizer, Pow2Quantizer, pow2_exponent
from fl_bridge.precision.rounding import Rounding, shift_round, stochastic_round
from fl_bridge.precision.server import apply_update, broadcast_values, update_statistics

POW2 = CodecConfig(8, scale="pow2")


def on_grid(x: torch.Tensor, exponent: int, qmax: int = 127) -> bool:
    codes = x.double() * 2.0 ** (-exponent)
    return bool(torch.equal(codes, torch.round(codes)) and codes.abs().max() <= qmax)


@pytest.mark.parametrize("bits", [8, 4, 2])
def test_pow2_quantizer_round_trip_exponent_and_saturation(bits):
    q = Pow2Quantizer(bits)
    x = torch.randn(64, dtype=torch.float64) * 3
    codes, e = q.quantize(x)
    m = float(x.abs().max())
    assert m <= q.qmax * 2.0**e and m > q.qmax * 2.0 ** (e - 1)  # the smallest step that holds max|x|
    assert codes.abs().max() <= q.qmax and torch.equal(codes, torch.round(codes))
    assert (q.dequantize(codes, e) - x).abs().max() <= 2.0**e / 2
    assert torch.equal(q.fake(q.dequantize(codes, e)), q.dequantize(codes, e))  # on-grid values are fixed points
    assert pow2_exponent(127.0 * 2**-5, 8) == -5 and pow2_exponent(127.0 * 2**-5 * 1.0001, 8) == -4
    sat, _ = q.quantize(torch.tensor([100.0, -100.0, 0.2]), exponent=-3)  # a fixed exponent saturates
    assert sat.tolist() == [q.qmax, -q.qmax, min(2, q.qmax)]


def test_affine_quantizer_round_trip_and_saturation():
    q = AffineQuantizer(8)
    x = torch.linspace(-1.0, 3.0, 101)
    scale, zero = q.params(torch.tensor(-1.0), torch.tensor(3.0))
    assert float(scale) == pytest.approx(4 / 255)
    assert (q.fake(x, torch.tensor(-1.0), torch.tensor(3.0)) - x).abs().max() <= float(scale) / 2 + 1e-6
    codes = q.quantize(torch.tensor([-50.0, 50.0]), scale, zero)
    assert codes.tolist() == [-128, 127]  # saturation at the ends of the clipping range
    per_channel = q.fake(torch.tensor([[0.5, -0.5], [8.0, 2.0]]), torch.tensor([[-0.5], [0.0]]),
                         torch.tensor([[0.5], [8.0]]))
    assert torch.allclose(per_channel, torch.tensor([[0.5, -0.5], [8.0, 2.0]]), atol=8 / 255)


def test_stochastic_rounding_is_unbiased_and_seeded():
    x = torch.tensor([0.3, -0.3, 2.75, -7.5, 5.0], dtype=torch.float64).repeat(40000, 1)
    r = stochastic_round(x, torch.Generator().manual_seed(1))
    assert torch.equal(r, torch.round(r)) and ((r - x).abs() < 1).all()
    assert torch.allclose(r.mean(0), x[0], atol=0.01)
    assert (r[:, 4] == 5).all()  # integers are never moved
    assert torch.equal(r, stochastic_round(x, torch.Generator().manual_seed(1)))
    assert not torch.equal(r, stochastic_round(x, torch.Generator().manual_seed(2)))
    a = torch.tensor([13, -13, 6, -6, 1000], dtype=torch.int64).repeat(40000, 1)
    s = shift_round(a, 2, Rounding.STOCHASTIC, torch.Generator().manual_seed(0))
    assert torch.allclose(s.double().mean(0), a[0].double() / 4, atol=0.01)
    assert shift_round(a[0], 2, Rounding.NEAREST).tolist() == [3, -3, 2, -2, 250]  # half away from zero
    assert shift_round(a[0], -1, Rounding.NEAREST).tolist() == [26, -26, 12, -12, 2000]


def test_fake_quant_functions_and_straight_through_estimators():
    q = Pow2Quantizer(8)
    w = torch.randn(5, 7, requires_grad=True)
    fake_quant_w(w, q).pow(2).sum().backward()
    assert torch.allclose(w.grad, 2 * q.fake(w.detach()))  # STE: d/dw of w_q^2 taken as 2 w_q
    x = torch.tensor([0.5, -3.0, 20.0, 0.01], requires_grad=True)
    y = fake_quant_a(x, q, exponent=-4)  # range +-127/16 = 7.94: 20 saturates
    y.sum().backward()
    assert y.tolist() == [0.5, -3.0, 127 / 16, 0.0] and x.grad.tolist() == [1.0, 1.0, 0.0, 1.0]
    e = torch.randn(3, 4, requires_grad=True)
    g = torch.randn(3, 4) * 1e-3
    out = fake_quant_e(e, q, torch.Generator().manual_seed(0))
    assert torch.equal(out, e)
    out.backward(g)
    assert on_grid(e.grad, q.exponent(g)) and not torch.equal(e.grad, g)
    assert (e.grad - g).abs().max() <= 2.0 ** q.exponent(g)


def test_fake_quantized_block_quantizes_and_leaves_the_model_unchanged():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    before = {k: v.clone() for k, v in model.state_dict().items()}
    params = list(model.parameters())
    x = torch.randn(2, 3, 8, 8)
    seen = []
    model[2].register_forward_hook(lambda m, a, out: seen.append(a[0].detach()))  # the input forward() got
    with fake_quantized(model, LayerPrecision(weight_bits=4), torch.Generator().manual_seed(0)):
        y = model(x)
        assert torch.equal(model[0].weight, Pow2Quantizer(4).fake(before["0.weight"]))
    assert on_grid(seen[0], Pow2Quantizer(8).exponent(seen[0]))  # the linear layer saw an INT8 input
    assert not torch.allclose(y, model(x))
    assert all(a is b for a, b in zip(model.parameters(), params)) and list(model.state_dict()) == list(before)
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


@pytest.mark.parametrize("make", [lambda p, g: NITIUpdate(p, 3, g), lambda p, g: GridSGD(p, 0.1, g, 0.9, 5e-4)])
def test_grid_optimisers_keep_weights_on_their_integer_grid(make):
    torch.manual_seed(0)
    layer = nn.Linear(16, 8)
    nn.init.zeros_(layer.bias)
    zero = nn.Parameter(torch.zeros(4, 16))  # LoRA B at round 1: the grid of a fresh layer
    with torch.no_grad():
        layer.weight.copy_(Pow2Quantizer(8).fake(layer.weight))
    exponent = grid_exponent(layer.weight, 8)
    opt = make([layer.weight, zero], torch.Generator().manual_seed(0))
    assert opt.exponents[zero] == pow2_exponent(1 / 4, 8)
    start = layer.weight.detach().clone()
    for _ in range(5):
        opt.zero_grad()
        (layer(torch.randn(4, 16)).pow(2).sum() + (zero * torch.randn(4, 16)).sum()).backward()
        if isinstance(opt, NITIUpdate):
            before = layer.weight.detach().clone()
            opt.step()
            assert (layer.weight.detach() - before).abs().max() <= 2**3 * 2.0**exponent
        else:
            opt.step()
        assert on_grid(layer.weight.detach(), exponent) and on_grid(zero.detach(), opt.exponents[zero])
    assert not torch.equal(start, layer.weight.detach()) and zero.abs().sum() > 0


def test_eta_schedule_parsing():
    assert parse_eta_schedule("") == [] and parse_eta_schedule(" 11:4, 1:5,16:3 ") == [(1, 5), (11, 4), (16, 3)]
    assert [eta_for_round("3:5,6:4", 2, r) for r in range(1, 8)] == [2, 2, 5, 5, 5, 4, 4]
    for bad in ("0:5", "3:8", "3", "a:b", "3:5,3:4"):
        with pytest.raises(ValueError, match="eta schedule"):
            parse_eta_schedule(bad)


def _grid_param(codes: list[int]) -> nn.Parameter:
    return nn.Parameter(torch.tensor([codes], dtype=torch.float32) * 2.0**-7)  # exponent -7: codes kept


def test_niti_update_integer_momentum_and_weight_decay():
    """NITI's integer momentum m = clip(floor(m * M / 16) + step) and the decay step
    round(codes / 2^d), worked by hand; both off by default (the paper's Eq. 2)."""
    gen = torch.Generator().manual_seed(0)
    p = _grid_param([100, 10, -50, 20])
    opt = NITIUpdate([p], 2, gen, rounding=Rounding.NEAREST, momentum=8)
    assert opt.exponents[p] == -7
    for _ in range(3):  # max |g| = 4 -> shift 0 at eta 2: the step is g; m = 4, 6, 7 / -2, -3, -4 / 1, 1, 1
        p.grad = torch.tensor([[4.0, -2.0, 1.0, 0.0]])
        opt.step()
    assert torch.equal(p.detach() * 2.0**7, torch.tensor([[100.0 - 17, 10 + 9, -50 - 3, 20]]))
    assert torch.equal(opt.state[p]["momentum"], torch.tensor([[7.0, -4, 1, 0]], dtype=torch.float64))
    decayed, plain = _grid_param([100, 10, -50, 20]), _grid_param([100, 10, -50, 20])
    opts = [NITIUpdate([decayed], 2, gen, rounding=Rounding.NEAREST, decay_shift=3), NITIUpdate([plain], 2, gen)]
    for param, o in zip((decayed, plain), opts):
        param.grad = torch.zeros_like(param)
        o.step()
    assert torch.equal(decayed.detach() * 2.0**7, torch.tensor([[100.0 - 13, 10 - 1, -50 + 6, 20 - 3]]))
    assert torch.equal(plain.detach() * 2.0**7, torch.tensor([[100.0, 10, -50, 20]]))
    with pytest.raises(ValueError, match="sixteenths"):
        NITIUpdate([plain], 2, gen, momentum=16)


def _conv_ref(x: np.ndarray, w: np.ndarray, stride: int, padding: int) -> np.ndarray:
    """Cross-correlation by its definition, one output position at a time, in numpy int64."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    kh, kw = w.shape[2:]
    ho, wo = (xp.shape[2] - kh) // stride + 1, (xp.shape[3] - kw) // stride + 1
    out = np.zeros((x.shape[0], w.shape[0], ho, wo), np.int64)
    for i in range(ho):
        for j in range(wo):
            patch = xp[:, :, i * stride : i * stride + kh, j * stride : j * stride + kw]
            out[:, :, i, j] = np.tensordot(patch, w, axes=([1, 2, 3], [1, 2, 3]))
    return out


def _conv_backward_ref(err: np.ndarray, x: np.ndarray, w: np.ndarray, stride: int,
                       padding: int) -> tuple[np.ndarray, np.ndarray]:
    """(input error, weight gradient) of `_conv_ref`: every output position scatters its error."""
    xp = np.pad(x, ((0, 0), (0, 0), (padding, padding), (padding, padding)))
    gxp, gw = np.zeros_like(xp), np.zeros_like(w)
    kh, kw = w.shape[2:]
    for i in range(err.shape[2]):
        for j in range(err.shape[3]):
            rows, cols = slice(i * stride, i * stride + kh), slice(j * stride, j * stride + kw)
            gxp[:, :, rows, cols] += np.tensordot(err[:, :, i, j], w, axes=([1], [0]))
            gw += np.tensordot(err[:, :, i, j], xp[:, :, rows, cols], axes=([0], [0]))
    return gxp[:, :, padding : padding + x.shape[2], padding : padding + x.shape[3]], gw


def _reference_step(weights: list[np.ndarray], x: np.ndarray, err_out: np.ndarray, eta: int,
                    geometry: list[tuple[int, int]] | None = None) -> list[np.ndarray]:
    """One NITI step in plain Python integers (round to nearest, half away from zero). A 4-D
    weight is a convolution with (stride, padding) from `geometry`; a 2-D one a linear layer
    on the flattened input."""
    geometry = geometry or [(1, 0)] * len(weights)

    def forward(i: int, a: np.ndarray) -> np.ndarray:
        w = weights[i]
        return _conv_ref(a, w, *geometry[i]) if w.ndim == 4 else a.reshape(len(a), -1) @ w.T

    def backward(i: int, e: np.ndarray, a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        w = weights[i]
        if w.ndim == 4:
            return _conv_backward_ref(e, a, w, *geometry[i])
        return (e @ w).reshape(a.shape), e.T @ a.reshape(len(a), -1)

    def exp_of(m: int) -> int:  # smallest e with m <= 127 * 2^e
        e = 0
        while m > 127 * 2**e:
            e += 1
        while e > -60 and m <= 127 * 2 ** (e - 1):
            e -= 1
        return e

    def shift(a: np.ndarray, k: int) -> np.ndarray:
        if k <= 0:
            return a * 2 ** (-k)
        return np.sign(a) * ((np.abs(a) + 2 ** (k - 1)) // 2**k)

    def quant(v: np.ndarray) -> np.ndarray:  # float -> codes (exponent irrelevant for the update)
        e = exp_of_float(float(np.abs(v).max()))
        return np.clip(np.sign(v) * np.floor(np.abs(v) * 2.0 ** (-e) + 0.5), -127, 127).astype(np.int64)

    def exp_of_float(m: float) -> int:
        e = 0
        while m > 127 * 2.0**e:
            e += 1
        while m <= 127 * 2.0 ** (e - 1):
            e -= 1
        return e

    def requant(acc: np.ndarray) -> np.ndarray:
        k = exp_of(int(np.abs(acc).max()))
        return acc if k <= 0 else np.clip(shift(acc, k), -127, 127)

    acts, outs = [quant(x)], []
    for i, w in enumerate(weights):
        outs.append(forward(i, acts[-1]))
        if i + 1 < len(weights):
            acts.append(requant(np.maximum(outs[-1], 0)))
    err, new = quant(err_out), [None] * len(weights)
    for i in reversed(range(len(weights))):
        gx, gw = backward(i, err, acts[i])
        m = int(np.abs(gw).max())
        new[i] = np.clip(weights[i] - shift(gw, (m - 1).bit_length() - eta), -127, 127)
        if i > 0:
            err = requant(np.where(outs[i - 1] > 0, gx, 0))
    return new


def _mlp(seed: int) -> tuple[list[niti.IntTensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weights = [niti.IntTensor(torch.randint(-127, 128, (12, 10), generator=g), -7),
               niti.IntTensor(torch.randint(-127, 128, (5, 12), generator=g), -6)]
    return weights, torch.randn(6, 10, generator=g), torch.randn(6, 5, generator=g) * 0.01


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_exact_integer_engine_equals_integer_arithmetic(seed):
    weights, x, err = _mlp(seed)
    mlp = niti.IntNet([niti.IntLinear(w) for w in weights], act_rounding=Rounding.NEAREST,
                      error_rounding=Rounding.NEAREST, grad_rounding=Rounding.NEAREST)
    ref = [w.values.numpy() for w in weights]
    for _ in range(3):
        mlp.step(x, err, eta=4)
        ref = _reference_step(ref, x.double().numpy(), err.double().numpy(), eta=4)
        assert all(np.array_equal(w.values.numpy(), r) for w, r in zip((layer.weight for layer in mlp.layers), ref))
    assert not np.array_equal(ref[0], weights[0].values.numpy())
    big = torch.full((2, 4), 2**40, dtype=torch.int64)  # beyond float64's exact range: int64 path
    assert torch.equal(niti.matmul(big, big.T), big @ big.T)


def test_fake_quant_engine_matches_the_exact_integer_engine_bit_for_bit():
    """The fast engine (fake-quantized float layers + NITIUpdate) and the exact integer engine
    compute the same INT8 weights, with round-to-nearest everywhere."""
    weights, x, err = _mlp(3)
    exact = niti.IntNet([niti.IntLinear(w) for w in weights], act_rounding=Rounding.NEAREST,
                        error_rounding=Rounding.NEAREST, grad_rounding=Rounding.NEAREST)
    model = nn.Sequential(nn.Linear(10, 12, bias=False), nn.ReLU(), nn.Linear(12, 5, bias=False))
    with torch.no_grad():
        for layer, w in zip((model[0], model[2]), weights):
            layer.weight.copy_(w.to_float().float())
    gen = torch.Generator().manual_seed(0)
    opt = NITIUpdate([model[0].weight, model[2].weight], 4, gen, rounding=Rounding.NEAREST)
    precision = LayerPrecision(None, 8, 8, Rounding.NEAREST, Rounding.NEAREST)
    for _ in range(3):
        exact.step(x, err, eta=4)
        with fake_quantized(model, precision, gen):
            opt.zero_grad()
            model(x).backward(err)
            opt.step()
        for layer, w in zip((model[0], model[2]), (layer.weight for layer in exact.layers)):
            assert torch.equal(layer.weight.detach().double(), w.to_float())


CONV_GEOMETRY = [(1, 1), (2, 1), (1, 0)]  # (stride, padding) of conv 3->4, conv 4->6, then linear 96->5


def _convnet(seed: int) -> tuple[list[niti.IntTensor], torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    weights = [niti.IntTensor(torch.randint(-127, 128, (4, 3, 3, 3), generator=g), -7),
               niti.IntTensor(torch.randint(-127, 128, (6, 4, 3, 3), generator=g), -8),
               niti.IntTensor(torch.randint(-127, 128, (5, 96), generator=g), -9)]
    return weights, torch.randn(4, 3, 8, 8, generator=g), torch.randn(4, 5, generator=g) * 0.01


def _int_convnet(weights: list[niti.IntTensor]) -> niti.IntNet:
    layers = [niti.IntConv2d(weights[0], *CONV_GEOMETRY[0]), niti.IntConv2d(weights[1], *CONV_GEOMETRY[1]),
              niti.IntLinear(weights[2])]
    return niti.IntNet(layers, act_rounding=Rounding.NEAREST, error_rounding=Rounding.NEAREST,
                       grad_rounding=Rounding.NEAREST)


@pytest.mark.parametrize("stride,padding", [(1, 0), (1, 1), (2, 1), (2, 0)])
def test_exact_integer_conv2d_equals_integer_arithmetic(stride, padding):
    """Forward, error backward and weight gradient of `niti.conv2d` against convolution by its
    definition in numpy int64, on INT8 codes and on wide accumulators (up to 2^20)."""
    g = torch.Generator().manual_seed(stride * 10 + padding)
    for high in (128, 2**20):
        x = torch.randint(-high + 1, high, (3, 4, 7, 7), generator=g)
        w = torch.randint(-127, 128, (5, 4, 3, 3), generator=g)
        out = niti.conv2d(niti.IntTensor(x, -3), niti.IntTensor(w, -5), stride, padding)
        ref = _conv_ref(x.numpy(), w.numpy(), stride, padding)
        assert out.exponent == -8 and out.values.dtype == torch.int64
        assert np.array_equal(out.values.numpy(), ref)
        err = torch.randint(-127, 128, ref.shape, generator=g)
        gx, gw = niti.conv2d_backward(niti.IntTensor(err, 2), niti.IntTensor(x, -3), niti.IntTensor(w, -5),
                                      stride, padding)
        gx_ref, gw_ref = _conv_backward_ref(err.numpy(), x.numpy(), w.numpy(), stride, padding)
        assert (gx.exponent, gw.exponent) == (-3, -1)
        assert np.array_equal(gx.values.numpy(), gx_ref) and np.array_equal(gw.values.numpy(), gw_ref)
    huge = niti.IntTensor(torch.full((1, 1, 3, 3), 2**26), 0)
    with pytest.raises(ValueError, match="exact range"):
        niti.conv2d(huge, huge)


@pytest.mark.parametrize("seed", [0, 1])
def test_exact_integer_convnet_step_equals_integer_arithmetic(seed):
    weights, x, err = _convnet(seed)
    net = _int_convnet(weights)
    ref = [w.values.numpy() for w in weights]
    for _ in range(3):
        net.step(x, err, eta=4)
        ref = _reference_step(ref, x.double().numpy(), err.double().numpy(), eta=4, geometry=CONV_GEOMETRY)
        assert all(np.array_equal(layer.weight.values.numpy(), r) for layer, r in zip(net.layers, ref))
    assert all(not np.array_equal(r, w.values.numpy()) for r, w in zip(ref, weights))


def test_fake_quant_engine_matches_the_exact_integer_engine_on_convolutions():
    """Agreement of the fast engine (float32 conv/linear layers fake-quantized by hooks,
    NITIUpdate) with the exact one on a conv-conv-linear net: with round-to-nearest for
    activations, errors and the gradient shift, both hold the same INT8 weights bit for bit
    after every step (float32 sums of these integers stay below 2^24, so they are exact). With
    stochastic rounding the two engines draw their random numbers in different orders and agree
    only in distribution (each rounding is unbiased, tested above)."""
    weights, x, err = _convnet(5)
    exact = _int_convnet(weights)
    model = nn.Sequential(nn.Conv2d(3, 4, 3, stride=1, padding=1, bias=False), nn.ReLU(),
                          nn.Conv2d(4, 6, 3, stride=2, padding=1, bias=False), nn.ReLU(), nn.Flatten(),
                          nn.Linear(96, 5, bias=False))
    layers = (model[0], model[2], model[5])
    with torch.no_grad():
        for layer, w in zip(layers, weights):
            layer.weight.copy_(w.to_float().float())
    gen = torch.Generator().manual_seed(0)
    opt = NITIUpdate([layer.weight for layer in layers], 4, gen, rounding=Rounding.NEAREST)
    precision = LayerPrecision(None, 8, 8, Rounding.NEAREST, Rounding.NEAREST)
    for _ in range(4):
        out = exact.step(x, err, eta=4)
        with fake_quantized(model, precision, gen):
            opt.zero_grad()
            y = model(x)
            y.backward(err)
            opt.step()
        assert torch.equal(y.detach().double(), out.to_float())
        for layer, int_layer in zip(layers, exact.layers):
            assert torch.equal(layer.weight.detach().double(), int_layer.weight.to_float())
    assert not torch.equal(layers[0].weight.detach().double(), weights[0].to_float())


def test_pow2_codec_round_trip_size_and_validation():
    rng = np.random.default_rng(0)
    layout = [("w", (6, 5, 3, 3)), ("zero", (4, 2)), ("b", (6,))]
    tensors = {"w": rng.standard_normal((6, 5, 3, 3)).astype(np.float32), "zero": np.zeros((4, 2), np.float32),
               "b": rng.standard_normal(6).astype(np.float32)}
    record = encode(tensors, layout, POW2)
    out = decode(record, layout, POW2)
    e = pow2_exponent(float(np.abs(tensors["w"]).max()), 8)
    assert np.abs(out["w"] - tensors["w"]).max() <= 2.0**e / 2 and np.array_equal(out["b"], tensors["b"])
    assert not out["zero"].any()
    assert np.array_equal(decode(encode(out, layout, POW2), layout, POW2)["w"], out["w"])  # lossless on the grid
    size = payload_nbytes(layout, 8, "pow2")
    assert record["payload"].shape == (size,) and size == 270 + 1 + 8 + 1 + 24
    assert message_bits(layout, POW2).total == 8 * size  # 8-bit codes: no padding
    assert message_bits(layout, CodecConfig(4, scale="pow2")).codes == 4 * 278
    assert message_bits(layout, CodecConfig(8)).scales == 64 * (6 + 4)
    blob = record["payload"].numpy().copy()
    blob[0] = 0  # the code -128: outside the symmetric grid
    from flwr.app import Array, ArrayRecord
    with pytest.raises(MalformedUpdate, match="symmetric"):
        decode(ArrayRecord({"payload": Array(blob)}), layout, POW2)
    with pytest.raises(ValueError, match="scale"):
        CodecConfig(8, scale="log").check()


def test_erasure_qfedavg_never_moves_qfedupdate_moves_within_two_rounds():
    """Every client's update is 0.3 LSB on every weight, 10 identical clients."""
    layout = [("w", (8, 16))]
    rng = np.random.default_rng(0)
    start = {"w": broadcast_values({"w": rng.standard_normal((8, 16)).astype(np.float32)}, layout, POW2)["w"]}
    step = 2.0 ** pow2_exponent(float(np.abs(start["w"]).max()), 8)
    moved, final = {}, {}
    for error_feedback in (False, True):
        master, history = dict(start), []
        for _ in range(6):
            sent = broadcast_values(master, layout, POW2)
            clients = [{"w": sent["w"] - 0.3 * step} for _ in range(10)]
            averaged = {"w": np.mean([c["w"] for c in clients], axis=0)}
            master = apply_update(master, sent, averaged, error_feedback)
            stats = update_statistics(layout, POW2, sent, averaged, broadcast_values(master, layout, POW2))
            history.append(stats["broadcast_changed_fraction"])
            assert stats["effective_update_fraction"] == 0.0  # 0.3 LSB < LSB / 2: never "effective"
        moved[error_feedback], final[error_feedback] = history, master["w"]
    assert moved[False] == [0.0] * 6  # Q-FedAvg: the average rounds back to the old model for ever
    assert moved[True][0] == 0.0 and moved[True][1] == 1.0  # Q-FedUpdate: -0.6 LSB crosses in round 2
    assert np.array_equal(broadcast_values({"w": final[False]}, layout, POW2)["w"], start["w"])
    assert np.allclose(final[True] - start["w"], -1.8 * step, atol=1e-4 * step)  # nothing lost: 6 x 0.3 LSB
