"""The `.tmodel` manifest and its `.tprog` / `.tdata` companions (docs/tensil.md, "Files").

We write exactly the keys, order and compact JSON that upstream Tensil writes, so Tensil's own
PYNQ driver (which builds namedtuples from the keys) and `tensil emulate` read our models:

    {"name", "prog": {"file_name", "size"}, "consts": [{"file_name", "base", "size"}],
     "inputs": [{"name", "base", "size"}], "outputs": [...], "arch": {eleven keys},
     "load_consts_to_local": bool}

`prog.size` is in bytes; `consts`/`inputs`/`outputs` base and size are in vectors (DRAM1 for
consts, DRAM0 for variables). File names are relative to the `.tmodel`'s directory (that is how
the PYNQ driver resolves them). One tensor may span several entries (non-contiguous
allocation); its logical vector order is the concatenation of its entries sorted by base.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import List, Optional, Sequence

from contracts import compiled_name
from tensil.arch import Arch, ArchError, from_dict
from tensil.isa import Instruction, Layout, decode

MANIFEST_KEYS = ("name", "prog", "consts", "inputs", "outputs", "arch", "load_consts_to_local")


class ModelError(ValueError):
    """A `.tmodel` that is missing, malformed, truncated or for another architecture."""


@dataclass(frozen=True)
class Span:
    """A run of vectors: part of a variable in DRAM0 (`name` = tensor name), or the constants in
    DRAM1 (`name` = the .tdata file name)."""

    base: int
    size: int
    name: str = ""


@dataclass(frozen=True)
class TModel:
    """The manifest, field for field."""

    name: str
    prog_file: str
    prog_size: int
    consts: tuple[Span, ...]  # Span.name holds the .tdata file name
    inputs: tuple[Span, ...]
    outputs: tuple[Span, ...]
    arch: Arch
    load_consts_to_local: bool = False

    def to_json_dict(self) -> dict:
        return {
            "name": self.name,
            "prog": {"file_name": self.prog_file, "size": self.prog_size},
            "consts": [{"file_name": c.name, "base": c.base, "size": c.size} for c in self.consts],
            "inputs": [{"name": v.name, "base": v.base, "size": v.size} for v in self.inputs],
            "outputs": [{"name": v.name, "base": v.base, "size": v.size} for v in self.outputs],
            "arch": self.arch.to_json_dict(),
            "load_consts_to_local": self.load_consts_to_local,
        }

    def spans(self, name: str, outputs: bool = False) -> list[Span]:
        """The entries of one input (or output) tensor in logical order (sorted by base)."""
        found = sorted((s for s in (self.outputs if outputs else self.inputs) if s.name == name), key=lambda s: s.base)
        if not found:
            kind = "output" if outputs else "input"
            known = ", ".join(sorted({s.name for s in (self.outputs if outputs else self.inputs)}))
            raise ModelError(f"{self.name}: no {kind} named {name!r} (has {known})")
        return found

    @property
    def input_names(self) -> list[str]:
        return list(dict.fromkeys(s.name for s in self.inputs))

    @property
    def output_names(self) -> list[str]:
        return list(dict.fromkeys(s.name for s in self.outputs))


@dataclass
class LoadedModel:
    """A manifest with the bytes of its program and constants."""

    manifest: TModel
    program: bytes
    consts: bytes  # the single .tdata, loaded at DRAM1 vector `manifest.consts[0].base`
    path: Optional[Path] = None
    _instructions: Optional[List[Instruction]] = field(default=None, repr=False, compare=False)

    @property
    def arch(self) -> Arch:
        return self.manifest.arch

    @property
    def layout(self) -> Layout:
        return Layout.from_arch(self.arch)

    def instructions(self) -> List[Instruction]:
        """The decoded program (decoded once, then cached)."""
        if self._instructions is None:
            self._instructions = decode(self.program, self.layout)
        return self._instructions


def model_file_name(onnx_name: str, arch_name: str) -> str:
    """Upstream's model name: the ONNX file name with every character outside
    `[A-Za-z0-9 whitespace :]` replaced by `_`, then `_<arch>`."""
    return compiled_name(onnx_name, arch_name)


def _spans(items: Sequence, what: str) -> tuple[Span, ...]:
    out = []
    for it in items:
        if isinstance(it, Span):
            out.append(it)
        elif isinstance(it, dict):
            out.append(Span(name=it["name"], base=int(it["base"]), size=int(it["size"])))
        else:
            name, base, size = it
            out.append(Span(name=name, base=int(base), size=int(size)))
    for s in out:
        if s.base < 0 or s.size < 1:
            raise ModelError(f"{what} {s.name!r}: base {s.base} / size {s.size} must be >= 0 / >= 1")
    return tuple(sorted(out, key=lambda s: s.base))


def _is_plain_file_name(name: str) -> bool:
    return bool(name) and name not in (".", "..") and "/" not in name and "\\" not in name


def _write_temp(directory: Path, final_name: str, data: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{final_name}.", suffix=".tmp", dir=directory)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(tmp)


def write_model(
    out_dir: str | Path,
    name: str,
    arch: Arch,
    program: bytes,
    consts: bytes,
    inputs: Sequence,
    outputs: Sequence,
    load_consts_to_local: bool = False,
) -> Path:
    """Write `<name>.tmodel/.tprog/.tdata` into `out_dir` and return the `.tmodel` path.

    `inputs`/`outputs` are `Span`s, `{"name","base","size"}` dicts or `(name, base, size)`
    tuples. All three files are written to temporary names first and renamed at the end, the
    manifest last, so a failure leaves no new half-written model behind.
    """
    out_dir = Path(out_dir)
    if not _is_plain_file_name(name) or name.startswith("."):
        raise ModelError(f"model name {name!r} must be a plain file name")
    layout = Layout.from_arch(arch)
    if len(program) % layout.instruction_bytes:
        raise ModelError(f"program of {len(program)} bytes is not whole {layout.instruction_bytes}-byte instructions")
    if len(consts) % arch.vector_bytes:
        raise ModelError(f"constants of {len(consts)} bytes are not whole {arch.vector_bytes}-byte vectors")
    manifest = TModel(
        name=name,
        prog_file=f"{name}.tprog",
        prog_size=len(program),
        consts=(Span(base=0, size=len(consts) // arch.vector_bytes, name=f"{name}.tdata"),),
        inputs=_spans(inputs, "input"),
        outputs=_spans(outputs, "output"),
        arch=arch,
        load_consts_to_local=bool(load_consts_to_local),
    )
    text = json.dumps(manifest.to_json_dict(), separators=(",", ":"))
    out_dir.mkdir(parents=True, exist_ok=True)
    files = [(f"{name}.tdata", consts), (f"{name}.tprog", bytes(program)), (f"{name}.tmodel", text.encode())]
    temps: list[tuple[Path, Path]] = []
    try:
        for final, data in files:
            temps.append((_write_temp(out_dir, final, data), out_dir / final))
        for tmp, final in temps:
            os.replace(tmp, final)
    finally:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
    return out_dir / f"{name}.tmodel"


def _get(d: dict, key: str, kind: type, where: str):
    if key not in d:
        raise ModelError(f"{where}: missing key {key!r}")
    value = d[key]
    if kind is int and (not isinstance(value, int) or isinstance(value, bool)):
        raise ModelError(f"{where}: {key!r} must be an integer, got {value!r}")
    if kind is not int and not isinstance(value, kind):
        raise ModelError(f"{where}: {key!r} must be a {kind.__name__}, got {value!r}")
    return value


def parse_manifest(d: dict, where: str = ".tmodel") -> TModel:
    """Validate a manifest JSON object (exactly upstream's keys) and build a TModel."""
    if not isinstance(d, dict):
        raise ModelError(f"{where}: not a JSON object")
    extra = sorted(set(d) - set(MANIFEST_KEYS))
    if extra:
        raise ModelError(f"{where}: unknown key(s) {', '.join(extra)} (Tensil's driver rejects them)")
    prog = _get(d, "prog", dict, where)

    def spans(key: str, name_key: str) -> tuple[Span, ...]:
        out = []
        for e in _get(d, key, list, where):
            if not isinstance(e, dict):
                raise ModelError(f"{where}: entries of {key!r} must be objects")
            out.append(Span(name=_get(e, name_key, str, f"{where} {key}"), base=_get(e, "base", int, f"{where} {key}"),
                            size=_get(e, "size", int, f"{where} {key}")))  # fmt: skip
        return tuple(out)

    try:
        arch = from_dict(_get(d, "arch", dict, where), name=Path(where).stem)
    except ArchError as e:
        raise ModelError(f"{where}: bad arch: {e}") from None
    return TModel(
        name=_get(d, "name", str, where),
        prog_file=_get(prog, "file_name", str, f"{where} prog"),
        prog_size=_get(prog, "size", int, f"{where} prog"),
        consts=spans("consts", "file_name"),
        inputs=spans("inputs", "name"),
        outputs=spans("outputs", "name"),
        arch=arch,
        load_consts_to_local=_get(d, "load_consts_to_local", bool, where),
    )


def read_model(path: str | Path, expect_arch: Optional[Arch] = None) -> LoadedModel:
    """Read a `.tmodel` and its files (relative to its directory); check sizes and arch."""
    path = Path(path)
    if not path.is_file():
        raise ModelError(f"{path}: no such .tmodel file")
    try:
        d = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ModelError(f"{path}: not valid JSON ({e})") from None
    manifest = parse_manifest(d, where=str(path))
    if expect_arch is not None and not manifest.arch.same_hardware(expect_arch):
        diff = [k for k, v in expect_arch.to_json_dict().items() if manifest.arch.to_json_dict()[k] != v]
        raise ModelError(
            f"{path}: compiled for another architecture than {expect_arch.name} (differs in {', '.join(diff)})"
        )
    arch = manifest.arch
    layout = Layout.from_arch(arch)

    def read(file_name: str, what: str) -> bytes:
        if not _is_plain_file_name(file_name):
            raise ModelError(f"{path}: {what} file name {file_name!r} must be a plain name next to the .tmodel")
        f = path.parent / file_name
        if not f.is_file():
            raise ModelError(f"{path}: {what} file {f} is missing")
        return f.read_bytes()

    program = read(manifest.prog_file, "program")
    if len(program) != manifest.prog_size or len(program) % layout.instruction_bytes:
        raise ModelError(
            f"{path}: program {manifest.prog_file} has {len(program)} bytes, the manifest says {manifest.prog_size} "
            f"({layout.instruction_bytes}-byte instructions): truncated or not this model's"
        )
    if len(manifest.consts) > 1:
        raise ModelError(f"{path}: {len(manifest.consts)} consts entries; Tensil models have exactly one")
    consts = b""
    for c in manifest.consts:
        consts = read(c.name, "constants")
        if len(consts) != c.size * arch.vector_bytes:
            raise ModelError(
                f"{path}: constants {c.name} have {len(consts)} bytes, the manifest says {c.size} vectors "
                f"= {c.size * arch.vector_bytes} bytes: truncated or not this model's"
            )
    for s in manifest.inputs + manifest.outputs:
        if s.base + s.size > arch.dram0_depth:
            raise ModelError(f"{path}: variable {s.name!r} ends past DRAM0 ({s.base}+{s.size} > {arch.dram0_depth})")
    return LoadedModel(manifest=manifest, program=program, consts=consts, path=path)
