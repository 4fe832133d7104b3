"""ONNX front end: load a model, fold constants, normalise every supported opset, infer shapes.

The output is a `Graph` of canonical `Op`s on (C, H, W) activations of one image. Opset
differences are absorbed here: Reshape's shape as input or attribute, Pad and Clip as inputs
or attributes, Gemm's alpha/beta/transB, MatMul with a constant B, BatchNormalization of every
version, Flatten/Squeeze/Unsqueeze/Identity/Dropout as pure relabelling, ReduceMean over H and W
as global average pooling, AveragePool as a depthwise convolution with the exact divisor.
Beyond compute ops, what upstream Tensil v1.0.15 and common exporters put around a backbone:
an NHWC input behind `Transpose(0,3,1,2)` (the host transposes, see `HostView`), Reshape /
Transpose / Squeeze that only move 1-sized axes, a Softmax at the output (a no-op, as upstream,
with a warning unless `drop_softmax`), and a Flatten of a spatial map at the output (a 0/1 copy
layer; features in upstream's NHWC order by default, or ONNX's). Anything else is refused with
a message naming the node, its operator, what to change and what upstream Tensil does.

`export check` runs this front end without lowering: the two cannot disagree.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper

from contracts import onnx_path
from tensil.compiler.errors import CompileError
from tensil.compiler.graph import Graph, HostView, Op, Shape

MIN_OPSET, MAX_OPSET = 1, 24  # operator semantics we rely on are unchanged up to 24
# Ops evaluated at compile time when all their inputs are constants (PyTorch's shape chains).
FOLDABLE = {
    "Shape", "Gather", "Unsqueeze", "Squeeze", "Concat", "Cast", "Slice", "Reshape", "Mul", "Add",
    "Sub", "Div", "Identity", "Flatten", "Constant", "ConstantOfShape", "Transpose",
}


FLATTEN_ORDERS = ("nhwc", "onnx")
# Ops that only relabel a tensor (no data moves when they are accepted).
RELABEL_OPS = ("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Dropout")
# Why an operator is refused, with what upstream Tensil v1.0.15 does with it.
REFUSED = {
    "Upsample": "upstream Tensil v1.0.15 refuses Upsample too; use a strided layout without upsampling",
    "ConvTranspose": "upstream Tensil v1.0.15 refuses ConvTranspose too",
    "Sigmoid": "upstream Tensil v1.0.15 refuses Sigmoid too (no non-linear SIMD ops besides max/min)",
    "Tanh": "upstream Tensil v1.0.15 refuses Tanh too",
    "Exp": "upstream Tensil v1.0.15 refuses Exp too",
    "HardSigmoid": "upstream Tensil v1.0.15 refuses it too; compute it on the host",
    "HardSwish": "upstream Tensil v1.0.15 refuses it too; replace it with Relu or Clip (ReLU6)",
    "InstanceNormalization": "upstream Tensil v1.0.15 refuses it too; use BatchNormalization (folded into the "
                             "convolution)",
    "LayerNormalization": "upstream Tensil v1.0.15 refuses it too; use BatchNormalization",
}


@dataclass(frozen=True)
class FrontendOptions:
    """Choices of the front end (the same in `export check` and `compile`)."""

    drop_softmax: bool = False  # a Softmax at the output is dropped silently (else: dropped with a warning)
    flatten_order: str = "nhwc"  # order of a flattened spatial map at the output: upstream's or ONNX's

    def __post_init__(self) -> None:
        if self.flatten_order not in FLATTEN_ORDERS:
            raise CompileError(f"flatten order {self.flatten_order!r} is not one of {', '.join(FLATTEN_ORDERS)}")


def _attrs(node: onnx.NodeProto) -> dict:
    return {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}


def _where(node: onnx.NodeProto) -> str:
    return f"node {node.name or node.output[0]!r} ({node.op_type})"


class _Frontend:
    """One pass over the ONNX nodes in their (topological) order."""

    def __init__(self, model: onnx.ModelProto, options: FrontendOptions):
        self.model = model
        self.options = options
        self.opset = 0  # the model's default-domain opset, set by `run`
        self.views: dict[str, HostView] = {}
        self.warnings: list[str] = []
        self.vector_views: dict[str, list[int]] = {}  # (C,1,1) tensors whose ONNX shape moved 1-sized axes
        self.nhwc_inputs: dict[str, str] = {}
        self.softmax_of: dict[str, str] = {}  # output of a dropped Softmax -> its input
        self.nhwc_maps: dict[str, str] = {}  # Transpose(0,2,3,1) output -> the (C, H, W) map it relabels
        self.flat_nhwc: set[str] = set()  # flattened maps whose ONNX order is (y, x, c)  # Transpose(0,3,1,2) output -> the NHWC graph input
        self.uses: dict[str, int] = {}
        for node in model.graph.node:
            for i in node.input:
                self.uses[i] = self.uses.get(i, 0) + 1
        self.graph_outputs = {o.name for o in model.graph.output}
        self.consts: dict[str, np.ndarray] = {}
        self.shapes: dict[str, Shape] = {}
        self.alias: dict[str, str] = {}
        self.flat: dict[str, str] = {}  # flattened spatial map -> the (C, H, W) map it came from
        self.padded: dict[str, tuple[str, tuple[int, int, int, int]]] = {}
        self.ops: list[Op] = []
        self.io_shapes: dict[str, list[int]] = {}
        self.rank: dict[str, int] = {}

    # ------------------------------------------------------------------ helpers
    def name(self, tensor: str) -> str:
        while tensor in self.alias:
            tensor = self.alias[tensor]
        return tensor

    def const(self, node, index: int, what: str) -> np.ndarray:
        if index >= len(node.input) or not node.input[index]:
            raise CompileError(f"{_where(node)}: missing {what}")
        t = node.input[index]
        if t not in self.consts:
            raise CompileError(f"{_where(node)}: {what} must be a constant (initializer), "
                               f"{t!r} is computed at run time")
        return self.consts[t]

    def opt_const(self, node, index: int) -> np.ndarray | None:
        if index >= len(node.input) or not node.input[index]:
            return None
        return self.const(node, index, f"input {index}")

    def act(self, node, index: int = 0) -> str:
        t = node.input[index]
        if t in self.consts:
            raise CompileError(f"{_where(node)}: input {t!r} is a constant; only activations are supported there")
        if t in self.padded and node.op_type != "Conv":
            raise CompileError(f"{_where(node)}: Pad is only supported in front of a Conv")
        if t in self.flat and node.op_type not in ("Gemm", "MatMul", "Softmax"):
            raise CompileError(
                f"{_where(node)}: a Flatten/Reshape of a spatial map (H*W > 1) is only supported "
                "in front of Gemm/MatMul"
            )
        if t in self.flat or t in self.padded:
            return t
        if t in self.nhwc_maps:
            if node.op_type not in ("Reshape", "Flatten"):
                raise CompileError(f"{_where(node)}: a Transpose(0,2,3,1) of a spatial map is only accepted in front "
                                   "of a Flatten or Reshape to (1, H*W*C) (Keras' Flatten)")
            return t
        if t in self.vector_views and node.op_type not in (*RELABEL_OPS, "Softmax"):
            raise CompileError(
                f"{_where(node)}: input {t!r} has the ONNX shape {self.vector_views[t]} (a vector whose 1-sized axes "
                "were moved); only a Reshape back to (1, C) or (1, C, 1, 1) may follow it"
            )
        t = self.name(t)
        if t not in self.shapes:
            raise CompileError(f"{_where(node)}: input {t!r} is unknown")
        return t

    def rank_of(self, node, index: int = 0) -> int:
        """ONNX rank of a node's input: an alias (Flatten, Squeeze, ...) has its own rank."""
        t = node.input[index]
        return self.rank.get(t) or self.rank.get(self.name(t), 4)

    def emit(self, node, kind: str, inputs: list[str], shape: Shape, **attrs) -> None:
        out = node.output[0]
        self.ops.append(Op(kind, node.name or out, inputs, out, attrs))
        self.shapes[out] = shape

    # ------------------------------------------------------------------ driver
    def run(self) -> Graph:
        m = self.model
        opsets = {o.domain: o.version for o in m.opset_import}
        version = opsets.get("", opsets.get("ai.onnx", 0))
        self.opset = version
        if not MIN_OPSET <= version <= MAX_OPSET:
            raise CompileError(f"ONNX opset {version} is not supported (supported: {MIN_OPSET}..{MAX_OPSET})")
        g = m.graph
        for init in g.initializer:
            self.consts[init.name] = numpy_helper.to_array(init)
        inputs = [i for i in g.input if i.name not in self.consts]
        if not inputs:
            raise CompileError("the model has no run-time input")
        self.refuse_unknown_operators()
        for vi in inputs:
            self.shapes[vi.name] = self.input_shape(vi)
        for node in g.node:
            if node.domain not in ("", "ai.onnx"):
                raise CompileError(f"{_where(node)}: operator domain {node.domain!r} is not supported")
            if node.op_type == "Constant" or (node.op_type in FOLDABLE and self.all_known(node)):
                self.fold(node)
                continue
            handler = getattr(self, f"op_{node.op_type}", None)
            if handler is None:
                why = REFUSED.get(node.op_type, "upstream Tensil v1.0.15 refuses it too")
                raise CompileError(f"{_where(node)}: operator {node.op_type} is not supported by the Tensil "
                                   f"compiler ({why})")
            handler(node)
        outputs = []
        for vo in g.output:
            if vo.name in self.consts:
                raise CompileError(f"output {vo.name!r} is a constant")
            if vo.name in self.nhwc_maps:
                raise CompileError(f"output {vo.name!r} is a Transpose(0,2,3,1) of a spatial map (an NHWC output); "
                                   "flatten it in the graph, or return the NCHW map and transpose on the host")
            if vo.name in self.padded:
                raise CompileError(f"output {vo.name!r}: a graph output cannot be a Pad; pad inside the network")
            if vo.name in self.flat:
                self.flatten_output(vo.name)
                outputs.append(vo.name)
                continue
            src = self.name(vo.name)
            if src in [i.name for i in inputs]:
                raise CompileError(f"output {vo.name!r} is the graph input itself: nothing to compile")
            if src != vo.name:
                if src in outputs or any(self.name(o.name) == src for o in g.output if o.name != vo.name):
                    raise CompileError(f"outputs {vo.name!r} and another output are the same tensor")
                self.rename(src, vo.name)
            outputs.append(vo.name)
            c, h, w = self.shapes[vo.name]
            self.io_shapes[vo.name] = [1, c] if self.rank.get(vo.name, 4) == 2 else [1, c, h, w]
            if vo.name in self.vector_views:
                self.io_shapes[vo.name] = [1, c]
                self.views.setdefault(vo.name, HostView(vo.name, tuple(self.vector_views[vo.name]),
                                                        note="returned as (1, C): only 1-sized axes differ"))
        return Graph(self.ops, self.shapes, [i.name for i in inputs], outputs, self.io_shapes, self.views,
                     self.warnings)

    def refuse_unknown_operators(self) -> None:
        """Name the first operator the compiler has no rule for (and every such kind) before anything else."""
        unknown = [n for n in self.model.graph.node
                   if n.domain not in ("", "ai.onnx")
                   or (n.op_type not in FOLDABLE and not hasattr(self, f"op_{n.op_type}"))]
        if not unknown:
            return
        node = unknown[0]
        if node.domain not in ("", "ai.onnx"):
            raise CompileError(f"{_where(node)}: operator domain {node.domain!r} is not supported")
        kinds = sorted({n.op_type for n in unknown})
        others = f"; also refused: {', '.join(k for k in kinds if k != node.op_type)}" if len(kinds) > 1 else ""
        why = REFUSED.get(node.op_type, "upstream Tensil v1.0.15 refuses it too")
        raise CompileError(f"{_where(node)}: operator {node.op_type} is not supported by the Tensil compiler "
                           f"({why}){others}")

    def flatten_output(self, out: str) -> None:
        """A graph output that flattens a spatial map: a 0/1 copy layer into (C*H*W, 1, 1)."""
        src = self.flat[out]
        c, h, w = self.shapes[src]
        n = c * h * w
        cc, yy, xx = np.meshgrid(np.arange(c), np.arange(h), np.arange(w), indexing="ij")
        onnx_index = (cc * h * w + yy * w + xx).ravel()  # ONNX flattens NCHW
        nhwc_index = ((yy * w + xx) * c + cc).ravel()
        if out in self.flat_nhwc:  # the ONNX model itself flattens (y, x, c): nothing to permute
            onnx_index = nhwc_index
        ours = nhwc_index if self.options.flatten_order == "nhwc" else onnx_index
        weight = np.zeros((n, c, h, w))
        weight[ours, cc.ravel(), yy.ravel(), xx.ravel()] = 1.0
        self.ops.append(Op("conv", f"{out}/flatten_copy", [src], out,
                           dict(weight=weight, bias=np.zeros(n), strides=(1, 1), pads=(0, 0, 0, 0), copy=True)))
        del self.flat[out]
        self.shapes[out] = (n, 1, 1)
        self.rank[out] = 2
        self.io_shapes[out] = [1, n]
        reference = self.softmax_of.get(out, out)
        if self.options.flatten_order == "onnx" or out in self.flat_nhwc:
            if reference != out:
                self.views[out] = HostView(reference, (1, n), note="Softmax dropped: the output is its input")
        else:
            perm = np.empty(n, dtype=np.int64)
            perm[nhwc_index] = onnx_index
            self.views[out] = HostView(reference, (1, n), tuple(int(v) for v in perm),
                                       note="flattened in NHWC order (y, x, c), like upstream Tensil")
            self.warnings.append(
                f"output {out!r} flattens a {c}x{h}x{w} map: its {n} features come in upstream Tensil's NHWC order "
                "(y, x, c), a fixed permutation of ONNX's (c, y, x) (distances and nearest-class-mean are unchanged; "
                "`--flatten-order onnx` keeps ONNX's order)"
            )

    def rename(self, old: str, new: str) -> None:
        for op in self.ops:
            op.inputs = [new if i == old else i for i in op.inputs]
            if op.output == old:
                op.output = new
        self.shapes[new] = self.shapes.pop(old)
        alias_rank = self.rank.get(new)
        source_rank = self.rank.pop(old, 4)
        self.rank[new] = alias_rank if alias_rank is not None else source_rank

    def input_shape(self, vi: onnx.ValueInfoProto) -> Shape:
        tt = vi.type.tensor_type
        if tt.elem_type != onnx.TensorProto.FLOAT:
            raise CompileError(f"input {vi.name!r}: only float32 inputs are supported")
        dims = []
        for d in tt.shape.dim:
            if not d.HasField("dim_value"):
                raise CompileError(f"input {vi.name!r} has a dynamic dimension {d.dim_param!r}; "
                                   "export with static shapes")
            dims.append(d.dim_value)
        self.io_shapes[vi.name] = dims
        if len(dims) not in (2, 4) or dims[0] != 1:
            raise CompileError(f"input {vi.name!r}: shape {dims} is not (1, C, H, W) or (1, F) (batch must be 1)")
        self.rank[vi.name] = len(dims)
        transpose = self.nhwc_transpose(vi.name) if len(dims) == 4 else None
        if transpose is not None:  # upstream's special case: the input is NHWC already
            self.nhwc_inputs[transpose.output[0]] = vi.name
            self.io_shapes[vi.name] = [1, dims[3], dims[1], dims[2]]
            self.views[vi.name] = HostView(vi.name, tuple(dims), (0, 3, 1, 2),
                                           note="NHWC input: the host transposes it (0, 3, 1, 2)")
            return (dims[3], dims[1], dims[2])
        return (dims[1], dims[2], dims[3])

    def nhwc_transpose(self, name: str) -> onnx.NodeProto | None:
        """The Transpose(0,3,1,2) that is the sole consumer of graph input `name`, if any."""
        users = [n for n in self.model.graph.node if name in n.input]
        if len(users) == 1 and users[0].op_type == "Transpose" and list(_attrs(users[0]).get("perm", [])) == [0, 3, 1, 2]:
            return users[0]
        return None

    # ------------------------------------------------------------------ constant folding
    def all_known(self, node) -> bool:
        if node.op_type == "Shape":
            t = node.input[0]
            return t in self.consts or self.name(t) in self.shapes
        return all((not i) or i in self.consts for i in node.input)

    def onnx_shape(self, t: str) -> list[int]:
        t = self.name(t)
        c, h, w = self.shapes[t]
        return [1, c] if self.rank.get(t, 4) == 2 else [1, c, h, w]

    def fold(self, node) -> None:
        a = _attrs(node)
        op = node.op_type
        x = [self.consts[i] if i else None for i in node.input] if op != "Shape" else []
        try:
            if op == "Constant":
                if "value" not in a:
                    raise CompileError(f"{_where(node)}: only the 'value' form of Constant is supported")
                out = numpy_helper.to_array(a["value"])
            elif op == "Shape":
                t = node.input[0]
                out = np.array(self.consts[t].shape if t in self.consts else self.onnx_shape(t), dtype=np.int64)
            elif op == "Gather":
                out = np.take(x[0], x[1], axis=a.get("axis", 0))
            elif op == "Unsqueeze":
                axes = a["axes"] if "axes" in a else [int(v) for v in x[1]]
                out = x[0]
                for ax in sorted(ax % (out.ndim + len(axes)) for ax in axes):
                    out = np.expand_dims(out, ax)
            elif op == "Squeeze":
                axes = a.get("axes") if len(x) < 2 else [int(v) for v in x[1]]
                out = np.squeeze(x[0], axis=tuple(axes) if axes is not None else None)
            elif op == "Concat":
                out = np.concatenate([np.atleast_1d(v) for v in x], axis=a.get("axis", 0))
            elif op == "Cast":
                out = x[0].astype(onnx.helper.tensor_dtype_to_np_dtype(a["to"]))
            elif op == "Slice":
                starts, ends = (a["starts"], a["ends"]) if "starts" in a else (x[1], x[2])
                axes = a.get("axes") if "starts" in a else (x[3] if len(x) > 3 and x[3] is not None else None)
                steps = x[4] if len(x) > 4 and x[4] is not None else None
                axes = list(range(len(starts))) if axes is None else list(axes)
                sl = [slice(None)] * x[0].ndim
                for i, ax in enumerate(axes):
                    sl[int(ax)] = slice(int(starts[i]), int(ends[i]), int(steps[i]) if steps is not None else 1)
                out = x[0][tuple(sl)]
            elif op == "Reshape":
                shape = a["shape"] if "shape" in a else [int(v) for v in x[1]]
                shape = [x[0].shape[i] if s == 0 else s for i, s in enumerate(shape)]
                out = x[0].reshape(shape)
            elif op in ("Mul", "Add", "Sub", "Div"):
                f = {"Mul": np.multiply, "Add": np.add, "Sub": np.subtract, "Div": np.divide}[op]
                out = f(x[0], x[1])
                if op == "Div" and np.issubdtype(x[0].dtype, np.integer):
                    out = np.floor_divide(x[0], x[1])
                out = out.astype(np.result_type(x[0], x[1]))
            elif op == "Identity":
                out = x[0]
            elif op == "Flatten":
                ax = a.get("axis", 1)
                out = x[0].reshape(int(np.prod(x[0].shape[:ax])), -1)
            elif op == "ConstantOfShape":
                value = numpy_helper.to_array(a["value"]) if "value" in a else np.zeros(1, np.float32)
                out = np.full([int(v) for v in x[0]], value.reshape(-1)[0], dtype=value.dtype)
            elif op == "Transpose":
                out = np.transpose(x[0], a.get("perm"))
            else:  # pragma: no cover - FOLDABLE and this chain agree
                raise CompileError(f"{_where(node)}: cannot fold")
        except CompileError:
            raise
        except Exception as e:
            raise CompileError(f"{_where(node)}: constant folding failed ({e})") from None
        self.consts[node.output[0]] = np.asarray(out)

    # ------------------------------------------------------------------ relabelling ops
    def relabel(self, node, shape: list[int]) -> None:
        """Reshape-like node: an alias when the (C, H, W) layout is unchanged."""
        x = self.act(node)
        if x in self.nhwc_maps:
            src = self.nhwc_maps[x]
            c, h, w = self.shapes[src]
            if shape != [1, h * w * c]:
                raise CompileError(f"{_where(node)}: a Transpose(0,2,3,1) of a spatial map may only be flattened to "
                                   f"[1, {h * w * c}], not {shape}")
            self.flat[node.output[0]] = src
            self.flat_nhwc.add(node.output[0])
            self.rank[node.output[0]] = 2
            return
        if x in self.flat:
            raise CompileError(f"{_where(node)}: cannot reshape a flattened spatial map again")
        c, h, w = self.shapes[x]
        out = node.output[0]
        if shape and shape[0] != 1:
            raise CompileError(f"{_where(node)}: result shape {shape} changes the batch dimension")
        if len(shape) == 2 and shape[1] == c * h * w:
            if h * w == 1:
                self.alias[out] = x
            else:
                self.flat[out] = x
                self.shapes[out] = (c * h * w, 1, 1)
            self.rank[out] = 2
            return
        if len(shape) == 4 and tuple(shape[1:]) == (c, h, w):
            self.alias[out] = x
            self.rank[out] = 4
            return
        if len(shape) == 4 and h * w == 1 and shape[1] == c and shape[2] == shape[3] == 1:
            self.alias[out] = x
            self.rank[out] = 4
            return
        if h * w == 1 and shape and int(np.prod(shape)) == c and sum(s != 1 for s in shape) <= 1:
            self.alias[out] = x  # a vector: only 1-sized axes move, the data order is unchanged
            self.vector_views[out] = list(shape)
            self.rank[out] = 2
            return
        raise CompileError(
            f"{_where(node)}: reshape of {self.onnx_shape(x)} to {shape} moves data in Tensil's layout (channels "
            "in lanes); only reshapes that keep (C, H, W) or move 1-sized axes are accepted (upstream v1.0.15 "
            "permutes lanes with MatMuls, in NHWC order)"
        )

    def source_shape(self, node) -> list[int]:
        """The ONNX shape of a relabelling node's input."""
        t = node.input[0]
        if t in self.vector_views:
            return list(self.vector_views[t])
        if t in self.nhwc_maps:
            c, h, w = self.shapes[self.nhwc_maps[t]]
            return [1, h, w, c]
        return self.onnx_shape(self.act(node))

    def op_Reshape(self, node) -> None:
        a = _attrs(node)
        shape = list(a["shape"]) if "shape" in a else [int(v) for v in self.const(node, 1, "shape")]
        src = self.source_shape(node) if node.input[0] not in self.flat else None
        if src is None:
            raise CompileError(f"{_where(node)}: cannot reshape a flattened spatial map again")
        shape = [src[i] if s == 0 and i < len(src) else s for i, s in enumerate(shape)]
        if shape.count(-1) == 1:
            known = int(np.prod([s for s in shape if s != -1]))
            shape[shape.index(-1)] = int(np.prod(src)) // max(known, 1)
        self.relabel(node, shape)

    def op_Flatten(self, node) -> None:
        axis = _attrs(node).get("axis", 1)
        src = self.source_shape(node)
        axis = axis % len(src) if axis < 0 else axis
        self.relabel(node, [int(np.prod(src[:axis])), int(np.prod(src[axis:]))])

    def op_Squeeze(self, node) -> None:
        a = _attrs(node)
        src = self.source_shape(node)
        axes = a.get("axes") if len(node.input) < 2 else [int(v) for v in self.const(node, 1, "axes")]
        if axes is None:
            axes = [i for i, s in enumerate(src) if s == 1 and i > 0]
        axes = [ax % len(src) for ax in axes]
        self.relabel(node, [s for i, s in enumerate(src) if i not in axes])

    def op_Unsqueeze(self, node) -> None:
        a = _attrs(node)
        src = self.source_shape(node)
        axes = a.get("axes") if len(node.input) < 2 else [int(v) for v in self.const(node, 1, "axes")]
        shape = list(src)
        for ax in sorted(ax % (len(src) + len(axes)) for ax in axes):
            shape.insert(ax, 1)
        self.relabel(node, shape)

    def op_Transpose(self, node) -> None:
        if node.output[0] in self.nhwc_inputs:
            self.alias[node.output[0]] = self.nhwc_inputs[node.output[0]]
            self.rank[node.output[0]] = 4
            return
        if node.input[0] in self.flat:
            raise CompileError(f"{_where(node)}: cannot transpose a flattened spatial map")
        src = self.source_shape(node)
        perm = list(_attrs(node).get("perm", reversed(range(len(src)))))
        x = self.name(node.input[0])
        if perm == [0, 2, 3, 1] and len(src) == 4 and x in self.shapes and node.input[0] not in self.vector_views \
                and self.shapes[x][1] * self.shapes[x][2] > 1:
            self.nhwc_maps[node.output[0]] = self.act(node)
            return
        moved = [p for p in perm if src[p] != 1]
        if moved != sorted(moved):
            raise CompileError(
                f"{_where(node)}: Transpose with perm {perm} of {src} moves data; only a Transpose(0,3,1,2) that is "
                "the sole consumer of the graph input (an NHWC input) or one that moves 1-sized axes is accepted "
                "(upstream v1.0.15 relabels the dimensions without moving data, which is wrong here); do the "
                "transpose on the host"
            )
        self.relabel(node, [src[p] for p in perm])

    def op_Softmax(self, node) -> None:
        out = node.output[0]
        if out not in self.graph_outputs or self.uses.get(out, 0):
            raise CompileError(
                f"{_where(node)}: Softmax is only accepted as the last node before a graph output (a no-op there, "
                "like upstream v1.0.15, which copies its input unchanged everywhere); move it to the host"
            )
        x = self.act(node)
        self.softmax_of[out] = node.input[0]
        if x in self.flat:
            self.flat[out] = self.flat[x]
            if x in self.flat_nhwc:
                self.flat_nhwc.add(out)
        else:
            self.alias[out] = x
            self.rank[out] = self.rank_of(node)
            if node.input[0] in self.vector_views:
                self.vector_views[out] = self.vector_views[node.input[0]]
            shape = self.vector_views.get(node.input[0]) or self.onnx_shape(x)
            self.views[out] = HostView(node.input[0], tuple(shape), note="Softmax dropped: the output is its input")
        if not self.options.drop_softmax:
            self.warnings.append(
                f"{_where(node)}: Softmax at the output is dropped (like upstream Tensil v1.0.15): output {out!r} "
                "holds its input, the logits (argmax and ranking are unchanged; apply softmax on the host if "
                "probabilities are needed; `--drop-softmax` says this is intended)"
            )

    def op_Identity(self, node) -> None:
        self.alias[node.output[0]] = self.act(node)

    def op_Dropout(self, node) -> None:
        if len(node.output) > 1 and node.output[1]:
            raise CompileError(f"{_where(node)}: the mask output of Dropout is not supported")
        self.alias[node.output[0]] = self.act(node)

    def op_Pad(self, node) -> None:
        a = _attrs(node)
        mode = a.get("mode", b"constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        pads = list(a["pads"]) if "pads" in a else [int(v) for v in self.const(node, 1, "pads")]
        value = a.get("value", 0.0)
        if len(node.input) > 2 and node.input[2]:
            value = float(self.const(node, 2, "constant value").reshape(-1)[0])
        if mode != "constant" or value != 0.0:
            raise CompileError(f"{_where(node)}: only constant zero padding is supported "
                               f"(got mode {mode}, value {value}; upstream v1.0.15 pads with zeros whatever the "
                               "mode and value); export with zero padding")
        if len(node.input) > 3 and node.input[3]:
            raise CompileError(f"{_where(node)}: the axes input of Pad is not supported")
        if len(pads) != 8 or any(pads[i] for i in (0, 1, 4, 5)) or min(pads) < 0:
            raise CompileError(f"{_where(node)}: only non-negative padding of H and W is supported, got {pads}")
        x = self.act(node)
        if x in self.padded:
            raise CompileError(f"{_where(node)}: two Pads in a row are not supported")
        self.padded[node.output[0]] = (x, (pads[2], pads[3], pads[6], pads[7]))

    # ------------------------------------------------------------------ compute ops
    def op_Conv(self, node) -> None:
        a = _attrs(node)
        x = self.act(node)
        extra = (0, 0, 0, 0)
        if x in self.padded:
            x, extra = self.padded[x]
        c, h, w = self.shapes[x]
        weight = self.const(node, 1, "weight").astype(np.float64)
        bias = self.opt_const(node, 2)
        if weight.ndim != 4:
            raise CompileError(f"{_where(node)}: only 2-D convolutions are supported (weight rank {weight.ndim})")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise CompileError(f"{_where(node)}: dilations {list(a['dilations'])} are not supported (upstream v1.0.15 "
                               "silently ignores them); use an undilated kernel")
        group = a.get("group", 1)
        co, cig, kh, kw = weight.shape
        if cig * group != c or co % group:
            raise CompileError(f"{_where(node)}: weight {list(weight.shape)} and group {group} "
                               f"do not match {c} input channels")
        if "kernel_shape" in a and tuple(a["kernel_shape"]) != (kh, kw):
            raise CompileError(f"{_where(node)}: kernel_shape {list(a['kernel_shape'])} differs from the weight")
        sh, sw = a.get("strides", [1, 1])
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto in ("SAME_UPPER", "SAME_LOWER"):
            ph = max((-(-h // sh) - 1) * sh + kh - h, 0)
            pw = max((-(-w // sw) - 1) * sw + kw - w, 0)
            lo_h, lo_w = (ph // 2, pw // 2) if auto == "SAME_UPPER" else (ph - ph // 2, pw - pw // 2)
            pads = (lo_h, lo_w, ph - lo_h, pw - lo_w)
        elif auto in ("NOTSET", "VALID"):
            p = a.get("pads", [0, 0, 0, 0]) if auto == "NOTSET" else [0, 0, 0, 0]
            pads = (p[0], p[1], p[2], p[3])
        else:
            raise CompileError(f"{_where(node)}: auto_pad {auto} is not supported")
        pads = tuple(int(p + e) for p, e in zip(pads, extra))
        dense = np.zeros((co, c, kh, kw))
        per = co // group
        for gi in range(group):
            dense[gi * per:(gi + 1) * per, gi * cig:(gi + 1) * cig] = weight[gi * per:(gi + 1) * per]
        b = np.zeros(co) if bias is None else bias.astype(np.float64).reshape(co)
        self.conv(node, x, dense, b, (int(sh), int(sw)), pads)

    def conv(self, node, x: str, weight: np.ndarray, bias: np.ndarray, strides, pads) -> None:
        c, h, w = self.shapes[x]
        kh, kw = weight.shape[2:]
        ho = (h + pads[0] + pads[2] - kh) // strides[0] + 1
        wo = (w + pads[1] + pads[3] - kw) // strides[1] + 1
        if ho < 1 or wo < 1 or min(strides) < 1:
            raise CompileError(f"{_where(node)}: kernel {kh}x{kw} does not fit the {h}x{w} input")
        self.emit(node, "conv", [x], (weight.shape[0], ho, wo), weight=weight, bias=bias, strides=strides, pads=pads)
        self.rank[node.output[0]] = 4

    def dense(self, node, weight_kn: np.ndarray, bias: np.ndarray) -> None:
        """(1, K) x (K, N) + bias, as a convolution over the map the K features came from."""
        x = self.act(node)
        src = self.flat.get(x)
        k, n = weight_kn.shape
        if src is not None:
            c, h, w = self.shapes[src]
            if c * h * w != k:
                raise CompileError(f"{_where(node)}: {k} weight rows for {c * h * w} features")
            if x in self.flat_nhwc:  # Keras' Flatten behind Transpose(0,2,3,1): row = (y*W + x)*C + c
                weight = weight_kn.T.reshape(n, h, w, c).transpose(0, 3, 1, 2)
            else:
                weight = weight_kn.T.reshape(n, c, h, w)  # ONNX flattens NCHW: row = c*H*W + y*W + x
            x = src
        else:
            c, h, w = self.shapes[x]
            if (h, w) != (1, 1) or c != k:
                raise CompileError(f"{_where(node)}: input of shape {self.onnx_shape(x)} "
                                   f"does not match weight rows {k}")
            weight = weight_kn.T.reshape(n, k, 1, 1)
        self.conv(node, x, weight, bias, (1, 1), (0, 0, 0, 0))
        self.rank[node.output[0]] = 2

    def op_Gemm(self, node) -> None:
        a = _attrs(node)
        if a.get("transA", 0):
            raise CompileError(f"{_where(node)}: transA=1 is not supported")
        b = self.const(node, 1, "B").astype(np.float64)
        if b.ndim != 2:
            raise CompileError(f"{_where(node)}: B must be 2-D")
        b = (b.T if a.get("transB", 0) else b) * a.get("alpha", 1.0)
        c = self.opt_const(node, 2)
        n = b.shape[1]
        bias = np.zeros(n)
        if c is not None:
            bias = np.broadcast_to(c.astype(np.float64).reshape(-1), (n,)) * a.get("beta", 1.0)
        self.dense(node, b, np.array(bias, dtype=np.float64))

    def op_MatMul(self, node) -> None:
        b = self.const(node, 1, "B").astype(np.float64)
        if b.ndim != 2:
            raise CompileError(f"{_where(node)}: B must be a 2-D constant")
        self.dense(node, b, np.zeros(b.shape[1]))

    def op_BatchNormalization(self, node) -> None:
        a = _attrs(node)
        if a.get("training_mode", 0):
            raise CompileError(f"{_where(node)}: training_mode=1 is not supported")
        if any(o for o in node.output[1:]):
            raise CompileError(f"{_where(node)}: running-statistics outputs are not supported")
        x = self.act(node)
        gamma, beta, mean, var = (self.const(node, i, n).astype(np.float64) for i, n in
                                  ((1, "scale"), (2, "B"), (3, "mean"), (4, "var")))
        c = self.shapes[x][0]
        if any(v.shape != (c,) for v in (gamma, beta, mean, var)) or a.get("spatial", 1) != 1:
            raise CompileError(f"{_where(node)}: only per-channel BatchNormalization ({c} values each) is supported")
        scale = gamma / np.sqrt(var + a.get("epsilon", 1e-5))
        self.emit(node, "affine", [x], self.shapes[x], scale=scale, offset=beta - mean * scale)
        self.rank[node.output[0]] = self.rank_of(node)

    def channel_const(self, node, value: np.ndarray, x: str) -> np.ndarray | None:
        """The constant as one value per channel of `x`, or None when it varies over H or W."""
        c = self.shapes[x][0]
        v = np.asarray(value, dtype=np.float64)
        r = self.rank_of(node, next(i for i, t in enumerate(node.input) if t not in self.consts))
        if v.size == 1:
            return np.full(c, float(v.reshape(-1)[0]))
        shape = list(v.shape)
        while len(shape) < r:
            shape.insert(0, 1)
        if len(shape) == r and shape[0] == 1 and shape[1] == c and all(s == 1 for s in shape[2:]):
            return v.reshape(c)
        return None

    def const_tensor(self, node, value: np.ndarray, like: str) -> str:
        """A constant broadcast to the (C, H, W) of activation `like`, as a tensor of its own."""
        c, h, w = self.shapes[like]
        try:
            full = np.broadcast_to(np.asarray(value, dtype=np.float64), (1, c, h, w))[0]
        except ValueError:
            raise CompileError(f"{_where(node)}: constant of shape {list(np.shape(value))} does not broadcast to "
                               f"{self.onnx_shape(like)}") from None
        if self.rank_of(node, next(i for i, t in enumerate(node.input) if t not in self.consts)) != 4:
            raise CompileError(f"{_where(node)}: constant of shape {list(np.shape(value))} is not per-feature "
                               f"for {self.onnx_shape(like)}")
        name = f"{node.output[0]}/constant"
        self.ops.append(Op("const", f"{node.name or node.output[0]}/constant", [], name, {"values": full.copy()}))
        self.shapes[name] = (c, h, w)
        return name

    def binary(self, node, kind: str) -> None:
        a_const, b_const = (node.input[i] in self.consts for i in (0, 1))
        if not a_const and not b_const:
            self.two_activations(node, kind, self.act(node, 0), self.act(node, 1))
            return
        xi = 1 if a_const else 0
        x = self.act(node, xi)
        value = self.consts[node.input[1 - xi]]
        v = self.channel_const(node, value, x)
        if a_const and kind == "Div":
            raise CompileError(f"{_where(node)}: a constant divided by an activation is not supported "
                               "(upstream v1.0.15 refuses it too)")
        if v is None:  # varies over H or W: a constant tensor, then an operation on two tensors
            if kind == "Div":
                value, kind = 1.0 / np.asarray(value, dtype=np.float64), "Mul"
            t = self.const_tensor(node, value, x)
            self.two_activations(node, kind, *((t, x) if a_const else (x, t)))
            return
        c = self.shapes[x][0]
        scale, offset = {
            "Add": (np.ones(c), v), "Sub": (-np.ones(c), v) if a_const else (np.ones(c), -v),
            "Mul": (v, np.zeros(c)), "Div": (1.0 / v, np.zeros(c)),
        }[kind]
        self.emit(node, "affine", [x], self.shapes[x], scale=scale, offset=offset)
        self.rank[node.output[0]] = self.rank_of(node, xi)

    def two_activations(self, node, kind: str, xa: str, xb: str) -> None:
        """Add, Sub or Mul of two tensors of one shape (Div is refused, as upstream does)."""
        if kind == "Div":
            raise CompileError(f"{_where(node)}: Div of two activations is not supported (upstream v1.0.15 "
                               "refuses it too); divide on the host or by a constant")
        if self.shapes[xa] != self.shapes[xb]:
            raise CompileError(f"{_where(node)}: broadcasting {self.shapes[xa]} with {self.shapes[xb]} "
                               "is not supported")
        if kind == "Mul":
            self.emit(node, "mul", [xa, xb], self.shapes[xa])
        else:
            if kind == "Sub":  # a - b = a + (-1 * b): the negation folds into b's layer, the sum accumulates
                c = self.shapes[xb][0]
                negated = f"{node.output[0]}/negated_b"
                self.ops.append(Op("affine", f"{node.name or node.output[0]}/negate", [xb], negated,
                                   {"scale": -np.ones(c), "offset": np.zeros(c)}))
                self.shapes[negated] = self.shapes[xb]
                xb = negated
            self.emit(node, "add", [xa, xb], self.shapes[xa])
        self.rank[node.output[0]] = self.rank_of(node, next(i for i, t in enumerate(node.input) if t not in self.consts))

    def op_Add(self, node) -> None:
        self.binary(node, "Add")

    def op_Sub(self, node) -> None:
        self.binary(node, "Sub")

    def op_Mul(self, node) -> None:
        self.binary(node, "Mul")

    def op_Div(self, node) -> None:
        self.binary(node, "Div")

    def unary(self, node, kind: str, **attrs) -> None:
        x = self.act(node)
        self.emit(node, kind, [x], self.shapes[x], **attrs)
        self.rank[node.output[0]] = self.rank_of(node)

    def op_Relu(self, node) -> None:
        self.unary(node, "relu")

    def op_LeakyRelu(self, node) -> None:
        alpha = float(_attrs(node).get("alpha", 0.01))
        if not 0.0 <= alpha <= 1.0:
            raise CompileError(f"{_where(node)}: LeakyRelu alpha {alpha} outside [0, 1] is not supported")
        self.unary(node, "leaky", alpha=alpha)

    def op_Clip(self, node) -> None:
        a = _attrs(node)
        lo, hi = a.get("min", -np.inf), a.get("max", np.inf)
        if len(node.input) > 1 and node.input[1]:
            lo = float(self.const(node, 1, "min").reshape(-1)[0])
        if len(node.input) > 2 and node.input[2]:
            hi = float(self.const(node, 2, "max").reshape(-1)[0])
        if lo > 0.0 or hi < 0.0:
            raise CompileError(f"{_where(node)}: Clip to [{lo}, {hi}] excludes 0; not supported "
                               "(padding lanes must stay 0)")
        if lo == 0.0 and hi == np.inf:
            self.unary(node, "relu")
        else:
            self.unary(node, "clip", lo=float(lo), hi=float(hi))

    def pool_attrs(self, node) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int, int, int]]:
        a = _attrs(node)
        if len(node.output) > 1 and node.output[1]:
            raise CompileError(f"{_where(node)}: the indices output is not supported")
        k = tuple(a["kernel_shape"])
        if len(k) != 2:
            raise CompileError(f"{_where(node)}: only 2-D pooling is supported")
        s = tuple(a.get("strides", [1, 1]))
        p = tuple(a.get("pads", [0, 0, 0, 0]))
        auto = a.get("auto_pad", b"NOTSET")
        auto = auto.decode() if isinstance(auto, bytes) else auto
        if auto not in ("NOTSET", "VALID"):
            raise CompileError(f"{_where(node)}: auto_pad {auto} is not supported for pooling")
        if any(d != 1 for d in a.get("dilations", [1, 1])):
            raise CompileError(f"{_where(node)}: dilations are not supported")
        if a.get("ceil_mode", 0):
            c, h, w = self.shapes[self.act(node)]
            for n, kk, ss, pp in ((h, k[0], s[0], p[0] + p[2]), (w, k[1], s[1], p[1] + p[3])):
                if (n + pp - kk) % ss:
                    raise CompileError(f"{_where(node)}: ceil_mode=1 changes the output size; not supported (upstream "
                                       "v1.0.15 ignores it and floors); use ceil_mode=0 or pad the input")
        return k, s, p

    def op_MaxPool(self, node) -> None:
        k, s, p = self.pool_attrs(node)
        if any(p):
            raise CompileError(f"{_where(node)}: MaxPool padding {list(p)} is not supported (upstream v1.0.15 ignores "
                               "it and pools without padding); pool without padding or use a strided convolution")
        x = self.act(node)
        c, h, w = self.shapes[x]
        ho, wo = (h - k[0]) // s[0] + 1, (w - k[1]) // s[1] + 1
        if ho < 1 or wo < 1:
            raise CompileError(f"{_where(node)}: kernel {k} larger than the {h}x{w} input")
        self.emit(node, "maxpool", [x], (c, ho, wo), kernel=k, strides=s)
        self.rank[node.output[0]] = 4

    def op_AveragePool(self, node) -> None:
        k, s, p = self.pool_attrs(node)
        if any(p) and not _attrs(node).get("count_include_pad", 0):
            raise CompileError(
                f"{_where(node)}: AveragePool with padding and count_include_pad=0 has per-position "
                "divisors; not supported"
            )
        x = self.act(node)
        c = self.shapes[x][0]
        weight = np.zeros((c, c, k[0], k[1]))
        weight[np.arange(c), np.arange(c)] = 1.0 / (k[0] * k[1])
        self.conv(node, x, weight, np.zeros(c), (int(s[0]), int(s[1])), tuple(int(v) for v in p))

    def op_GlobalAveragePool(self, node) -> None:
        x = self.act(node)
        self.emit(node, "gap", [x], (self.shapes[x][0], 1, 1))
        self.rank[node.output[0]] = 4

    def op_GlobalMaxPool(self, node) -> None:
        x = self.act(node)
        c, h, w = self.shapes[x]
        self.emit(node, "maxpool", [x], (c, 1, 1), kernel=(h, w), strides=(1, 1))
        self.rank[node.output[0]] = 4

    def op_ReduceMean(self, node) -> None:
        a = _attrs(node)
        axes = a.get("axes") if len(node.input) < 2 else [int(v) for v in self.const(node, 1, "axes")]
        if axes is None or sorted(ax % 4 for ax in axes) != [2, 3]:
            raise CompileError(f"{_where(node)}: ReduceMean is only supported over H and W (axes [2, 3])")
        self.op_GlobalAveragePool(node)
        self.rank[node.output[0]] = 4 if a.get("keepdims", 1) else 2

    def op_Resize(self, node) -> None:
        """Bilinear upsampling by integer factors, half-pixel centres (what upstream v1.0.15 takes:
        mode `linear`, four scales); the column factor must be a power of two."""
        a = _attrs(node)
        mode = a.get("mode", b"nearest")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        coords = a.get("coordinate_transformation_mode", b"half_pixel" if self.opset >= 11 else b"asymmetric")
        coords = coords.decode() if isinstance(coords, bytes) else coords
        if mode != "linear" or coords not in ("half_pixel", "pytorch_half_pixel"):
            raise CompileError(f"{_where(node)}: Resize is supported in mode 'linear' with half-pixel centres (got "
                               f"mode {mode!r}, coordinates {coords!r}; upstream v1.0.15 takes the same); export "
                               "bilinear upsampling with align_corners=False at opset 11 or later")
        x = self.act(node)
        c, h, w = self.shapes[x]
        scales = self.opt_const(node, 1 if self.opset < 11 else 2)
        sizes = self.opt_const(node, 3) if self.opset >= 11 else None
        if scales is not None and scales.size == 4:
            factors = [float(v) for v in scales.reshape(-1)]
        elif sizes is not None and sizes.size == 4:
            factors = [float(o) / float(i) for o, i in zip(sizes.reshape(-1), (1, c, h, w))]
        else:
            raise CompileError(f"{_where(node)}: Resize needs four constant scales or sizes")
        sy, sx = factors[2], factors[3]
        if factors[:2] != [1.0, 1.0] or sy != int(sy) or sx != int(sx) or sy < 1 or sx < 1 or int(sx) & (int(sx) - 1):
            raise CompileError(f"{_where(node)}: Resize scales {factors} are not supported: batch and channels "
                               "must stay, rows must grow by an integer factor and columns by a power of two")
        if min(h, w) < 2:
            raise CompileError(f"{_where(node)}: Resize of a map narrower than 2 pixels is not supported "
                               "(replicate it on the host)")
        self.emit(node, "resize", [x], (c, h * int(sy), w * int(sx)), scales=(int(sy), int(sx)))
        self.rank[node.output[0]] = 4

    def op_Split(self, node) -> None:
        """Split on the channel axis into parts of any sizes: each part is a 1x1 copy layer
        (0/1 weights, exact). Upstream v1.0.15 takes only equal parts and ignores `split`."""
        x = self.act(node)
        rank = self.rank_of(node)
        c = self.shapes[x][0]
        axis = _attrs(node).get("axis", 0)
        if axis % rank != 1:
            raise CompileError(f"{_where(node)}: Split is only supported on the channel axis (got axis {axis})")
        sizes = _attrs(node).get("split")
        if sizes is None and len(node.input) > 1 and node.input[1]:
            sizes = [int(v) for v in self.const(node, 1, "split").reshape(-1)]
        parts = len([o for o in node.output])
        if sizes is None:
            if _attrs(node).get("num_outputs", parts) != parts or c % parts:
                raise CompileError(f"{_where(node)}: {c} channels do not split into {parts} equal parts")
            sizes = [c // parts] * parts
        if len(sizes) != parts or sum(sizes) != c or min(sizes) < 1:
            raise CompileError(f"{_where(node)}: split sizes {list(sizes)} do not cover {c} channels in {parts} parts")
        start = 0
        for out, n in zip(node.output, sizes):
            select = np.zeros((n, c, 1, 1))
            select[np.arange(n), start + np.arange(n), 0, 0] = 1.0
            self.ops.append(Op("conv", f"{node.name or out}/{out}", [x], out,
                               {"weight": select, "bias": np.zeros(n), "strides": (1, 1), "pads": (0, 0, 0, 0),
                                "copy": True}))
            self.shapes[out] = (n, *self.shapes[x][1:])
            self.rank[out] = rank
            start += n

    def op_Concat(self, node) -> None:
        xs = [self.act(node, i) for i in range(len(node.input))]
        axis = _attrs(node).get("axis")
        rank = self.rank_of(node, 0)
        if axis is None or axis % rank != 1:
            raise CompileError(f"{_where(node)}: Concat is only supported on the channel axis (got axis {axis})")
        hw = {self.shapes[x][1:] for x in xs}
        if len(hw) != 1:
            raise CompileError(f"{_where(node)}: inputs differ in H and W")
        c = sum(self.shapes[x][0] for x in xs)
        self.emit(node, "concat", xs, (c, *hw.pop()))
        self.rank[node.output[0]] = rank


def load_graph(path: str | Path, options: FrontendOptions | None = None) -> Graph:
    """Read an ONNX file into a canonical graph (raises CompileError with one line)."""
    path = Path(path)
    if not path.is_file():
        hint = " (run `make export` first)" if path.as_posix().endswith(onnx_path()) else ""
        raise CompileError(f"ONNX file {path} does not exist{hint}")
    try:
        model = onnx.load(str(path))
    except Exception as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CompileError(f"{path}: not a readable ONNX model ({why})") from None
    return graph_from_model(model, options)


def graph_from_model(model: onnx.ModelProto, options: FrontendOptions | None = None) -> Graph:
    """The canonical graph of an ONNX model (raises CompileError with one line)."""
    return _Frontend(model, options or FrontendOptions()).run()
