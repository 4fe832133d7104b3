"""Hardware cost models of HaLo-FL's precision selector: `cost(precision) -> Costs(energy,
latency, area)` for a precision (bw, ba, be) = bits of weights, activations and errors.

* `HaLoSimSurrogate`: the paper's simulator (HaLoSim, an SRAM crossbar in-memory-computing
  training chip) is not public; this surrogate has the functional forms the paper's Fig. 1
  states (energy falls with activation and error bits, latency with activation bits, area with
  weight bits and a little with error bits), E = kE * ba * be, L = L0 + kL * ba,
  A = aW * bw + aE * be, with the constants fitted to the paper's Table II (8-8-8 and 2-4-4 of
  each dataset give kE, kL, L0, aW; aE follows from the 8-8-8 area). The paper's figures are
  kept here (`TABLE_II`, reported) so the fit is checked against them.
* `StructuralCrossbar`: the same crossbar (Table I: 64x64 1-bit SRAM cells, 29 pJ / 13 pJ per
  read / write, 18 ns per access, 0.07 mm^2 per crossbar) mapped onto *our* network's
  conv/linear layers: crossbars for the bit-sliced weights and for the errors of each layer,
  one crossbar read per input bit (bit-serial inputs) for the forward pass, the error
  propagation and the weight gradient. Its dependencies are what the counts give, not Fig. 1's
  (e.g. energy grows with bw): see `fl_bridge/README.md`.
* `fpga.FPGACost` (in `fl_bridge.halo.fpga`): the Tensil accelerator on the PYNQ-Z1.

Every figure of these models is *modelled*, never measured.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Protocol

Precision = tuple[int, int, int]  # (bw, ba, be)
METRICS = ("energy", "latency", "area")


@dataclass(frozen=True)
class Costs:
    energy: float
    latency: float
    area: float

    def __getitem__(self, metric: str) -> float:
        return getattr(self, metric)

    def to_dict(self) -> dict:
        return asdict(self)


class CostModel(Protocol):
    name: str
    units: dict[str, str]

    def cost(self, precision: Precision) -> Costs: ...


# Table II of the paper (reported): dataset -> config -> (accuracy %, energy mJ, latency s, area mm^2).
TABLE_II: dict[str, dict[str, tuple[float, float, float, float]]] = {
    "cifar10": {"8-8-8": (80.20, 1.83, 1.01, 1070.93), "halo": (80.14, 1.45, 0.93, 976.44),
                "halo-E": (80.14, 1.16, 1.01, 1024.18), "halo-L": (80.14, 1.42, 0.78, 1070.93),
                "halo-A": (80.14, 1.76, 1.01, 834.21), "2-4-4": (78.37, 0.45, 0.51, 313.56)},
    "emnist": {"8-8-8": (86.69, 1.26, 0.87, 935.86), "halo": (86.55, 0.99, 0.81, 853.64),
               "halo-E": (86.55, 0.80, 0.87, 893.16), "halo-L": (86.55, 0.98, 0.67, 935.86),
               "halo-A": (86.55, 1.21, 0.87, 731.90), "2-4-4": (83.91, 0.31, 0.44, 279.79)},
    "tinyimagenet": {"8-8-8": (54.67, 26.07, 1.97, 2204.57), "halo": (54.81, 20.62, 1.82, 1995.75),
                     "halo-E": (54.81, 16.47, 1.97, 2047.79), "halo-L": (54.81, 20.18, 1.53, 2204.57),
                     "halo-A": (54.81, 25.22, 1.97, 1734.90), "2-4-4": (47.45, 6.48, 0.99, 641.59)},
}


@dataclass(frozen=True)
class HaLoSimSurrogate:
    """E = kE ba be (mJ), L = L0 + kL ba (s), A = aW bw + aE be (mm^2); constants of one dataset."""

    kE: float
    L0: float
    kL: float
    aW: float
    aE: float
    name: str = "surrogate"

    @property
    def units(self) -> dict[str, str]:
        return {"energy": "mJ (modelled, HaLoSim surrogate)", "latency": "s (modelled)", "area": "mm^2 (modelled)"}

    @classmethod
    def fit(cls, dataset: str = "cifar10") -> "HaLoSimSurrogate":
        """Constants from Table II's 8-8-8 and 2-4-4 rows of `dataset`: latency and area exactly
        (two equations, two unknowns each), kE the mean of E(8-8-8)/64 and E(2-4-4)/16 (the two
        rows are not exactly proportional to ba * be: within 2%)."""
        if dataset not in TABLE_II:
            raise ValueError(f"no Table II figures for {dataset!r} (have {', '.join(TABLE_II)})")
        _, e8, l8, a8 = TABLE_II[dataset]["8-8-8"]
        _, e2, l2, a2 = TABLE_II[dataset]["2-4-4"]
        kE = (e8 / 64 + e2 / 16) / 2  # E(8,8) = 64 kE, E(4,4) = 16 kE: least squares of the two
        kL = (l8 - l2) / 4
        L0 = l8 - 8 * kL
        aE = (a2 - a8 / 4) / 2  # a8 = 8 aW + 8 aE, a2 = 2 aW + 4 aE
        aW = a8 / 8 - aE
        return cls(kE, L0, kL, aW, aE)

    def cost(self, precision: Precision) -> Costs:
        bw, ba, be = precision
        return Costs(self.kE * ba * be, self.L0 + self.kL * ba, self.aW * bw + self.aE * be)


# Table I of the paper (reported): the crossbar of HaLoSim.
XBAR = 64  # rows and columns of one crossbar, 1 bit per cell
XBAR_AREA_MM2 = 0.07
XBAR_READ_PJ = 29.0
XBAR_WRITE_PJ = 13.0
XBAR_ACCESS_US = 0.018


@dataclass(frozen=True)
class LayerShape:
    """One conv/linear layer of the network: kernel k, channels, input and output spatial sizes."""

    name: str
    cin: int
    cout: int
    k: int
    hin: int
    win: int
    hout: int
    wout: int


@dataclass(frozen=True)
class StructuralCrossbar:
    """Crossbar counts of our network's layers (bit-sliced weights and errors), per training sample."""

    layers: tuple[LayerShape, ...]
    batch_size: int = 32
    name: str = "structural"

    @property
    def units(self) -> dict[str, str]:
        return {"energy": "mJ per sample (modelled, crossbar counts)", "latency": "s per sample (modelled)",
                "area": "mm^2 of crossbars (modelled)"}

    def cost(self, precision: Precision) -> Costs:
        bw, ba, be = precision
        reads = writes = 0.0
        cycles = 0.0
        crossbars = 0
        for l in self.layers:
            rows = l.k * l.k * l.cin
            n_w = math.ceil(rows / XBAR) * math.ceil(l.cout * bw / XBAR)  # weights, bit-sliced along columns
            n_e = math.ceil(l.hout * l.wout / XBAR) * math.ceil(l.cout * be / XBAR)  # this layer's output errors
            crossbars += n_w + n_e
            forward, backward, gradient = l.hout * l.wout * ba, l.hin * l.win * be, rows * ba  # bit-serial input vectors
            reads += n_w * (forward + backward) + n_e * gradient
            writes += n_e + n_w / self.batch_size
            cycles += forward + backward + gradient + 2  # the crossbars of a layer run in parallel, layers in sequence
        energy_mj = (XBAR_READ_PJ * reads + XBAR_WRITE_PJ * writes) * 1e-9
        return Costs(energy_mj, cycles * XBAR_ACCESS_US * 1e-6, crossbars * XBAR_AREA_MM2)
