"""The compiler's driver: ONNX file -> verified program bytes, constants and manifest spans.

front end (`frontend`) -> fusion and rewrite passes (`passes`, each followed by
`Network.verify`) -> memory plan, plan check and instruction emission (`lower`: `plan`, `emit`)
-> here: hazard check, encoding, decode-back check. Writing files is `tensil.report.write_outputs`.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

from contracts import compiled_name
from tensil.arch import Arch
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import FrontendOptions, load_graph
from tensil.compiler.graph import Graph, Network
from tensil.compiler.lower import Lowered, LoweringOptions, lower
from tensil.compiler.passes import fuse, pack_taps_into_lanes, split_depthwise
from tensil.hazards import HazardError, check_program
from tensil.isa import Layout, ProgramError, decode, encode_program
from tensil.tmodel import LoadedModel, Span, TModel


@dataclass
class CompileOptions:
    """Front-end and lowering choices (saved in the report's config)."""

    merge_rows: bool = False
    pack_taps: bool = True  # narrow-input convs: horizontal kernel taps into lanes first
    split_depthwise: bool = True  # depthwise convs one channel tile at a time (no zero tiles)
    avoid_4k: bool = True  # no AXI burst crossing a 4 KiB boundary (cut moves, shift DRAM0 data)
    drop_softmax: bool = False  # a Softmax at the output is dropped without a warning
    flatten_order: str = "nhwc"  # a flattened spatial map at the output: "nhwc" (upstream's) or "onnx"

    def frontend(self) -> FrontendOptions:
        return FrontendOptions(drop_softmax=self.drop_softmax, flatten_order=self.flatten_order)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class CompiledModel:
    name: str
    arch: Arch
    graph: Graph
    network: Network
    lowered: Lowered
    program: bytes
    consts: bytes
    seconds: float

    @property
    def inputs(self) -> list[Span]:
        return [Span(h.base, h.size, h.tensor) for h in self.lowered.inputs]

    @property
    def outputs(self) -> list[Span]:
        return [Span(h.base, h.size, h.tensor) for h in self.lowered.outputs]

    def manifest(self) -> TModel:
        return TModel(
            name=self.name,
            prog_file=f"{self.name}.tprog",
            prog_size=len(self.program),
            consts=(Span(0, len(self.consts) // self.arch.vector_bytes, f"{self.name}.tdata"),),
            inputs=tuple(self.inputs),
            outputs=tuple(self.outputs),
            arch=self.arch,
        )

    def loaded(self) -> LoadedModel:
        """The model as `read_model` would return it, without touching the disk."""
        return LoadedModel(self.manifest(), self.program, self.consts)


def emit(lowered: Lowered, arch: Arch) -> bytes:
    """Check every hazard rule, encode, and make sure the bytes decode to the same program."""
    try:
        check_program(lowered.instrs, arch)
    except HazardError as e:
        raise CompileError(f"internal error: the generated program breaks a hardware rule: {e}") from None
    layout = Layout.from_arch(arch)
    try:
        program = encode_program(lowered.instrs, layout)
        back = decode(program, layout)
    except ProgramError as e:
        raise CompileError(f"internal error: the generated program cannot be encoded: {e}") from None
    if back != list(lowered.instrs):
        raise CompileError("internal error: the encoded program does not decode to the same instructions")
    return program


def compile_network(graph: Graph, arch: Arch, name: str, options: CompileOptions | None = None) -> CompiledModel:
    options = options or CompileOptions()
    start = time.perf_counter()
    network = fuse(graph)
    network.verify("fusion")
    if options.split_depthwise:
        network = split_depthwise(network, arch.array_size)
        network.verify("split_depthwise")
    if options.pack_taps:
        network = pack_taps_into_lanes(network, arch.array_size)
        network.verify("pack_taps_into_lanes")
    lowered = lower(network, arch, LoweringOptions(merge_rows=options.merge_rows, avoid_4k=options.avoid_4k))
    program = emit(lowered, arch)
    consts = lowered.consts.to_bytes()
    return CompiledModel(name, arch, graph, network, lowered, program, consts, time.perf_counter() - start)


def default_name(path: str | Path, arch: Arch) -> str:
    """`<onnx stem>_<arch>` with upstream's character rule (non-alphanumerics become `_`)."""
    return compiled_name(Path(path).stem, arch.name)


def compile_onnx(path: str | Path, arch: Arch, name: str | None = None,
                 options: CompileOptions | None = None) -> CompiledModel:
    """Compile an ONNX file; `name` (the full model name) defaults to `<onnx stem>_<arch>` (contract 3)."""
    start = time.perf_counter()
    graph = load_graph(path, (options or CompileOptions()).frontend())
    model_name = name or default_name(path, arch)
    if not model_name or "/" in model_name or model_name.startswith("."):
        raise CompileError(f"model name {model_name!r} is not a plain file name")
    compiled = compile_network(graph, arch, model_name, options)
    compiled.seconds = time.perf_counter() - start
    return compiled
