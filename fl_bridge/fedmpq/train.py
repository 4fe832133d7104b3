"""A FedMPQ client's local training: every conv/linear weight runs as its fixed-point layer (its
bits and step fixed for the round, from the message), with the bit-plane group lasso, then MSB
pruning.

The client keeps a float latent copy of each weight during its round (quantization-aware training
with a straight-through estimator, as for the AQFL and FPQ8 baselines), not the paper's integer
update (Eq. 6-10); what it receives and sends are the fixed-point codes. Forward: `step * clamp(
round(w / step))`. Backward: the task gradient unchanged (STE) plus the group lasso's gradient
(Eq. 11-12, weight lambda * M_l / M per layer). The lasso's gradient with respect to plane i of a
layer is B_i / ||B_i||_2 (every element whose bit is set, more strongly in sparse planes); it is
brought to the weight as BSQ's float-plane SGD step would move the weight (sum_i 2^(i-1) B_i /
||B_i||_2 in LSBs, signed by the weight in sign-magnitude), divided by the factor step *
sum_i 4^(i-1) that Eq. 5 puts on the task gradient in plane space, so that lambda keeps the paper's
balance between task and lasso. Activations (every conv/linear input) are fake-quantized to
`act_bits` by the shared core (`precision.fakequant`, per-tensor power-of-two step of the batch).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import numpy as np
import torch
from torch import nn
from torch.nn.utils import parametrize

from fl_bridge.fedmpq.planes import LayerCode, code_range, msb_prune, prunable, quantize
from fl_bridge.precision.fakequant import LayerPrecision, fake_quantized
from fl_bridge.precision.rounding import round_nearest


def lasso(code: LayerCode) -> float:
    """R_GL of one layer: the sum of the L2 norms of its prunable planes (Eq. 11)."""
    return float(np.sqrt(prunable(code).sum(axis=1)).sum())


def lasso_gradient(code: LayerCode) -> np.ndarray:
    """The weight-space gradient of one layer's group lasso (see the module docstring), float64."""
    p = prunable(code).astype(np.float64)
    norms = np.sqrt(p.sum(axis=1, keepdims=True))
    scaled = np.divide(p, norms, out=np.zeros_like(p), where=norms > 0)
    weights = 2.0 ** np.arange(p.shape[0])[:, None]
    lsbs = (weights * scaled).sum(axis=0)
    if code.representation == "sign-magnitude":
        lsbs = lsbs * np.sign(code.codes.reshape(-1))
    return (lsbs / (code.step * float((weights**2).sum()))).reshape(code.codes.shape)


class _PlaneQuant(torch.autograd.Function):
    @staticmethod
    def forward(ctx, w: torch.Tensor, step: float, bits: int, representation: str, weight: float):
        lo, hi = code_range(bits, representation)
        codes = torch.clamp(round_nearest(w.detach() / step), lo, hi)
        ctx.extra = None
        if weight > 0:
            code = LayerCode(codes.to(torch.int64).numpy(), bits, step, representation)
            ctx.extra = weight * torch.from_numpy(lasso_gradient(code)).to(w.dtype)
        return codes * step

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        return (grad if ctx.extra is None else grad + ctx.extra), None, None, None, None


class _Quant(nn.Module):
    def __init__(self, step: float, bits: int, representation: str, weight: float):
        super().__init__()
        self.step, self.bits, self.representation, self.weight = step, bits, representation, weight

    def forward(self, w: torch.Tensor) -> torch.Tensor:
        return _PlaneQuant.apply(w, self.step, self.bits, self.representation, self.weight)


@contextlib.contextmanager
def mixed_precision(model: nn.Module, codes: dict[str, LayerCode], act_bits: int | None,
                    lam: float = 0.0) -> Iterator[nn.Module]:
    """Inside the block each named weight of `codes` runs as its fixed-point layer (its values are
    set to the codes' values first) and every conv/linear input is quantized to `act_bits`; the
    parameters, their identity and the state-dict names are unchanged after the block."""
    total = sum(c.codes.size for c in codes.values())
    done: list[tuple[nn.Module, list[str]]] = []
    try:
        with torch.no_grad():
            for name, code in codes.items():
                module = model.get_submodule(name.rsplit(".", 1)[0])
                module.weight.copy_(torch.from_numpy(code.values()))
        for name, code in codes.items():
            module = model.get_submodule(name.rsplit(".", 1)[0])
            done.append((module, list(module._parameters)))
            weight = lam * code.codes.size / total
            parametrize.register_parametrization(module, "weight", _Quant(code.step, code.bits, code.representation,
                                                                          weight), unsafe=True)
        acts = LayerPrecision(None, act_bits, None) if act_bits else None
        with (fake_quantized(model, acts, errors=False) if acts else contextlib.nullcontext(model)):
            yield model
    finally:
        for module, order in done:
            parametrize.remove_parametrizations(module, "weight", leave_parametrized=False)
            module._parameters = {k: module._parameters[k] for k in order}


def requantize(model: nn.Module, codes: dict[str, LayerCode]) -> dict[str, LayerCode]:
    """The trained latent weights back on each layer's grid (same bits and step)."""
    state = model.state_dict()
    return {name: quantize(state[name].detach().cpu().numpy(), code.bits, code.representation, code.step)
            for name, code in codes.items()}


def prune_all(codes: dict[str, LayerCode], eps: float, b_min: int) -> dict[str, LayerCode]:
    return {n: msb_prune(c, eps, b_min) for n, c in codes.items()}
