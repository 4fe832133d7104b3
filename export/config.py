"""The export configuration; CLI flags map onto its fields and it is saved in every sidecar."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

from contracts import backbone_path, export_dir
from export.errors import ExportError
from safeio import UsageError, check_int_range, check_output, check_range
from export.graph_check import TENSIL_OPSETS


@dataclass(frozen=True)
class ExportConfig:
    """How one checkpoint becomes `<out>/<name>.onnx` + `<out>/<name>.json`."""

    checkpoint: str = backbone_path()
    out: str = export_dir()
    name: str = ""  # empty: the checkpoint's file stem
    opset: int = 10
    batch: int = 1
    input_name: str = "input"
    output_name: str = "Output"  # PEFSL's name, the default of its `tensil compile -o`
    random_inputs: int = 16
    real_inputs: int = 32
    data_root: str = ""  # empty: the data root stored in the checkpoint's config
    seed: int = 0
    atol: float = 1e-4  # max |onnxruntime - torch| allowed, times max(1, max |torch feature|)
    min_cosine: float = 0.99999

    @property
    def stem(self) -> str:
        return self.name or Path(self.checkpoint).stem

    @property
    def onnx_path(self) -> Path:
        return Path(self.out) / f"{self.stem}.onnx"

    @property
    def sidecar_path(self) -> Path:
        return Path(self.out) / f"{self.stem}.json"

    def validate(self) -> "ExportConfig":
        """Raise ExportError with one line for an option that cannot work."""
        if self.opset not in TENSIL_OPSETS:
            raise ExportError(f"--opset {self.opset}: Tensil accepts only opset {' or '.join(map(str, TENSIL_OPSETS))}")
        if self.batch < 1:
            raise ExportError(f"--batch {self.batch}: the batch size must be at least 1")
        if self.random_inputs < 1 or self.real_inputs < 0:
            raise ExportError("--random-inputs must be at least 1 and --real-inputs at least 0")
        try:
            check_output("--out", self.out, "folder")
            check_range("--atol", self.atol, 0, low_open=True)
            check_range("--min-cosine", self.min_cosine, 0, 1, low_open=True)
            check_int_range("--seed", self.seed, 0)
            if self.data_root and not Path(self.data_root).is_dir():
                raise UsageError(f"--data-root {self.data_root}: folder does not exist")
        except UsageError as e:
            raise ExportError(str(e)) from None
        if not self.stem or "/" in self.stem or self.stem.startswith("."):
            raise ExportError(f"--name {self.stem!r}: not a usable file name")
        if not self.input_name or not self.output_name or self.input_name == self.output_name:
            raise ExportError("--input-name and --output-name must be two different non-empty names")
        if self.atol <= 0 or not 0 < self.min_cosine <= 1:
            raise ExportError("--atol must be positive and --min-cosine in (0, 1]")
        return self

    def to_dict(self) -> dict:
        return asdict(self)
