"""HaLo-FL's cost model for the board our users deploy on: the Tensil accelerator on the PYNQ-Z1
(XC7Z020), built from tensil's own resource check (`tensil.resources`) and cycle estimator
(`tensil.estimator`, hardware-aware model) on the run's network compiled by `python -m tensil
compile` (one forward pass, the inference half of a training step: Tensil does not train, so the
error precision be costs nothing here).

For a precision (bw, ba, be):
* data type: a Tensil array has one scalar type. A width that one of Tensil's types has
  (8 -> FP8BP4, 16 -> FP16BP8, 18, 32) is that type, exactly as tensil models it; another width
  b (2, 4, 6) is a hypothetical `FP<b>BP<b/2>` of the same array with packed vectors of
  ceil(A b / 8) bytes (Tensil ships none: extrapolated). The type a deployment would use is
  the smallest shipped one that holds max(bw, ba) bits (`deploy_type`).
* resources of the TCU (DSP48E1, BRAM36, LUT, FF) on the part: tensil's estimate at bw and at
  ba, combined as a datapath whose weight and activation widths differ: LUT and FF (linear in
  the width in tensil's model) the mean of the two, DSP and BRAM36 (memories hold both) the
  larger. Equal widths give tensil's figures exactly. `area` = the mean of the four utilisations.
* latency: the hardware-aware cycles of the compiled forward pass at the board clock, with
  activation vectors at ba bits and the weight loads from DRAM1 (constants) at bw bits.
* energy: tensil/ has no power model; `energy` is a proxy, TCU logic (kLUT + kFF) x forward time.
"""

from __future__ import annotations

import math
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

from contracts import DEFAULT_MHZ
from fl_bridge.errors import FLError
from fl_bridge.halo.costs import Costs, Precision
from tensil.arch import DATA_TYPES, Arch, ArchError, DataType, load_arch
from tensil.estimator import estimate
from tensil.isa import DataFlow
from tensil.resources import XC7Z020, Device, Resources, estimate_tcu, plan_fit
from tensil.tmodel import read_model

WEIGHT_LOADS = f"DataMove({DataFlow.DRAM1_TO_LOCAL.name})"


