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


@dataclass
class Graph:
    """Canonical graph: ops in topological order and the static shape of every activation."""

    ops: list[Op]
    shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    io_shapes: dict[str, list[int]]  # the ONNX shapes of graph inputs and outputs

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


Step = Layer | GlobalPool


@dataclass
class Network:
    """What the fusion pass hands to the planner: steps in execution order."""

    steps: list[Step]
    shapes: dict[str, Shape]
    inputs: list[str]
    outputs: list[str]
    io_shapes: dict[str, list[int]]
