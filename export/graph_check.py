"""Does an ONNX graph compile for Tensil? The same answer as `python -m tensil compile`.

`check_graph` runs the compiler's own front end (`tensil.compiler.frontend`: constant folding,
every operator and attribute rule, static shapes) and stops before lowering, so `export check`
and `compile` cannot disagree about a graph; a refusal is the compiler's message (node,
operator, what to change, what upstream Tensil does). Only a network too large for the
accelerator's memories is found by `compile` alone.

The summary also lists the front end's warnings (a Softmax dropped at the output, a spatial map
flattened in NHWC order) and where upstream Tensil v1.0.15 would refuse the graph or compute
something else (its documented operator list and known limitations, see tensil/README.md).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx
from onnx import helper

from export.errors import GraphCheckError
from tensil.compiler.errors import CompileError
from tensil.compiler.frontend import FrontendOptions, graph_from_model

TENSIL_OPSETS = (9, 10)  # the opsets upstream Tensil v1.0.15 reads; the export writes one of them
# Operators upstream Tensil v1.0.15's front end knows (constant-only ones included).
UPSTREAM_OPS = frozenset({
    "Conv", "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "BatchNormalization", "Relu", "LeakyRelu", "Clip",
    "Softmax", "MaxPool", "AveragePool", "GlobalAveragePool", "Reshape", "Flatten", "Concat", "Split",
    "Transpose", "Squeeze", "Unsqueeze", "Pad", "Resize", "Shape", "Gather", "Slice", "Cast", "Constant",
})


@dataclass(frozen=True)
class GraphSummary:
    """What a checked graph looks like; written into the sidecar (first input and output)."""

    opset: int
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    operators: dict[str, int] = field(default_factory=dict)
    warnings: tuple[str, ...] = ()
    upstream: tuple[str, ...] = ()  # where upstream Tensil v1.0.15 differs on this graph

    @property
    def feature_dim(self) -> int:
        return self.output_shape[1]

    def to_dict(self) -> dict:
        return {
            "opset": self.opset,
            "input": {"name": self.input_name, "shape": list(self.input_shape)},
            "output": {"name": self.output_name, "shape": list(self.output_shape)},
            "operators": dict(self.operators),
            "warnings": list(self.warnings),
            "upstream_tensil": list(self.upstream),
        }


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise GraphCheckError("the model imports no default-domain ONNX opset")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def upstream_differences(model: onnx.ModelProto) -> list[str]:
    """Where upstream Tensil v1.0.15 would refuse this graph or compute something else."""
    notes = []
    opset = default_opset(model)
    if opset not in TENSIL_OPSETS:
        notes.append(f"opset {opset}: upstream reads only opset 9 or 10")
    refused = sorted({n.op_type for n in model.graph.node} - UPSTREAM_OPS)
    if refused:
        notes.append(f"operators {', '.join(refused)}: upstream refuses them")
    inits = {t.name for t in model.graph.initializer}
    if any(i.name in inits for i in model.graph.input):
        notes.append("initializers listed as graph inputs: upstream makes them run-time inputs")
    for node in model.graph.node:
        a, where = _attrs(node), f"node {node.name or node.output[0]!r} ({node.op_type})"
        if node.op_type == "Gemm" and (a.get("alpha", 1.0) != 1.0 or a.get("beta", 1.0) != 1.0):
            notes.append(f"{where}: upstream ignores alpha and beta")
        elif node.op_type == "LeakyRelu" and "alpha" not in a:
            notes.append(f"{where}: upstream does not apply the default alpha 0.01")
        elif node.op_type == "AveragePool" and (list(a.get("kernel_shape", [])) != list(a.get("strides", [1, 1]))
                                                or any(a.get("pads", []))):
            notes.append(f"{where}: upstream divides by the stride area and ignores padding")
        elif node.op_type == "Clip" and len(node.input) > 1:
            notes.append(f"{where}: upstream takes only the attribute form of Clip (opset <= 10)")
        elif node.op_type == "Pad" and (a.get("mode", b"constant") not in (b"constant", "constant")):
            notes.append(f"{where}: upstream pads with zeros whatever the mode")
    return notes


def check_graph(model: onnx.ModelProto, options: FrontendOptions | None = None) -> GraphSummary:
    """Run the compiler's front end on `model` and summarise it; GraphCheckError with its message otherwise."""
    try:
        graph = graph_from_model(model, options)
    except CompileError as e:
        raise GraphCheckError(f"not accepted by the Tensil compiler: {e}") from None
    first_in, first_out = graph.inputs[0], graph.outputs[0]
    return GraphSummary(
        opset=default_opset(model),
        input_name=first_in,
        input_shape=tuple(graph.onnx_shape(first_in)),
        output_name=first_out,
        output_shape=tuple(graph.onnx_shape(first_out)),
        operators=dict(sorted(Counter(n.op_type for n in model.graph.node).items())),
        warnings=tuple(graph.warnings),
        upstream=tuple(upstream_differences(model)),
    )


def check_export(model: onnx.ModelProto, batch: int) -> GraphSummary:
    """`check_graph` of an export made for `batch` inputs: Tensil compiles batch 1, so a copy with batch 1 is
    checked and the summary gives the shapes of the file itself."""
    if batch == 1:
        return check_graph(model)
    single = onnx.ModelProto()
    single.CopyFrom(model)
    for value in (*single.graph.input, *single.graph.output):
        dims = value.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == batch:
            dims[0].dim_value = 1
    summary = check_graph(single)
    return GraphSummary(summary.opset, summary.input_name, (batch, *summary.input_shape[1:]), summary.output_name,
                        (batch, *summary.output_shape[1:]), summary.operators, summary.warnings, summary.upstream)


def load_onnx(path: str) -> onnx.ModelProto:
    """Read an ONNX file; GraphCheckError with one line when it is missing or corrupt."""
    try:
        model = onnx.load(path)
    except FileNotFoundError:
        raise GraphCheckError(f"ONNX file {path} does not exist") from None
    except IsADirectoryError:
        raise GraphCheckError(f"{path} is a folder, not an ONNX file") from None
    except Exception as e:  # protobuf decode errors have several types
        raise GraphCheckError(f"{path}: cannot be read as ONNX ({type(e).__name__})") from None
    if not model.graph.node and not model.opset_import:  # protobuf parses an empty file as an empty model
        raise GraphCheckError(f"{path}: empty or not an ONNX model (no graph)")
    return model
