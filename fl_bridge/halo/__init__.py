"""HaLo-FL (hardware-aware low-precision federated learning): every client trains with its own
precision (bw, ba, be) of weights, activations and errors, chosen step by step by the greedy
selector HaLo-PS under the client's hardware constraint (energy, latency or area) as a cost
model predicts it.

| module | what |
|---|---|
| `costs` | `Costs`, `CostModel`; `HaLoSimSurrogate` (fitted to the paper's Table II), `StructuralCrossbar` |
| `fpga` | `FPGACost`: the Tensil accelerator on the PYNQ-Z1 (tensil's resource check and cycle estimator) |
| `network` | conv/linear layer shapes of a model (for the structural model) |
| `selector` | HaLo-PS: `children`, `select`, `StepRule`, `paths` |
| `settings` | `HaloSettings` from the run's `halo_*` fields, checked |
| `messages` | what a client uploads: its bw-bit forward weights |
| `strategy` | `HaloFedAvg`: per-client precisions, tasks, decoding, per-round metrics |
| `run` | the strategy and cost model of a run; `<run>/halo_cost_model.json` |
| `deploy` | per client type's final (bw, ba): the low-precision model vs the emulated 16-bit Tensil deployment |
| `plot` | `<run>/halo_paths.png`: the paths through the precision tree (paper's Fig. 5 style) |

Local training reuses the low-precision core (`fl_bridge.precision`): `Int8Training` with
`weight_bits`, `act_bits`, `error_bits` (WAGE-style: 8-bit weight grid updated by the integer
`NITIUpdate`, forward weights, activations and errors fake-quantized on power-of-two grids).
"""