@dataclass(frozen=True)
class WidthArch(Arch):
    """An architecture with a `bits`-wide scalar: Tensil's type of that width, or a packed hypothetical one."""

    bits: int = 16

    @property
    def shipped(self) -> DataType | None:
        return next((t for t in DATA_TYPES.values() if t.bits == self.bits), None)

    @property
    def dtype(self) -> DataType:
        b = self.bits
        return self.shipped or DataType(f"FP{b}BP{b // 2}", b, b // 2, math.ceil(b / 8))

    @property
    def vector_bytes(self) -> int:
        return self.array_size * self.dtype.bytes_per_scalar if self.shipped else math.ceil(self.array_size * self.bits / 8)


def deploy_type(bw: int, ba: int) -> str:
    """The narrowest Tensil data type that holds bw-bit weights and ba-bit activations."""
    return min((t for t in DATA_TYPES.values() if t.bits >= max(bw, ba)), key=lambda t: t.bits).name


@dataclass(frozen=True)
class FPGACost:
    """Modelled cost of a precision on a Tensil array of `arch`'s size and memories at `mhz`."""

    instructions: tuple
    arch: Arch
    mhz: float = DEFAULT_MHZ
    device: Device = XC7Z020
    name: str = "fpga"
    _cache: dict = field(default_factory=dict, compare=False, repr=False)

    @property
    def units(self) -> dict[str, str]:
        return {"energy": "kLUT+kFF x ms (modelled proxy: no power model)",
                "latency": f"ms per forward pass at {self.mhz:g} MHz (modelled, tensil estimator)",
                "area": f"mean TCU utilisation of DSP, BRAM36, LUT, FF of the {self.device.part} (modelled)"}

    def at(self, bits: int) -> WidthArch:
        fields_ = {k: getattr(self.arch, k) for k in ("array_size", "dram0_depth", "dram1_depth", "local_depth",
                                                       "accumulator_depth", "simd_registers_depth", "stride0_depth",
                                                       "stride1_depth", "number_of_threads", "thread_queue_depth")}
        shipped = next((t.name for t in DATA_TYPES.values() if t.bits == bits), self.arch.data_type)
        return WidthArch(data_type=shipped, name=f"{self.arch.name}@{bits}b", bits=bits, **fields_)

    def resources(self, bw: int, ba: int) -> Resources:
        w, a = estimate_tcu(self.at(bw)), estimate_tcu(self.at(ba))
        return Resources(max(w.dsp, a.dsp), max(w.bram36, a.bram36), round((w.lut + a.lut) / 2), round((w.ff + a.ff) / 2))

    def _estimate(self, bits: int):
        if ("est", bits) not in self._cache:
            self._cache[("est", bits)] = estimate(self.instructions, self.at(bits), clocks_mhz=(self.mhz,))
        return self._cache[("est", bits)]

    def cycles(self, bw: int, ba: int) -> float:
        """Hardware-aware cycles of the forward pass: activations at ba, weight loads at bw."""
        act = self._estimate(ba)
        if bw == ba:
            return act.hardware_cycles[self.mhz]
        key = f"hardware_cycles@{self.mhz:g}MHz"
        loads = lambda e: e.by_kind.get(WEIGHT_LOADS, {}).get(key, 0.0)  # noqa: E731
        return act.hardware_cycles[self.mhz] - loads(act) + loads(self._estimate(bw))

    def cost(self, precision: Precision) -> Costs:
        bw, ba, _ = precision
        if (bw, ba) not in self._cache:
            r = self.resources(bw, ba)
            ms = self.cycles(bw, ba) / (self.mhz * 1e3)
            use = [r.dsp / self.device.available.dsp, r.bram36 / self.device.available.bram36,
                   r.lut / self.device.available.lut, r.ff / self.device.available.ff]
            self._cache[(bw, ba)] = Costs((r.lut + r.ff) / 1e3 * ms, ms, sum(use) / len(use))
        return self._cache[(bw, ba)]

    def describe(self, precision: Precision) -> dict:
        """What a precision implies on the board: types, array, resources, fit, cycles, latency."""
        bw, ba, _ = precision
        widest = self.at(max(bw, ba))
        largest = max((a for a in range(2, 65)
                       if plan_fit(WidthArch(**{**{k: getattr(widest, k) for k in widest.__dataclass_fields__},
                                                 "array_size": a}), self.device).fits), default=None)
        return {"precision": list(precision), "deploy_type": deploy_type(bw, ba),
                "weight_type": self.at(bw).dtype.name, "activation_type": self.at(ba).dtype.name,
                "array_size": self.arch.array_size, "largest_array_that_fits": largest,
                "tcu": self.resources(bw, ba).to_json_dict(), "fits": plan_fit(widest, self.device).fits,
                "cycles": self.cycles(bw, ba), **{k: v for k, v in self.cost(precision).to_dict().items()}}


def load_program(tmodel: str | Path) -> tuple:
    return tuple(read_model(tmodel).instructions())


def _run(what: str, cmd: list[str]) -> None:
    print(f"fl_bridge halo-fl: {what}: {' '.join(cmd)}", file=sys.stderr, flush=True)
    proc = subprocess.run(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if proc.returncode != 0:
        last = (proc.stderr.strip().splitlines() or [f"exit status {proc.returncode}"])[-1]
        raise FLError(f"halo-fl fpga cost model: {what} failed: {last}")


def fpga_cost_model(cfg, halo, model_cfg, data, run_dir: Path) -> FPGACost:
    """Export the run's (initial) network, compile it for `--halo-fpga-arch` once (kept in
    `<run>/halo_fpga/`, reused on resume) and build the cost model on its program."""
    from fl_bridge.checkpointing import write_backbone_checkpoint
    from fl_bridge.model import build_model

    try:
        arch = load_arch(halo.fpga_arch)
    except ArchError as e:
        raise FLError(f"--halo-fpga-arch: {e}") from None
    folder = Path(run_dir) / "halo_fpga"
    tmodels = sorted(folder.glob("*.tmodel"))
    if not tmodels:
        ckpt = write_backbone_checkpoint(build_model(model_cfg), model_cfg, data, cfg, [{"round": 0}],
                                         folder / "backbone.pt")
        py, name = sys.executable, "halo_network"
        _run("export", [py, "-m", "export", "--checkpoint", str(ckpt), "--out", str(folder), "--name", name])
        _run("compile", [py, "-m", "tensil", "compile", "--onnx", str(folder / f"{name}.onnx"), "--arch", halo.fpga_arch,
                         "--out", str(folder)])
        tmodels = sorted(folder.glob("*.tmodel"))
        if len(tmodels) != 1:
            raise FLError(f"halo-fl fpga cost model: the compile left {len(tmodels)} .tmodel files in {folder}")
    return FPGACost(load_program(tmodels[0]), arch, halo.fpga_mhz)
