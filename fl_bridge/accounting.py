"""Communication accounting: the thesis's analytic message size and TCC (Eq. 16) from a model's
structure, to put side by side with the bytes measured on serialised messages.

Counted as in the thesis (section 2.6 of the research note): for each conv, an adapted one costs
r(Cin k^2 + Cout) parameters and r + Cout (scale, zero) slices, a fully trained one Cout Cin k^2
and Cout slices; linear weights are quantised per output row; 1-D tensors (norm affine, biases)
stay float32. `bits(b) = b * quantised + 64 * slices + 32 * fp32`. BatchNorm running statistics
are not in the thesis's count (its models use GroupNorm); they are reported as `buffers`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from torch import nn

from fl_bridge.lora import stem_name


@dataclass(frozen=True)
class MessageCount:
    """Parameter counts of one message of a plain (adapter-free) model."""

    base: int  # parameters of the plain model
    trained: int  # parameters communicated (thesis "Trained")
    quantised: int  # of which in tensors with ndim > 1
    slices: int  # dim-0 slices of those tensors (one scale + one zero each)
    fp32: int  # 1-D parameters, always float32
    buffers: int  # floating-point buffers (BatchNorm statistics), float32
    peft_total: int  # thesis "Total": base + adapters + a second copy of the fully trained set

    def bits(self, bits: int = 32, with_buffers: bool = False) -> int:
        extra = 32 * self.buffers if with_buffers else 0
        if bits == 32:
            return 32 * self.trained + extra
        return bits * self.quantised + 64 * self.slices + 32 * self.fp32 + extra

    def nbytes(self, bits: int = 32, with_buffers: bool = False) -> int:
        return self.bits(bits, with_buffers) // 8

    def tcc_bytes(self, rounds: int, bits: int = 32) -> int:
        """Total communication cost of Eq. 16: one download and one upload per round."""
        return 2 * rounds * self.nbytes(bits)

    def to_dict(self) -> dict:
        return asdict(self)


def count_message(model: nn.Module, rank: int | None, adapt_stem: bool = False) -> MessageCount:
    """Count a message of `model` (plain) for FedAvg (`rank=None`) or FLoCoRA at `rank`."""
    stem = stem_name(model)
    base = sum(p.numel() for p in model.parameters())
    lora = quantised = slices = fp32 = full = 0
    for name, m in model.named_modules():
        if isinstance(m, nn.Conv2d):
            cout, cin, kh, kw = m.weight.shape
            if rank is not None and (adapt_stem or name != stem):
                lora += rank * (cin * kh * kw + cout)
                slices += rank + cout
            else:
                full += m.weight.numel()
                slices += cout
            if m.bias is not None:
                fp32 += m.bias.numel()
        elif isinstance(m, nn.Linear):
            full += m.weight.numel()
            slices += m.out_features
            fp32 += 0 if m.bias is None else m.bias.numel()
        elif isinstance(m, (nn.BatchNorm2d, nn.GroupNorm)) and m.weight is not None:
            fp32 += m.weight.numel() + m.bias.numel()
    quantised = lora + full
    trained = quantised + fp32
    buffers = sum(b.numel() for b in model.buffers() if b.is_floating_point())
    peft_total = base + lora + (trained - lora if rank is not None else 0)
    return MessageCount(base, trained, quantised, slices, fp32, buffers, peft_total)
