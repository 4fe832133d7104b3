"""The shared low-precision training core of fl_bridge (Q-FedUpdate today; HaLo-FL and FedMPQ
are meant to build on it). Every module is torch/numpy only and has no federation state:

| module | what |
|---|---|
| `rounding` | round-to-nearest, seeded stochastic rounding, integer right shift with either |
| `quantizers` | `Pow2Quantizer` (symmetric, power-of-two per-tensor step), `AffineQuantizer`; both saturate |
| `fakequant` | `FakeQuantW/A/E` autograd functions (STE), `fake_quantized(model, LayerPrecision)` hooks |
| `optim` | `NITIUpdate`, `GridSGD`: steps that keep weights on their integer grid; `grid_exponent` |
| `engine` | `Int8Training`: the INT8 client engine (optimiser + layer precision) of Q-FedUpdate |
| `niti` | an exact integer (NITI-style) engine for small linear and conv2d layers, for validation |
| `server` | broadcast quantizer, Q-FedUpdate's FP32 master update, effective-update statistics |
| `accounting` | bits of a message from its layout and codec, per direction and round |
| `timing` | the modelled CPU/accelerator pipelining of batch quantization |

`server` and `accounting` use the message codec (`fl_bridge.codec`); import them by module.
"""

from fl_bridge.precision.fakequant import FakeQuantA, FakeQuantE, FakeQuantW, LayerPrecision, fake_quantized
from fl_bridge.precision.optim import GridSGD, NITIUpdate, Optimizers, grid_exponent
from fl_bridge.precision.quantizers import AffineQuantizer, Pow2Quantizer, pow2_exponent
from fl_bridge.precision.rounding import Rounding, round_nearest, shift_round, stochastic_round

__all__ = ["AffineQuantizer", "FakeQuantA", "FakeQuantE", "FakeQuantW", "GridSGD", "LayerPrecision", "NITIUpdate",
           "Optimizers", "Pow2Quantizer", "Rounding", "fake_quantized", "grid_exponent", "pow2_exponent",
           "round_nearest", "shift_round", "stochastic_round"]
