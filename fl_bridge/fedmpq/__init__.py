"""FedMPQ (per-layer mixed-precision weights under per-client average bit budgets) and its cheap
baselines AQFL and FPQ8, on the shared low-precision core (`fl_bridge.precision`):

| module | what |
|---|---|
| `planes` | fixed-point layers and their bit-planes (sign-magnitude, or the paper's offset binary), MSB pruning |
| `allocate` | Alg. 2 (pruning-growing) in literal and strict modes |
| `wire` | bit-plane messages (per-layer bits and step, packed planes) and their bits |
| `aggregate` | Eq. 15: weights v_n·|D_n|, the weighted average, the consensus allocation |
| `train` | the client's mixed-precision QAT with the bit-plane group lasso |
| `methods` | fedmpq / aqfl / fpq8 settings and per-client budgets |
| `client`, `server` | a client's round; the federated loop |
| `compare` | `python -m fl_bridge fedmpq-compare`: the variants side by side, table and plot |
| `checkpoint` | the standalone allocator for a trained backbone checkpoint (`python -m fl_bridge allocate`) |
| `deploy` | what `python -m fl_bridge deploy` of these runs reports (emulated vs as-trained accuracy) |
| `cli` | the subcommands' flags |
"""
