"""Does an ONNX graph fit the Tensil front end? (`research/tensil_spec.md` §5.2-5.4)

`check_graph` enforces the acceptance rules (opset 9/10, FLOAT/INT64 initializers, no
initializers listed as inputs, tensor ranks 1/2/4), the shape contract of an exported backbone
(one NCHW float input of fixed shape, one 2-D output of features) and an operator allow-list with
the attribute restrictions under which Tensil computes what ONNX means (Tensil silently ignores
MaxPool padding, Conv dilations, ...). Every failure names the offending node.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import onnx
from onnx import TensorProto, helper, numpy_helper

from export.errors import GraphCheckError

# Operators our backbones need and Tensil lowers faithfully (BatchNormalization is accepted for
# graphs made elsewhere; our exports fold it into the preceding Conv).
ALLOWED_OPS = (
    "Conv",
    "BatchNormalization",
    "Relu",
    "LeakyRelu",
    "Add",
    "MaxPool",
    "GlobalAveragePool",
    "Flatten",
    "Reshape",
    "Concat",
)
TENSIL_OPSETS = (9, 10)
TENSIL_RANKS = (1, 2, 4)
INITIALIZER_TYPES = (TensorProto.FLOAT, TensorProto.INT64)


@dataclass(frozen=True)
class GraphSummary:
    """What a checked graph looks like; written into the sidecar."""

    opset: int
    input_name: str
    input_shape: tuple[int, ...]
    output_name: str
    output_shape: tuple[int, ...]
    operators: dict[str, int] = field(default_factory=dict)

    @property
    def feature_dim(self) -> int:
        return self.output_shape[1]

    def to_dict(self) -> dict:
        return {
            "opset": self.opset,
            "input": {"name": self.input_name, "shape": list(self.input_shape)},
            "output": {"name": self.output_name, "shape": list(self.output_shape)},
            "operators": dict(self.operators),
        }


def default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ("", "ai.onnx"):
            return int(entry.version)
    raise GraphCheckError("the model imports no default-domain ONNX opset")


def _fixed_shape(value: onnx.ValueInfoProto) -> tuple[int, ...] | None:
    """The static shape of a tensor, or None when any dimension is symbolic or unknown."""
    if not value.type.tensor_type.HasField("shape"):
        return None
    dims = value.type.tensor_type.shape.dim
    if any(not d.HasField("dim_value") or d.dim_value < 1 for d in dims):
        return None
    return tuple(int(d.dim_value) for d in dims)


def _node_label(node: onnx.NodeProto, index: int) -> str:
    return f"node {node.name or f'#{index}'!r} ({node.op_type})"


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_node(node: onnx.NodeProto, label: str, constants: dict, ranks: dict[str, int]) -> None:
    """Raise GraphCheckError if Tensil would reject `node` or compute something else than ONNX."""

    def fail(reason: str) -> None:
        raise GraphCheckError(f"{label}: {reason}")

    attrs = _attrs(node)
    op = node.op_type
    if op == "Conv":
        if len(node.input) < 2 or node.input[1] not in constants:
            fail("Conv weights must be an initializer")
        if len(node.input) > 2 and node.input[2] and node.input[2] not in constants:
            fail("Conv bias must be an initializer")
        weight = constants[node.input[1]]
        if weight.ndim != 4:
            fail(f"only 2-D convolutions are supported (weight rank {weight.ndim})")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            fail(f"dilations {attrs['dilations']} are ignored by Tensil")
        if attrs.get("auto_pad", b"NOTSET") in (b"VALID", "VALID"):
            fail("auto_pad=VALID is rejected by Tensil (use explicit pads)")
        group = attrs.get("group", 1)
        if group != 1 and not (group == weight.shape[0] and weight.shape[1] == 1):
            fail(f"group={group} is only supported for depthwise convolutions")
    elif op == "BatchNormalization":
        if any(name not in constants for name in node.input[1:5]):
            fail("scale, bias, mean and variance must be initializers")
    elif op == "LeakyRelu":
        if "alpha" not in attrs:
            fail("the alpha attribute must be present (Tensil does not apply the ONNX default)")
        if not 0.0 <= attrs["alpha"] <= 1.0:
            fail(f"alpha {attrs['alpha']} is outside [0, 1]")
    elif op == "MaxPool":
        if "kernel_shape" not in attrs or "strides" not in attrs:
            fail("kernel_shape and strides must both be given")
        if any(p != 0 for p in attrs.get("pads", [])) or attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET"):
            fail("padding is ignored by Tensil (it always pools without padding)")
        if attrs.get("ceil_mode", 0):
            fail("ceil_mode is ignored by Tensil (it always floors the output size)")
        if any(d != 1 for d in attrs.get("dilations", [1, 1])):
            fail("dilations are ignored by Tensil")
    elif op == "Flatten":
        if attrs.get("axis") != 1:
            fail("Flatten needs an explicit axis=1 attribute")
    elif op == "Reshape":
        if len(node.input) < 2 or node.input[1] not in constants:
            fail("the target shape must be an initializer")
    elif op == "Concat":
        channel_axes = (1, -1) if ranks.get(node.output[0]) == 2 else (1,)
        if attrs.get("axis") not in channel_axes:
            fail(f"only channel concatenation (axis 1) is supported, not axis {attrs.get('axis')}")


def check_graph(model: onnx.ModelProto) -> GraphSummary:
    """Check `model` (shape inference is run on a copy) and summarise it; GraphCheckError otherwise."""
    opset = default_opset(model)
    if opset not in TENSIL_OPSETS:
        raise GraphCheckError(f"opset {opset} is not accepted by Tensil (only {' or '.join(map(str, TENSIL_OPSETS))})")
    try:
        inferred = onnx.shape_inference.infer_shapes(model, strict_mode=True)
    except Exception as e:  # onnx raises several types for inconsistent graphs
        raise GraphCheckError(f"shape inference failed: {str(e).strip().splitlines()[0]}") from None
    graph = inferred.graph

    constants = {t.name: numpy_helper.to_array(t) for t in graph.initializer}
    for t in graph.initializer:
        if t.data_type not in INITIALIZER_TYPES:
            kind = TensorProto.DataType.Name(t.data_type)
            raise GraphCheckError(f"initializer {t.name!r} has type {kind}; Tensil takes FLOAT or INT64")
    listed = [i.name for i in graph.input if i.name in constants]
    if listed:
        raise GraphCheckError(
            f"{len(listed)} initializers (e.g. {listed[0]!r}) are listed as graph inputs; Tensil would "
            "treat them as run-time inputs (export with keep_initializers_as_inputs=False)"
        )

    inputs = list(graph.input)
    if len(inputs) != 1:
        raise GraphCheckError(f"the graph has {len(inputs)} inputs; exactly one image input is expected")
    if len(graph.output) != 1:
        raise GraphCheckError(f"the graph has {len(graph.output)} outputs; exactly one (the features) is expected")
    image, features = inputs[0], graph.output[0]
    if image.type.tensor_type.elem_type != TensorProto.FLOAT:
        raise GraphCheckError(f"input {image.name!r} is not float32")
    input_shape = _fixed_shape(image)
    if input_shape is None or len(input_shape) != 4:
        raise GraphCheckError(f"input {image.name!r} must be NCHW with a fixed shape (batch included)")
    output_shape = _fixed_shape(features)
    if output_shape is None or len(output_shape) != 2 or output_shape[0] != input_shape[0]:
        raise GraphCheckError(
            f"output {features.name!r} must be (batch, features) = ({input_shape[0]}, D) with a fixed shape"
        )

    rejected = [
        (i, n) for i, n in enumerate(graph.node) if n.domain not in ("", "ai.onnx") or n.op_type not in ALLOWED_OPS
    ]
    if rejected:
        # Name a computing node rather than a Constant feeding it, and list every rejected kind.
        index, node = next(((i, n) for i, n in rejected if n.op_type != "Constant"), rejected[0])
        kinds = ", ".join(f"{op} x{k}" for op, k in sorted(Counter(n.op_type for _, n in rejected).items()))
        raise GraphCheckError(
            f"{_node_label(node, index)} is not accepted by the Tensil front end "
            f"(rejected: {kinds}; allowed: {', '.join(ALLOWED_OPS)})"
        )
    ranks = {v.name: len(s) for v in [*graph.value_info, *graph.output] if (s := _fixed_shape(v)) is not None}
    for name, rank in ranks.items():
        if rank not in TENSIL_RANKS:
            raise GraphCheckError(f"tensor {name!r} has rank {rank}; Tensil supports ranks 1, 2 and 4")
    for index, node in enumerate(graph.node):
        _check_node(node, _node_label(node, index), constants, ranks)

    return GraphSummary(
        opset=opset,
        input_name=image.name,
        input_shape=input_shape,
        output_name=features.name,
        output_shape=output_shape,
        operators=dict(sorted(Counter(n.op_type for n in graph.node).items())),
    )


def load_onnx(path: str) -> onnx.ModelProto:
    """Read and validate an ONNX file; GraphCheckError with one line when it is missing or corrupt."""
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
    try:
        onnx.checker.check_model(model)
    except Exception as e:
        raise GraphCheckError(f"{path}: invalid ONNX model ({str(e).strip().splitlines()[0]})") from None
    return model
