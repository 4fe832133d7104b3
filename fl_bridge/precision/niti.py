"""An exact integer training engine in the style of NITI, for validating low-precision numerics
on small layers (bias-free linear layers and ReLU; it is not used by the federated clients).

Every tensor is an `IntTensor`: int64 integer values and one power-of-two exponent. Products of
INT8 tensors accumulate exactly (in int64, or in float64 below 2^53 for speed, checked), and are
brought back to `bits` by `requantize`: the exponent rule of `Pow2Quantizer` (smallest shift that
fits the largest magnitude in +-qmax) and an integer shift with rounding (`rounding.shift_round`).
The weight update is Q-FedUpdate's Eq. 2: `w -= round(g >> (ceil(log2 max|g|) - eta))`,
saturating at +-qmax; the gradient's own exponent does not matter (only its shape of bits).
With round-to-nearest everywhere, the fake-quantized float engine (`fakequant`, `optim.NITIUpdate`)
computes the same integers (tests check both against plain integer arithmetic).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

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


def matmul(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Exact integer a @ b (int64 in, int64 out), through float64 when the bound allows."""
    if not (a.numel() and b.numel()):
        return a @ b
    if int(a.abs().max()) * int(b.abs().max()) * a.shape[-1] < EXACT_FLOAT64:
        return (a.to(torch.float64) @ b.to(torch.float64)).to(torch.int64)
    return a @ b


def linear(x: IntTensor, w: IntTensor) -> IntTensor:
    """x (batch, in) times w (out, in)^T: an accumulator with exponent e_x + e_w."""
    return IntTensor(matmul(x.values, w.values.T), x.exponent + w.exponent)


def linear_backward(err: IntTensor, x: IntTensor, w: IntTensor) -> tuple[IntTensor, IntTensor]:
    """(error w.r.t. the input, weight gradient), both accumulators."""
    return (IntTensor(matmul(err.values, w.values), err.exponent + w.exponent),
            IntTensor(matmul(err.values.T, x.values), err.exponent + x.exponent))


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


@dataclass
class IntMLP:
    """Bias-free linear layers with ReLU between them, weights as `IntTensor`s."""

    weights: list[IntTensor]
    bits: int = 8
    act_rounding: Rounding = Rounding.NEAREST
    error_rounding: Rounding = Rounding.STOCHASTIC
    grad_rounding: Rounding = Rounding.STOCHASTIC

    def step(self, x: torch.Tensor, output_error: torch.Tensor, eta: int,
             generator: torch.Generator | None = None) -> IntTensor:
        """One training step: forward on float input `x`, backward from the float error at the
        output (quantized to `bits`), Eq. 2 updates. Returns the output accumulator."""
        inputs, outs = [], []
        a = quantize(x, self.bits)
        for i, w in enumerate(self.weights):
            inputs.append(a)
            acc = linear(a, w)
            outs.append(acc)
            if i + 1 < len(self.weights):
                a = requantize(relu(acc), self.bits, self.act_rounding, generator)
        err = quantize(output_error, self.bits, self.error_rounding, generator)
        grads: list[IntTensor] = [err] * len(self.weights)
        for i in reversed(range(len(self.weights))):
            gx, gw = linear_backward(err, inputs[i], self.weights[i])
            grads[i] = gw
            if i > 0:
                err = requantize(relu_backward(gx, outs[i - 1]), self.bits, self.error_rounding, generator)
        self.weights = [niti_update(w, g, eta, self.grad_rounding, generator, self.bits)
                        for w, g in zip(self.weights, grads)]
        return outs[-1]
