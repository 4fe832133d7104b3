"""FedMPQ and the two baselines that share its machinery, as run settings.

| method | weights (per client) | activations | client | server |
|---|---|---|---|---|
| `fedmpq` | per-layer bits, average <= the client's budget v_n | `mpq_act_bits` | QAT + bit-plane lasso, MSB pruning | average weighted by v_n * |D_n|, then Alg. 2 per client |
| `aqfl` | v_n bits in every layer | `mpq_act_bits` | QAT | average weighted by |D_n| |
| `fpq8` | 8 bits in every layer | 8 | QAT | average weighted by |D_n| |

Budgets come from `mpq_budgets` ("2,2,4,4": one per client) or, when it lists fewer values than
there are clients, budget levels shared out by `mpq_budget_shares` (percent of the clients at each
level, in client order, largest remainder; default 20/30/30/20 % at 2/4/6/8 bits as in the
paper's scaling experiment: with 10 clients 2,2,4,4,4,6,6,6,8,8).
"""

from __future__ import annotations

from dataclasses import dataclass

from fl_bridge.fedmpq.allocate import MODES
from fl_bridge.fedmpq.planes import B_MAX, B_MIN, REPRESENTATIONS

FEDMPQ_METHODS = ("fedmpq", "aqfl", "fpq8")
FPQ_BITS = 8


@dataclass(frozen=True)
class FedMPQTask:
    """What a client of these methods needs beyond the ordinary task (its bits come in the message)."""

    representation: str = "sign-magnitude"
    act_bits: int = 4
    lam: float = 0.0
    eps: float = 0.0
    prune: bool = False
    b_min: int = B_MIN


@dataclass(frozen=True)
class MethodSpec:
    """How one of FEDMPQ_METHODS runs."""

    method: str
    budgets: tuple[int, ...]  # per client
    task: FedMPQTask
    reallocate: bool  # Alg. 2 after every round (fedmpq)
    weight_by_budget: bool  # p_n = v_n |D_n| (fedmpq) instead of |D_n|
    allocation: str = "literal"

    def start_bits(self, client: int) -> int:
        return FPQ_BITS if self.method == "fpq8" else self.budgets[client]


def _ints(text: str, flag: str) -> tuple[int, ...]:
    try:
        values = tuple(int(v) for v in text.replace(" ", "").split(",") if v)
    except ValueError:
        raise ValueError(f"{flag} {text!r}: give comma-separated integers, e.g. 2,4,6,8") from None
    if not values:
        raise ValueError(f"{flag} is empty")
    return values


def client_budgets(budgets: str, shares: str, clients: int) -> tuple[int, ...]:
    """One budget per client from `mpq_budgets` / `mpq_budget_shares` (see the module docstring)."""
    levels = _ints(budgets, "--mpq-budgets")
    if any(not B_MIN <= v <= B_MAX for v in levels):
        raise ValueError(f"--mpq-budgets {budgets!r}: every budget must be in {B_MIN}..{B_MAX} bits")
    if len(levels) == clients:
        return levels
    if len(levels) > clients:
        raise ValueError(f"--mpq-budgets lists {len(levels)} budgets for {clients} clients")
    weights = _ints(shares, "--mpq-budget-shares")
    if len(weights) != len(levels) or min(weights) < 0 or sum(weights) == 0:
        raise ValueError(f"--mpq-budget-shares {shares!r}: give one non-negative share per budget level "
                         f"({len(levels)}), not all zero")
    exact = [clients * w / sum(weights) for w in weights]
    counts = [int(x) for x in exact]
    for i in sorted(range(len(levels)), key=lambda i: -(exact[i] - counts[i]))[: clients - sum(counts)]:
        counts[i] += 1
    return tuple(v for v, c in zip(levels, counts) for _ in range(c))


def method_spec(method: str, budgets: str, shares: str, clients: int, act_bits: int, lam: float, eps: float,
                representation: str, allocation: str) -> MethodSpec:
    """The settings of one run; ValueError (one line) for a bad one."""
    if method not in FEDMPQ_METHODS:
        raise ValueError(f"method must be one of {', '.join(FEDMPQ_METHODS)} (got {method!r})")
    if representation not in REPRESENTATIONS:
        raise ValueError(f"--mpq-representation must be one of {', '.join(REPRESENTATIONS)}")
    if allocation not in MODES:
        raise ValueError(f"--mpq-allocation must be one of {', '.join(MODES)}")
    if not 2 <= act_bits <= 8:
        raise ValueError(f"--mpq-act-bits must be in 2..8 (got {act_bits})")
    if not lam >= 0 or not 0 <= eps < 1:
        raise ValueError(f"--mpq-lambda must be >= 0 and --mpq-eps in [0, 1) (got {lam}, {eps})")
    per_client = client_budgets(budgets, shares, clients)
    if method == "fedmpq":
        task = FedMPQTask(representation, act_bits, lam, eps, True)
    else:
        task = FedMPQTask(representation, FPQ_BITS if method == "fpq8" else act_bits)
    return MethodSpec(method, per_client, task, method == "fedmpq", method == "fedmpq", allocation)
