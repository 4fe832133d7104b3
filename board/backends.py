"""The three backbone runtimes behind one interface: (1, 3, S, S) float32 -> (D,) float32.

* `onnx`: onnxruntime on the bundle's model.onnx (imported lazily: not needed on the board);
* `tensil`: our TCU driver on the PYNQ (pynq imported lazily, only on the board);
* `emulator`: the same driver against the emulated PYNQ device (`board.emulated_pynq`).
"""

from __future__ import annotations

import abc
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from board.bundle import Bundle
from board.errors import BackendError
from board.tcu import TcuDriver
from tensil.arch import Arch
from tensil.layout import unpack_output
from tensil.tmodel import LoadedModel, ModelError, read_model

BACKENDS = ("onnx", "emulator", "tensil")


@dataclass
class BackendConfig:
    kind: str = "emulator"
    timeout_s: float = 2.0             # accelerator completion timeout (tensil, emulator)
    threads: int = 1                   # onnxruntime intra-op threads


class Backend(abc.ABC):
    """Interface: `features(batch)` and `close()`; `name` says which runtime it is."""

    name = "backend"
    feature_dim: int

    @abc.abstractmethod
    def features(self, batch: np.ndarray) -> np.ndarray:
        """(1, 3, S, S) float32 preprocessed frame -> (feature_dim,) float32 features."""

    def stats(self) -> dict:
        """Figures worth logging with the run."""
        return {}

    def close(self) -> None:
        pass


class OnnxBackend(Backend):
    name = "onnx"

    def __init__(self, bundle: Bundle, threads: int = 1):
        try:
            import onnxruntime
        except ImportError:
            raise BackendError("the onnx backend needs onnxruntime (pip install onnxruntime)") from None
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        try:
            self._session = onnxruntime.InferenceSession(str(bundle.path("onnx")), options,
                                                         providers=["CPUExecutionProvider"])
        except Exception as exc:   # onnxruntime raises its own exception types
            raise BackendError(f"onnxruntime cannot load {bundle.path('onnx')}: {exc}") from None
        self._input, self._output = bundle.input_name, bundle.output_name
        self.feature_dim = bundle.feature_dim

    def features(self, batch: np.ndarray) -> np.ndarray:
        out = self._session.run([self._output], {self._input: batch})[0]
        return np.asarray(out, dtype=np.float32).reshape(-1)[:self.feature_dim]


def read_compiled_model(path: Path) -> LoadedModel:
    """The .tmodel/.tprog/.tdata triple (checked by `tensil.tmodel`)."""
    try:
        return read_model(path)
    except (ModelError, OSError) as exc:
        raise BackendError(f"cannot read compiled model: {exc}") from None


class TensilBackend(Backend):
    """A compiled model on a TCU (real or emulated) through `TcuDriver`."""

    def __init__(self, bundle: Bundle, driver: TcuDriver, name: str):
        self.name = name
        self.driver = driver
        self.model = read_compiled_model(bundle.path("tmodel"))
        manifest = self.model.manifest
        if manifest.input_names != [bundle.input_name] or bundle.output_name not in manifest.output_names:
            raise BackendError(f"the compiled model's input/output names {manifest.input_names}/"
                               f"{manifest.output_names} differ from model.json's {bundle.input_name}/{bundle.output_name}")
        driver.load_model(self.model)
        self._input, self._output = bundle.input_name, bundle.output_name
        self.feature_dim = bundle.feature_dim

    def features(self, batch: np.ndarray) -> np.ndarray:
        raw = self.driver.run({self._input: batch})[self._output]
        return unpack_output(raw, (1, self.feature_dim), self.driver.arch).reshape(-1)

    def stats(self) -> dict:
        return {"saturated_input_values": self.driver.saturated_inputs,
                "program_bytes": len(self.model.program), "constant_bytes": len(self.model.consts)}

    def close(self) -> None:
        self.driver.close()


def load_overlay(bundle: Bundle):
    """`pynq.Overlay` of the bundle's bitstream; its failures (not root, .hwh not matching the
    .bit, no XRT device) become one BackendError line instead of a traceback."""
    try:
        import pynq
    except ImportError:
        raise BackendError("PYNQ buttons, HDMI and the tensil backend need the board (no pynq module here)") from None
    path = bundle.path("bitstream")
    try:
        return pynq.Overlay(str(path))
    except Exception as exc:   # noqa: BLE001 - pynq raises RuntimeError, OSError, ValueError, KeyError...
        raise BackendError(f"cannot load the bitstream {path} ({type(exc).__name__}: {exc}); run the demo "
                           f"as root in a login shell (sudo bash -l) on the PYNQ image") from None


def require_backend(bundle: Bundle, kind: str) -> None:
    """Refuse, in one line, a backend that does not exist or that the bundle cannot serve."""
    if kind not in BACKENDS:
        raise BackendError(f"unknown backend {kind!r}; choose from {', '.join(BACKENDS)}")
    available = bundle.backends()
    if kind not in available:
        raise BackendError(f"bundle {bundle.root} cannot serve the {kind} backend "
                           f"(it has files for: {', '.join(available) or 'none'})")


def open_backend(bundle: Bundle, config: BackendConfig, hardware_arch: Arch | None = None,
                 overlay=None) -> Backend:
    """Build the backend `config.kind` for `bundle`. `hardware_arch` overrides the emulated
    device's architecture (by default the bitstream's, else the model's)."""
    require_backend(bundle, config.kind)
    if config.kind == "onnx":
        return OnnxBackend(bundle, config.threads)
    if config.kind == "emulator":
        from board.emulated_pynq import EmulatedPynq

        device = EmulatedPynq(hardware_arch or bundle.bitstream_arch or bundle.model_arch)
        driver = TcuDriver(bundle.bitstream_arch or bundle.model_arch, device.axi_dma_0, device.allocate,
                           config.timeout_s)
        return TensilBackend(bundle, driver, "emulator")
    try:
        import pynq
    except ImportError:
        raise BackendError("the tensil backend runs on the PYNQ board only (no pynq module here); "
                           "use --backend emulator or onnx") from None
    if overlay is None:
        overlay = load_overlay(bundle)
    dma_name = bundle.instances.dma
    dma = getattr(overlay, dma_name, None)
    if dma is None:
        raise BackendError(f"{bundle.path('bitstream')} has no {dma_name} (the instruction DMA)")
    if bundle.bitstream_arch is None:
        raise BackendError(f"{bundle.root / 'model.json'} does not say which architecture design.bit implements")
    driver = TcuDriver(bundle.bitstream_arch, dma, pynq.allocate, config.timeout_s)
    return TensilBackend(bundle, driver, "tensil")
