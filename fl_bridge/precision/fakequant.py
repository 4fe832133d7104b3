"""Fake quantization for training: values are rounded onto a power-of-two integer grid in the
forward (weights, activations) or backward (errors) pass, as autograd functions with
straight-through estimators, and a context manager that installs them on every conv/linear layer
of a model without changing its parameters or state-dict names.

* `FakeQuantW`: forward = the quantized weight, backward = the gradient unchanged (STE).
* `FakeQuantA`: forward = the quantized activation (per-tensor exponent from this batch, or a
  fixed one), backward = the gradient where the input was inside the representable range, 0 where
  it saturated (clipped STE).
* `FakeQuantE`: forward = identity, backward = the incoming error (gradient w.r.t. the layer's
  output) quantized with its own per-tensor exponent, stochastic rounding by default (NITI / WAGE).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils import parametrize

from fl_bridge.precision.quantizers import Pow2Quantizer
from fl_bridge.precision.rounding import Rounding


class FakeQuantW(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, quantizer: Pow2Quantizer, generator: torch.Generator | None = None):
        return quantizer.fake(w, generator=generator)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return grad, None, None


class FakeQuantA(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, quantizer: Pow2Quantizer, exponent: int | None = None,
                generator: torch.Generator | None = None):
        codes, e = quantizer.quantize(x, exponent, generator)
        ctx.save_for_backward(x.abs() <= quantizer.qmax * 2.0**e)
        return quantizer.dequantize(codes, e)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        (inside,) = ctx.saved_tensors
        return grad * inside, None, None, None


class FakeQuantE(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, quantizer: Pow2Quantizer, generator: torch.Generator | None = None):
        ctx.quantizer, ctx.generator = quantizer, generator
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return ctx.quantizer.fake(grad, generator=ctx.generator), None, None


def fake_quant_w(w: torch.Tensor, quantizer: Pow2Quantizer, generator: torch.Generator | None = None) -> torch.Tensor:
    return FakeQuantW.apply(w, quantizer, generator)


def fake_quant_a(x: torch.Tensor, quantizer: Pow2Quantizer, exponent: int | None = None,
                 generator: torch.Generator | None = None) -> torch.Tensor:
    return FakeQuantA.apply(x, quantizer, exponent, generator)


def fake_quant_e(x: torch.Tensor, quantizer: Pow2Quantizer, generator: torch.Generator | None = None) -> torch.Tensor:
    return FakeQuantE.apply(x, quantizer, generator)


@dataclass(frozen=True)
class LayerPrecision:
    """Bits of the fake-quantized tensors of every conv/linear layer (None = left in float).

    `weight_bits=None` means the weights are already stored on their grid (the optimiser keeps
    them there), so the forward pass uses them as they are.
    """

    weight_bits: int | None = None
    act_bits: int | None = 8
    error_bits: int | None = 8
    act_rounding: Rounding = Rounding.NEAREST
    error_rounding: Rounding = Rounding.STOCHASTIC
    weight_rounding: Rounding = Rounding.NEAREST


class _QuantW(nn.Module):
    def __init__(self, quantizer: Pow2Quantizer, generator: torch.Generator | None):
        super().__init__()
        self.quantizer, self.generator = quantizer, generator

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return fake_quant_w(w, self.quantizer, self.generator)


def quantized_layers(model: nn.Module) -> list[tuple[str, nn.Module]]:
    return [(n, m) for n, m in model.named_modules() if isinstance(m, (nn.Conv2d, nn.Linear))]


@contextlib.contextmanager
def fake_quantized(model: nn.Module, precision: LayerPrecision, generator: torch.Generator | None = None,
                   errors: bool = True) -> Iterator[nn.Module]:
    """Inside the block every conv/linear layer of `model` quantizes its input (activation), its
    weight (when `weight_bits` is set) and, when `errors`, the error at its output in backward.
    Parameters, their identity and the state-dict names are unchanged after the block."""
    act = Pow2Quantizer(precision.act_bits, precision.act_rounding) if precision.act_bits else None
    err = Pow2Quantizer(precision.error_bits, precision.error_rounding) if precision.error_bits and errors else None
    wq = Pow2Quantizer(precision.weight_bits, precision.weight_rounding) if precision.weight_bits else None
    handles, parametrized = [], []  # parametrized: (layer, its parameter names in order)
    try:
        for _, layer in quantized_layers(model):
            if act is not None:
                handles.append(layer.register_forward_pre_hook(
                    lambda m, args, q=act: (fake_quant_a(args[0], q, None, generator), *args[1:])))
            if err is not None:
                handles.append(layer.register_forward_hook(lambda m, args, out, q=err: fake_quant_e(out, q, generator)))
            if wq is not None:
                parametrized.append((layer, list(layer._parameters)))
                parametrize.register_parametrization(layer, "weight", _QuantW(wq, generator), unsafe=True)
        yield model
    finally:
        for h in handles:
            h.remove()
        for layer, order in parametrized:
            parametrize.remove_parametrizations(layer, "weight", leave_parametrized=False)
            layer._parameters = {k: layer._parameters[k] for k in order}  # state-dict order as before
