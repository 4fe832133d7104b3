"""Where a sweep keeps its artifacts, and the keys that let points share them.

```
<root>/checkpoints/<train key>.pt            trained backbone (shared by every point trained alike)
<root>/checkpoints/<export key>.pt           the same weights retargeted to another test size
<root>/export/<export key>.{onnx,json}       ONNX + sidecar
<root>/tensil/<arch>_<digest>/<export key>_<arch>.*   compiled program and its report
<root>/accuracy/<export key>[_<arch>]_<float|fixed>_<eval digest>.json
<root>/points/<point id>.json                the finished row of one point (resume marker)
<root>/logs/<point id>.log                   what the stages printed
<root>/results.{csv,json}, <root>/plots/*.png
```

A key is a readable prefix plus a digest of everything that changes the artifact, so a changed
setting gives a new key (never a stale reuse) and an unchanged one finds the finished file.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts import compiled_name
from dse.config import Point, Sweep
from tensil.arch import load_arch

DEFAULT_OUT = "build/dse"
NOT_IN_TRAIN_KEY = ("out", "force", "device", "threads", "episodes", "compare_untrained")


def digest(obj: object, n: int = 8) -> str:
    """A short stable hash of a JSON-able object."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:n]


def _arch_identity(arch: str) -> dict:
    """An architecture by content (a .tarch edited in place is a different architecture)."""
    return {"name": load_arch(arch).name, "content": digest(Path(arch).read_text() if arch.endswith(".tarch") else arch)}


@dataclass(frozen=True)
class PointPaths:
    """Every file of one point."""

    point_id: str
    train_checkpoint: Path
    checkpoint: Path  # what is exported: the trained checkpoint, or its retargeted copy
    export_dir: Path
    export_name: str
    tensil_dir: Path  # one folder per architecture (by content)
    compiled_name: str  # `tensil compile`'s default name: <export name>_<arch name>
    float_accuracy: Path
    fixed_accuracy: Path
    row: Path
    log: Path

    @property
    def onnx(self) -> Path:
        return self.export_dir / f"{self.export_name}.onnx"

    @property
    def tmodel(self) -> Path:
        return self.tensil_dir / f"{self.compiled_name}.tmodel"

    @property
    def report(self) -> Path:
        return self.tensil_dir / f"{self.compiled_name}.report.json"


@dataclass(frozen=True)
class SweepLayout:
    """The folders of one sweep under `root` (= <out>/<sweep name>)."""

    root: Path

    @classmethod
    def for_sweep(cls, sweep: Sweep, out: str | Path = DEFAULT_OUT) -> "SweepLayout":
        return cls(Path(out).resolve() / sweep.name)

    @property
    def points_dir(self) -> Path:
        return self.root / "points"

    @property
    def results_csv(self) -> Path:
        return self.root / "results.csv"

    @property
    def results_json(self) -> Path:
        return self.root / "results.json"

    @property
    def plots_dir(self) -> Path:
        return self.root / "plots"

    def train_key(self, sweep: Sweep, point: Point) -> str:
        fields = sweep.fit_config(point, "").training_fields()
        fields = {k: v for k, v in fields.items() if k not in NOT_IN_TRAIN_KEY}
        fam = point.backbone.replace("resnet", "r")
        return f"{fam}{'s' if point.strided else 'm'}{point.feature_maps}_{point.train_size}px_{point.epochs}ep_{digest(fields)}"

    def paths(self, sweep: Sweep, point: Point) -> PointPaths:
        train_key = self.train_key(sweep, point)
        export_key = train_key if point.test_size == point.train_size else f"{train_key}_test{point.test_size}"
        arch = _arch_identity(point.arch)
        ev = digest(asdict(sweep.evaluate))
        point_id = f"{point.label()}_{digest([train_key, point.test_size, arch, point.mhz, asdict(sweep.evaluate)])}"
        ckpt_dir = self.root / "checkpoints"
        return PointPaths(
            point_id=point_id,
            train_checkpoint=ckpt_dir / f"{train_key}.pt",
            checkpoint=ckpt_dir / f"{export_key}.pt",
            export_dir=self.root / "export",
            export_name=export_key,
            tensil_dir=self.root / "tensil" / f"{arch['name']}_{arch['content'][:6]}",
            compiled_name=compiled_name(export_key, load_arch(point.arch).name),
            float_accuracy=self.root / "accuracy" / f"{export_key}_float_{ev}.json",
            fixed_accuracy=self.root / "accuracy" / f"{export_key}_{arch['name']}_{arch['content'][:6]}_fixed_{ev}.json",
            row=self.points_dir / f"{point_id}.json",
            log=self.root / "logs" / f"{point_id}.log",
        )
