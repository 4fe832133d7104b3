"""The compiler's intermediate representation.

Activations are single images (batch 1) held as (C, H, W); a 2-D ONNX tensor (1, F) becomes
(F, 1, 1), so a Gemm is a 1x1 convolution. After the front end a graph holds a handful of
canonical operations (`Op`); the fusion pass turns them into `Layer`s, the unit the lowering
schedules: `out = pool(act(sum_i conv_i(x_i) + bias))`, whose every term accumulates in the
systolic array's accumulators.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

Shape = tuple[int, int, int]  # (C, H, W)


@dataclass
class Op:
    """One canonical operation of the front end's output.

    kinds and their `attrs`:
      conv      weight (Co, Ci, kh, kw) dense, bias (Co,), strides (sh, sw), pads (t, l, b, r)
      affine    scale (C,), offset (C,)              (BatchNormalization, Add of a constant)
      add       two activation inputs
      relu      -
      leaky     alpha
      clip      lo, hi
      maxpool   kernel (kh, kw), strides (sh, sw)
      gap       -                                    (global average pool)
      concat    two or more activation inputs, on channels
    """

    kind: str
    name: str  # the ONNX node name (or a derived one), for messages
    inputs: list[str]
    output: str
    attrs: dict = field(default_factory=dict)


@dataclass(frozen=True)
class HostView:
    """How a graph input or output of the ONNX model maps onto the compiled model's I/O tensor.

    The compiled model reads and writes tensors in the host layout of `tensil.layout` with the
    shape `Graph.io_shapes[name]`. A view records where the ONNX model differs:
      input:  host = onnx_array.transpose(perm)            (an NHWC input behind Transpose(0,3,1,2))
      output: host.ravel() = onnx_array.ravel()[perm]      (a Flatten output in NHWC order)
    `onnx_name` is the ONNX tensor to compare an output with (a no-op Softmax's input, say).
    """

    onnx_name: str
    onnx_shape: tuple[int, ...]
    perm: tuple[int, ...] | None = None
    note: str = ""


@dataclass
class Graph:
    """Canonical graph: ops in topological order and the static shape of every activation."""

    ops: list[Op]
    shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    io_shapes: dict[str, list[int]]  # host-layout shapes of graph inputs and outputs (`tensil.layout`)
    views: dict[str, HostView] = field(default_factory=dict)  # only where the ONNX tensor differs
    warnings: list[str] = field(default_factory=list)  # accepted, but the user should know

    def onnx_shape(self, name: str) -> list[int]:
        """The shape the ONNX model gives this input or output."""
        view = self.views.get(name)
        return list(view.onnx_shape) if view else list(self.io_shapes[name])

    def to_host(self, name: str, x: np.ndarray) -> np.ndarray:
        """An input array as the ONNX model takes it -> the array the compiled model takes."""
        view = self.views.get(name)
        return np.transpose(x, view.perm) if view and view.perm else x

    def reference(self, name: str, onnx_outputs: dict[str, np.ndarray]) -> np.ndarray:
        """What the compiled output `name` should equal, from the ONNX model's tensors."""
        view = self.views.get(name)
        if view is None:
            return np.asarray(onnx_outputs[name]).reshape(self.io_shapes[name])
        flat = np.asarray(onnx_outputs[view.onnx_name]).ravel()
        return (flat[list(view.perm)] if view.perm else flat).reshape(self.io_shapes[name])

    def reference_tensors(self) -> list[str]:
        """ONNX tensors a reference run must expose to check every output."""
        return [self.views[o].onnx_name if o in self.views else o for o in self.outputs]

    def consumers(self, name: str) -> list[Op]:
        return [op for op in self.ops if name in op.inputs]

    def producer(self, name: str) -> Op | None:
        for op in self.ops:
            if op.output == name:
                return op
        return None


@dataclass
class Term:
    """One convolution feeding a layer's accumulators: `conv(x, weight, strides, pads)`."""

    input: str
    weight: np.ndarray  # (Co, Ci, kh, kw), float
    strides: tuple[int, int]
    pads: tuple[int, int, int, int]  # top, left, bottom, right


@dataclass
class Layer:
    """`output = pool(act(sum(terms) + bias))`, computed in the accumulators in one pass."""

    name: str
    terms: list[Term]
    bias: np.ndarray  # (Co,)
    output: str
    act: tuple = ()  # () | ("relu",) | ("leaky", alpha) | ("clip", lo, hi)
    pool: tuple = ()  # () | ("max", (kh, kw), (sh, sw))
    sources: list[str] = field(default_factory=list)  # ONNX node names fused into this layer
    copy: bool = False  # pure data rearrangement added by the compiler (no useful MACs)

    @property
    def inputs(self) -> list[str]:
        return [t.input for t in self.terms]

    @property
    def out_channels(self) -> int:
        return int(self.bias.shape[0])


@dataclass
class GlobalPool:
    """Global average pooling of one activation to (C, 1, 1)."""

    name: str
    input: str
    output: str
    sources: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return [self.input]


@dataclass
class Upsample:
    """Bilinear upsampling by integer factors with half-pixel centres (ONNX Resize, mode
    `linear`): output row y = s*i + d reads input rows i + o_d and i + o_d + 1, clamped to the
    map, with weights 1 - f_d and f_d, where o_d + f_d = (d + 0.5) / s - 0.5; columns alike."""

    name: str
    input: str
    output: str
    scales: tuple[int, int]  # (rows, columns)
    sources: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return [self.input]

    @staticmethod
    def taps(scale: int) -> list[list[tuple[int, float]]]:
        """Per phase d: [(input offset, weight)] of its non-zero neighbours."""
        out = []
        for d in range(scale):
            c = (d + 0.5) / scale - 0.5
            o = int(np.floor(c))
            f = c - o
            out.append([(o + k, w) for k, w in ((0, 1.0 - f), (1, f)) if w != 0.0])
        return out

    @staticmethod
    def matrix(n: int, scale: int) -> np.ndarray:
        """(n * scale, n) interpolation matrix of one axis."""
        m = np.zeros((n * scale, n))
        for i in range(n):
            for d, taps in enumerate(Upsample.taps(scale)):
                for off, w in taps:
                    m[i * scale + d, min(max(i + off, 0), n - 1)] += w
        return m

    def forward(self, x: np.ndarray) -> np.ndarray:
        """Float reference on one (C, H, W) image."""
        _, h, w = x.shape
        return np.einsum("yh,chw,xw->cyx", self.matrix(h, self.scales[0]), x, self.matrix(w, self.scales[1]))


@dataclass
class Product:
    """Element-wise product of two activations of one shape (ONNX Mul of two activations)."""

    name: str
    a: str
    b: str
    output: str
    sources: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return [self.a, self.b]

    @staticmethod
    def forward(a: np.ndarray, b: np.ndarray) -> np.ndarray:
        return a * b


@dataclass
class Constant:
    """A constant (C, H, W) tensor (an operand of Add/Sub/Mul that varies over H or W)."""

    name: str
    output: str
    values: np.ndarray
    sources: list[str] = field(default_factory=list)

    @property
    def inputs(self) -> list[str]:
        return []


Step = Layer | GlobalPool | Upsample | Product | Constant


@dataclass
class Network:
    """What the fusion pass hands to the planner: steps in execution order."""

    steps: list[Step]
    shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    io_shapes: dict[str, list[int]]

    def verify(self, after: str) -> None:
        """Raise CompileError when a pass (`after`) left an inconsistent network: a step reading a
        tensor nobody produced yet, terms whose shapes disagree with their weights or with each
        other, an output shape that is not the (pooled) convolution's."""
        from tensil.compiler.errors import CompileError

        def fail(what: str) -> None:
            raise CompileError(f"internal error after {after}: {what}")

        known = set(self.inputs)
        for step in self.steps:
            for x in step.inputs:
                if x not in known:
                    fail(f"{step.name} reads {x!r} before it is computed")
            if isinstance(step, GlobalPool):
                if self.shapes[step.output] != (self.shapes[step.input][0], 1, 1):
                    fail(f"{step.name}: global pooling of {self.shapes[step.input]} gives {self.shapes[step.output]}")
            elif isinstance(step, Constant):
                if self.shapes[step.output] != step.values.shape:
                    fail(f"{step.name}: values of shape {step.values.shape} for {self.shapes[step.output]}")
            elif isinstance(step, Product):
                if not self.shapes[step.a] == self.shapes[step.b] == self.shapes[step.output]:
                    fail(f"{step.name}: product of {self.shapes[step.a]} and {self.shapes[step.b]}")
            elif isinstance(step, Upsample):
                c, h, w = self.shapes[step.input]
                if self.shapes[step.output] != (c, h * step.scales[0], w * step.scales[1]):
                    fail(f"{step.name}: upsampling {(c, h, w)} by {step.scales} gives {self.shapes[step.output]}")
            else:
                convs = set()
                for t in step.terms:
                    c, h, w = self.shapes[t.input]
                    co, ci, kh, kw = t.weight.shape
                    if ci != c or co != step.out_channels:
                        fail(f"{step.name}: a term's weights {t.weight.shape} do not fit input {t.input!r} {(c, h, w)}")
                    (sh, sw), (pt, pl, pb, pr) = t.strides, t.pads
                    convs.add(((h + pt + pb - kh) // sh + 1, (w + pl + pr - kw) // sw + 1))
                if len(convs) != 1:
                    fail(f"{step.name}: its terms compute maps of different sizes {sorted(convs)}")
                (hc, wc), = convs
                if step.pool:
                    _, (kh, kw), (sh, sw) = step.pool
                    hc, wc = (hc - kh) // sh + 1, (wc - kw) // sw + 1
                if self.shapes[step.output] != (step.out_channels, hc, wc):
                    fail(f"{step.name}: computes {(step.out_channels, hc, wc)} into {self.shapes[step.output]}")
            if step.output in known:
                fail(f"{step.name} computes {step.output!r}, which is already computed")
            known.add(step.output)
        for name in self.outputs:
            if name not in known:
                fail(f"graph output {name!r} is never computed")
