"""An exact integer training engine in the style of NITI, for validating low-precision numerics
on small layers (bias-free linear and 2-D convolution layers with ReLU between them; it is not
used by the federated clients).

Every tensor is an `IntTensor`: int64 integer values and one power-of-two exponent. Products of
INT8 tensors accumulate exactly: a matrix product in int64 (or in float64 below 2^53 for speed,
checked), a convolution and its two backward products in float64, refused (ValueError) when the
bound max|a| * max|b| * terms could leave float64's exact integers. Accumulators are brought back
to `bits` by `requantize`: the exponent rule of `Pow2Quantizer` (smallest shift that fits the
largest magnitude in +-qmax) and an integer shift with rounding (`rounding.shift_round`).
The weight update is Q-FedUpdate's Eq. 2: `w -= round(g >> (ceil(log2 max|g|) - eta))`,
saturating at +-qmax; the gradient's own exponent does not matter (only its shape of bits).
With round-to-nearest everywhere, the fake-quantized float engine (`fakequant`, `optim.NITIUpdate`)
computes the same integers (tests check both against plain integer arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import torch
from torch.nn import functional as F
from torch.nn import grad as nn_grad

from fl_bridge.precision.quantizers import Pow2Quantizer, pow2_exponent, pow2_qmax
from fl_bridge.precision.rounding import Rounding, shift_round

EXACT_FLOAT64 = 2**53


@dataclass(frozen=True)
class IntTensor:
    values: torch.Tensor  # int64
    exponent: int

    def to_float(self) -> torch.Tensor:
        return self.values.to(torch.float64) * 2.0**self.exponent

    @property
    def max_abs(self) -> int:
        return int(self.values.abs().max()) if self.values.numel() else 0


def quantize(x: torch.Tensor, bits: int = 8, rounding: Rounding = Rounding.NEAREST,
             generator: torch.Generator | None = None) -> IntTensor:
    """A float tensor onto its power-of-two grid (per-tensor exponent, `Pow2Quantizer`)."""
    codes, e = Pow2Quantizer(bits, rounding).quantize(x.to(torch.float64), generator=generator)
    return IntTensor(codes.to(torch.int64), e)


def requantize(acc: IntTensor, bits: int, rounding: Rounding, generator: torch.Generator | None = None) -> IntTensor:
    """An accumulator back to `bits` (shift right by the smallest k that fits, then saturate)."""
    k = pow2_exponent(float(acc.max_abs), bits)
    if k <= 0:
        return acc
    q = pow2_qmax(bits)
    return IntTensor(shift_round(acc.values, k, rounding, generator).clamp_(-q, q), acc.exponent + k)


def _max_abs(t: torch.Tensor) -> int:
    return int(t.abs().max()) if t.numel() else 0


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact integer a @ b (int64 in, int64 out), through float64 when the bound allows."""
    if not (a.numel() and b.numel()):
        return a @ b
    if _max_abs(a) * _max_abs(b) * a.shape[-1] < EXACT_FLOAT64:
        return (a.to(torch.float64) @ b.to(torch.float64)).to(torch.int64)
    return a @ b


def _exact_float64(a: torch.Tensor, b: torch.Tensor, terms: int, what: str) -> None:
    if _max_abs(a) * _max_abs(b) * terms >= EXACT_FLOAT64:
        raise ValueError(f"{what}: integer products may exceed float64's exact range (2^53); "
                         "requantize the operands first")


def linear(x: IntTensor, w: IntTensor) -> IntTensor:
    """x (batch, in) times w (out, in)^T: an accumulator with exponent e_x + e_w."""
    return IntTensor(matmul(x.values, w.values.T), x.exponent + w.exponent)


def linear_backward(err: IntTensor, x: IntTensor, w: IntTensor) -> tuple[IntTensor, IntTensor]:
    """(error w.r.t. the input, weight gradient), both accumulators."""
    return (IntTensor(matmul(err.values, w.values), err.exponent + w.exponent),
            IntTensor(matmul(err.values.T, x.values), err.exponent + x.exponent))


def conv2d(x: IntTensor, w: IntTensor, stride: int = 1, padding: int = 0) -> IntTensor:
    """x (N, C, H, W) convolved (cross-correlation, zero padding) with w (O, C, kh, kw): an
    accumulator (N, O, Ho, Wo) with exponent e_x + e_w."""
    _exact_float64(x.values, w.values, w.values[0].numel(), "conv2d")
    acc = F.conv2d(x.values.to(torch.float64), w.values.to(torch.float64), stride=stride, padding=padding)
    return IntTensor(acc.to(torch.int64), x.exponent + w.exponent)


