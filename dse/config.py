"""The sweep file (TOML): which points to explore and how to measure them.

```
name = "default"                 # results go to <out>/<name>/ (out: --out, default build/dse)
dataset = "synthetic"            # any `python -m train fit --dataset` name
data_root = ""                   # folder of an on-disk dataset ("" : its default place)

[train]                          # extra `train fit` options shared by every point (FitConfig fields)
val_episodes = 100

[evaluate]                       # few-shot measurement (float model and fixed-point program)
shots = [1, 5]
images_per_class = 15            # novel images per class fed to both (0: all)

[grid]                           # every combination of these lists (a scalar is a one-item list)
backbone = ["resnet9"]
feature_maps = [8, 16]
...

[[points]]                       # and/or explicit points; missing keys take Point's defaults
backbone = "resnet12"
```

Everything is validated before any work: a bad file is one `DseError` line.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path

from contracts import DEFAULT_ARCH, fpga_dir_name
from dse.errors import DseError
from fpga.clocking import ClockError, plan_clock
from tensil.arch import ArchError, load_arch
from train.backbones import EASY_FAMILIES, BackboneError, BackboneSpec, check_spec
from train.datasets import MIN_IMAGE_SIZE
from train.easy import FitConfig, TrainError

# FitConfig fields that a point or the sweep itself sets; `[train]` may not override them.
POINT_OWNED = ("backbone", "feature_maps", "strided", "image_size", "epochs", "dataset", "data_root", "out")


@dataclass(frozen=True)
class Point:
    """One design: backbone, training and test image sizes, training length, accelerator, clock."""

    backbone: str = "resnet9"
    feature_maps: int = 16
    strided: bool = True
    train_size: int = 32
    test_size: int = 32
    epochs: int = 12
    arch: str = DEFAULT_ARCH  # a shipped architecture name or a .tarch path
    mhz: float = 125.0

    def label(self) -> str:
        """Short readable name, e.g. `r9s16_32-84px_3ep_custom_perf_125MHz`."""
        fam = self.backbone.replace("resnet", "r")
        arch = Path(self.arch).stem if self.arch.endswith(".tarch") else self.arch
        return (f"{fam}{'s' if self.strided else 'm'}{self.feature_maps}_{self.train_size}-{self.test_size}px_"
                f"{self.epochs}ep_{fpga_dir_name(arch, self.mhz)}")


@dataclass(frozen=True)
class EvalSettings:
    """How few-shot accuracy is measured (the same images and episodes for float and fixed point)."""

    ways: int = 5
    shots: tuple[int, ...] = (1, 5)
    queries: int = 15
    episodes: int = 1000
    images_per_class: int = 20  # novel images per class (0: every image of the split)
    fixed_point: bool = True  # also run the compiled program on the emulator
    seed: int = 0


@dataclass(frozen=True)
class Sweep:
    name: str
    points: tuple[Point, ...]
    dataset: str = "synthetic"
    data_root: str = ""
    train: dict = field(default_factory=dict)
    evaluate: EvalSettings = EvalSettings()
    source: str = ""  # the TOML file it came from

    def fit_config(self, point: Point, out: str) -> FitConfig:
        """The training configuration of a point (`out` is where its checkpoint goes)."""
        return FitConfig(dataset=self.dataset, data_root=self.data_root or None, backbone=point.backbone,
                         feature_maps=point.feature_maps, strided=point.strided, image_size=point.train_size,
                         epochs=point.epochs, out=out, **self.train)


TOP_KEYS = ("name", "dataset", "data_root", "train", "evaluate", "grid", "points")


def _typed(value: object, like: object, where: str) -> object:
    """`value` checked against the type of the default `like` (ints accepted for floats)."""
    if isinstance(like, bool):
        ok = isinstance(value, bool)
    elif isinstance(like, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(like, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif isinstance(like, str) or like is None:
        ok = isinstance(value, str)
    else:
        ok = isinstance(value, type(like))
    if not ok:
        raise DseError(f"{where}: {value!r} is not a {type(like).__name__ if like is not None else 'str'}")
    return value


def _point_fields() -> dict[str, object]:
    return {f.name: f.default for f in fields(Point)}


def _grid_points(grid: dict, where: str) -> list[Point]:
    defaults = _point_fields()
    unknown = sorted(set(grid) - set(defaults))
    if unknown:
        raise DseError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    axes = []
    for key, default in defaults.items():
        values = grid.get(key, [default])
        values = values if isinstance(values, list) else [values]
        if not values:
            raise DseError(f"{where}.{key}: empty list")
        axes.append([_typed(v, default, f"{where}.{key}") for v in values])
    return [Point(*combo) for combo in itertools.product(*axes)]


def _explicit_point(table: object, where: str) -> Point:
    if not isinstance(table, dict):
        raise DseError(f"{where}: expected a table of point keys")
    defaults = _point_fields()
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise DseError(f"{where}: unknown key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    return Point(**{k: _typed(table[k], d, f"{where}.{k}") if k in table else d for k, d in defaults.items()})


def _eval_settings(table: object) -> EvalSettings:
    if not isinstance(table, dict):
        raise DseError("[evaluate]: expected a table")
    defaults = {f.name: f.default for f in fields(EvalSettings)}
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise DseError(f"[evaluate]: unknown key(s) {', '.join(unknown)}; known: {', '.join(defaults)}")
    values = {}
    for key, default in defaults.items():
        if key not in table:
            continue
        if key == "shots":
            shots = table[key] if isinstance(table[key], list) else [table[key]]
            values[key] = tuple(_typed(s, 1, "[evaluate].shots") for s in shots)
        else:
            values[key] = _typed(table[key], default, f"[evaluate].{key}")
    s = EvalSettings(**values)
    if s.ways < 2 or s.queries < 1 or s.episodes < 1 or not s.shots or min(s.shots) < 1:
        raise DseError("[evaluate]: ways must be >= 2, queries, episodes and every shot count >= 1")
    if s.images_per_class and s.images_per_class < max(s.shots) + s.queries:
        raise DseError(f"[evaluate]: images_per_class {s.images_per_class} is fewer than shots + queries "
                       f"({max(s.shots)} + {s.queries})")
    return s


def _train_overrides(table: object) -> dict:
    if not isinstance(table, dict):
        raise DseError("[train]: expected a table")
    defaults = {f.name: f.default for f in fields(FitConfig)}
    owned = sorted(set(table) & set(POINT_OWNED))
    if owned:
        raise DseError(f"[train]: {', '.join(owned)} set by the points or the sweep, not here")
    unknown = sorted(set(table) - set(defaults))
    if unknown:
        raise DseError(f"[train]: unknown `train fit` option(s) {', '.join(unknown)}")
    return {k: _typed(v, defaults[k], f"[train].{k}") for k, v in table.items()}


def resolve_arch(arch: str, base: Path) -> str:
    """A shipped architecture name as is; a .tarch path made absolute (relative to the sweep file)."""
    if not arch.endswith(".tarch"):
        return arch
    p = Path(arch)
    return str(p if p.is_absolute() else (base / p).resolve())


def check_point(sweep: Sweep, point: Point) -> None:
    """Raise DseError (one line) if the point cannot be trained, compiled or clocked."""
    where = f"point {point.label()}"
    if point.backbone not in EASY_FAMILIES:
        raise DseError(f"{where}: backbone {point.backbone!r} is not one of {', '.join(EASY_FAMILIES)}")
    if min(point.train_size, point.test_size) < MIN_IMAGE_SIZE:
        raise DseError(f"{where}: image size {min(point.train_size, point.test_size)} is too small "
                       f"(the datasets need at least {MIN_IMAGE_SIZE} pixels)")
    try:
        for size in (point.train_size, point.test_size):
            check_spec(BackboneSpec(point.backbone, point.feature_maps, point.strided, 3, size))
        sweep.fit_config(point, "x.pt").check()
        load_arch(point.arch)
        plan_clock(point.mhz)
    except (BackboneError, ArchError, ClockError, TrainError, ValueError) as e:
        raise DseError(f"{where}: {str(e).splitlines()[0]}") from None


def parse_sweep(data: dict, source: str = "", base: Path = Path(".")) -> Sweep:
    """A validated Sweep from the parsed TOML `data`; `base` resolves relative .tarch paths."""
    unknown = sorted(set(data) - set(TOP_KEYS))
    if unknown:
        raise DseError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(TOP_KEYS)}")
    name = data.get("name", "")
    if not isinstance(name, str) or not name or "/" in name or name.startswith("."):
        raise DseError(f"name {name!r}: a non-empty folder name is needed")
    dataset = _typed(data.get("dataset", "synthetic"), "", "dataset")
    data_root = _typed(data.get("data_root", ""), "", "data_root")
    points: list[Point] = []
    if "grid" in data:
        if not isinstance(data["grid"], dict):
            raise DseError("[grid]: expected a table")
        points += _grid_points(data["grid"], "[grid]")
    raw = data.get("points", [])
    if not isinstance(raw, list):
        raise DseError("points: expected [[points]] tables")
    points += [_explicit_point(t, f"[[points]] #{i + 1}") for i, t in enumerate(raw)]
    if not points:
        raise DseError("no points: give a [grid] table or [[points]] tables")
    points = [Point(**{**p.__dict__, "arch": resolve_arch(p.arch, base)}) for p in points]
    unique = list(dict.fromkeys(points))
    sweep = Sweep(name, tuple(unique), dataset, data_root, _train_overrides(data.get("train", {})),
                  _eval_settings(data.get("evaluate", {})), source)
    from train.readers import READERS

    if dataset not in READERS:
        raise DseError(f"dataset {dataset!r}: choose one of {', '.join(READERS)}")
    for p in sweep.points:
        check_point(sweep, p)
    return sweep


def load_sweep(path: str | Path) -> Sweep:
    """Read and validate a sweep file; DseError with one line if it is missing or wrong."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text())
    except FileNotFoundError:
        raise DseError(f"sweep file {path} does not exist") from None
    except (OSError, UnicodeDecodeError) as e:
        raise DseError(f"cannot read sweep file {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise DseError(f"{path}: not valid TOML ({e})") from None
    try:
        return parse_sweep(data, str(p), p.resolve().parent)
    except DseError as e:
        raise DseError(f"{path}: {e}") from None