def conv2d_backward(err: IntTensor, x: IntTensor, w: IntTensor, stride: int = 1,
                    padding: int = 0) -> tuple[IntTensor, IntTensor]:
    """(error w.r.t. the input (N, C, H, W), weight gradient (O, C, kh, kw)), both accumulators,
    from the error `err` (N, O, Ho, Wo) at the convolution's output."""
    o, _, kh, kw = w.values.shape
    _exact_float64(err.values, w.values, o * kh * kw, "conv2d error backward")
    _exact_float64(err.values, x.values, err.values.shape[0] * err.values[0, 0].numel(), "conv2d weight gradient")
    e, xv, wv = err.values.to(torch.float64), x.values.to(torch.float64), w.values.to(torch.float64)
    gx = nn_grad.conv2d_input(tuple(xv.shape), wv, e, stride=stride, padding=padding)
    gw = nn_grad.conv2d_weight(xv, tuple(wv.shape), e, stride=stride, padding=padding)
    return (IntTensor(gx.to(torch.int64), err.exponent + w.exponent),
            IntTensor(gw.to(torch.int64), err.exponent + x.exponent))


def relu(x: IntTensor) -> IntTensor:
    return IntTensor(x.values.clamp(min=0), x.exponent)


def relu_backward(err: IntTensor, x: IntTensor) -> IntTensor:
    return IntTensor(torch.where(x.values > 0, err.values, torch.zeros_like(err.values)), err.exponent)


def ceil_log2_int(m: int) -> int:
    return (m - 1).bit_length()


def niti_update(w: IntTensor, grad: IntTensor, eta: int, rounding: Rounding,
                generator: torch.Generator | None = None, bits: int = 8) -> IntTensor:
    """Eq. 2: the gradient shifted to `eta` bits, subtracted from the codes, saturating."""
    if grad.max_abs == 0:
        return w
    step = shift_round(grad.values, ceil_log2_int(grad.max_abs) - eta, rounding, generator)
    q = pow2_qmax(bits)
    return IntTensor((w.values - step).clamp_(-q, q), w.exponent)


@dataclass(frozen=True)
class IntLinear:
    """A bias-free linear layer; a 4-D input is flattened per sample first (as `nn.Flatten`)."""

    weight: IntTensor

    def forward(self, x: IntTensor) -> IntTensor:
        return linear(IntTensor(x.values.flatten(1), x.exponent), self.weight)

    def backward(self, err: IntTensor, x: IntTensor) -> tuple[IntTensor, IntTensor]:
        gx, gw = linear_backward(err, IntTensor(x.values.flatten(1), x.exponent), self.weight)
        return IntTensor(gx.values.reshape(x.values.shape), gx.exponent), gw


@dataclass(frozen=True)
class IntConv2d:
    """A bias-free 2-D convolution (square stride and zero padding)."""

    weight: IntTensor
    stride: int = 1
    padding: int = 0

    def forward(self, x: IntTensor) -> IntTensor:
        return conv2d(x, self.weight, self.stride, self.padding)

    def backward(self, err: IntTensor, x: IntTensor) -> tuple[IntTensor, IntTensor]:
        return conv2d_backward(err, x, self.weight, self.stride, self.padding)


IntLayer = IntLinear | IntConv2d


@dataclass
class IntNet:
    """Integer layers with ReLU after every layer but the last; activations and errors are
    requantized to `bits` between layers, the output stays an accumulator."""

    layers: list[IntLayer]
    bits: int = 8
    act_rounding: Rounding = Rounding.NEAREST
    error_rounding: Rounding = Rounding.STOCHASTIC
    grad_rounding: Rounding = Rounding.STOCHASTIC

    def step(self, x: torch.Tensor, output_error: torch.Tensor, eta: int,
             generator: torch.Generator | None = None) -> IntTensor:
        """One training step: forward on float input `x`, backward from the float error at the
        output (quantized to `bits`), Eq. 2 updates of every layer. Returns the output accumulator."""
        inputs, outs = [], []
        a = quantize(x, self.bits)
        for i, layer in enumerate(self.layers):
            inputs.append(a)
            acc = layer.forward(a)
            outs.append(acc)
            if i + 1 < len(self.layers):
                a = requantize(relu(acc), self.bits, self.act_rounding, generator)
        err = quantize(output_error, self.bits, self.error_rounding, generator)
        grads: list[IntTensor] = [err] * len(self.layers)
        for i in reversed(range(len(self.layers))):
            gx, grads[i] = self.layers[i].backward(err, inputs[i])
            if i > 0:
                err = requantize(relu_backward(gx, outs[i - 1]), self.bits, self.error_rounding, generator)
        self.layers = [replace(layer, weight=niti_update(layer.weight, g, eta, self.grad_rounding, generator, self.bits))
                       for layer, g in zip(self.layers, grads)]
        return outs[-1]
