"""Graph passes: fold and fuse canonical ops into accumulator-resident `Layer`s.

* BatchNormalization / per-channel affine after a Conv is folded into its weights and bias
  (exact in float; quantized once). Anywhere else it becomes a 1x1 diagonal convolution.
* A residual Add merges the terms of both operands into one layer: both convolutions
  accumulate into the same accumulators (no SIMD add, no extra pass). An operand that is not a
  fusable convolution enters as an identity 1x1 term (an exact copy through the array).
* Relu / LeakyRelu / Clip and then MaxPool fuse onto the layer that produces their input.
* Concat on channels is a layer of identity terms placed at each input's channel offset.
* A standalone activation or pooling is a layer with one identity term.
A layer absorbs a follower only if the follower is the sole consumer of its output.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from tensil.compiler.graph import Constant, GlobalPool, Graph, Layer, Network, Op, Product, Step, Term, Upsample


def _identity(c_out: int, c_in: int, offset: int = 0) -> np.ndarray:
    w = np.zeros((c_out, c_in, 1, 1))
    w[offset + np.arange(c_in), np.arange(c_in), 0, 0] = 1.0
    return w


class _Fuser:
    def __init__(self, graph: Graph):
        self.g = graph
        self.steps: list[Step] = []
        self.layer_of: dict[str, Layer] = {}
        self.uses: dict[str, int] = {}
        for op in graph.ops:
            for i in op.inputs:
                self.uses[i] = self.uses.get(i, 0) + 1
        for o in graph.outputs:
            self.uses[o] = self.uses.get(o, 0) + 1

    def fusable(self, tensor: str, *, act_free: bool = True, pool_free: bool = True) -> Layer | None:
        """The layer producing `tensor` if the current op may extend it."""
        layer = self.layer_of.get(tensor)
        if layer is None or self.uses.get(tensor, 0) != 1:
            return None
        if (act_free and (layer.act or layer.pool)) or (pool_free and layer.pool):
            return None
        return layer

    def rename(self, layer: Layer, op: Op) -> None:
        del self.layer_of[layer.output]
        layer.output = op.output
        layer.sources.append(op.name)
        self.layer_of[op.output] = layer

    def add_layer(self, layer: Layer) -> None:
        self.steps.append(layer)
        self.layer_of[layer.output] = layer

    def move_last(self, layer: Layer) -> None:
        self.steps.remove(layer)
        self.steps.append(layer)

    def identity_layer(self, op: Op, **kw) -> Layer:
        x = op.inputs[0]
        c = self.g.shapes[x][0]
        layer = Layer(op.name, [Term(x, _identity(c, c), (1, 1), (0, 0, 0, 0))], np.zeros(c), op.output,
                      sources=[op.name], **kw)
        self.add_layer(layer)
        return layer

    def run(self) -> Network:
        for op in self.g.ops:
            getattr(self, f"op_{op.kind}")(op)
        return Network(self.steps, self.g.shapes, self.g.inputs, self.g.outputs, self.g.io_shapes)

    def op_conv(self, op: Op) -> None:
        a = op.attrs
        self.add_layer(Layer(op.name, [Term(op.inputs[0], a["weight"], a["strides"], a["pads"])],
                             np.array(a["bias"], dtype=np.float64), op.output, sources=[op.name],
                             copy=bool(a.get("copy", False))))

    def op_affine(self, op: Op) -> None:
        scale, offset = op.attrs["scale"], op.attrs["offset"]
        layer = self.fusable(op.inputs[0])
        if layer is not None:
            for t in layer.terms:
                t.weight = t.weight * scale[:, None, None, None]
            layer.bias = layer.bias * scale + offset
            self.rename(layer, op)
            return
        c = len(scale)
        w = np.zeros((c, c, 1, 1))
        w[np.arange(c), np.arange(c), 0, 0] = scale
        self.add_layer(Layer(op.name, [Term(op.inputs[0], w, (1, 1), (0, 0, 0, 0))], np.array(offset, dtype=np.float64),
                             op.output, sources=[op.name]))

    def op_add(self, op: Op) -> None:
        a, b = op.inputs
        la, lb = self.fusable(a), self.fusable(b)
        if la is None and lb is not None:
            a, b, la, lb = b, a, lb, la
        c = self.g.shapes[a][0]
        if la is None:
            layer = Layer(op.name, [Term(x, _identity(c, c), (1, 1), (0, 0, 0, 0)) for x in (a, b)], np.zeros(c),
                          op.output, sources=[op.name])
            self.add_layer(layer)
            return
        if lb is not None and lb is not la:
            la.terms.extend(lb.terms)
            la.bias = la.bias + lb.bias
            la.sources.extend(lb.sources)
            self.steps.remove(lb)
            del self.layer_of[lb.output]
        else:
            la.terms.append(Term(b, _identity(c, c), (1, 1), (0, 0, 0, 0)))
        self.rename(la, op)
        self.move_last(la)

    def activation(self, op: Op, act: tuple) -> None:
        layer = self.fusable(op.inputs[0])
        if layer is not None:
            layer.act = act
            self.rename(layer, op)
        else:
            self.identity_layer(op, act=act)

    def op_relu(self, op: Op) -> None:
        self.activation(op, ("relu",))

    def op_leaky(self, op: Op) -> None:
        self.activation(op, ("leaky", op.attrs["alpha"]))

    def op_clip(self, op: Op) -> None:
        self.activation(op, ("clip", op.attrs["lo"], op.attrs["hi"]))

    def op_maxpool(self, op: Op) -> None:
        pool = ("max", tuple(op.attrs["kernel"]), tuple(op.attrs["strides"]))
        layer = self.fusable(op.inputs[0], act_free=False)
        if layer is not None:
            layer.pool = pool
            self.rename(layer, op)
        else:
            self.identity_layer(op, pool=pool)

    def op_gap(self, op: Op) -> None:
        self.steps.append(GlobalPool(op.name, op.inputs[0], op.output, sources=[op.name]))

    def op_const(self, op: Op) -> None:
        self.steps.append(Constant(op.name, op.output, op.attrs["values"], sources=[op.name]))

    def op_mul(self, op: Op) -> None:
        self.steps.append(Product(op.name, op.inputs[0], op.inputs[1], op.output, sources=[op.name]))

    def op_resize(self, op: Op) -> None:
        self.steps.append(Upsample(op.name, op.inputs[0], op.output, op.attrs["scales"], sources=[op.name]))

    def op_concat(self, op: Op) -> None:
        c = self.g.shapes[op.output][0]
        terms, offset = [], 0
        for x in op.inputs:
            ci = self.g.shapes[x][0]
            terms.append(Term(x, _identity(c, ci, offset), (1, 1), (0, 0, 0, 0)))
            offset += ci
        self.add_layer(Layer(op.name, terms, np.zeros(c), op.output, sources=[op.name]))


def fuse(graph: Graph) -> Network:
    """Canonical graph -> network of fused layers in execution order."""
    return _Fuser(graph).run()


def reference_forward(net: Network, inputs: dict[str, np.ndarray],
                      ranges: dict[str, dict] | None = None) -> dict[str, np.ndarray]:
    """Float64 evaluation of the fused network (checks the passes against onnxruntime).

    With `ranges`, records per step the largest magnitude of its accumulator contents (every
    partial sum in term/tap order, then the sum) and of its output, where FP16BP8 saturates.
    """
    env = {k: np.asarray(v, dtype=np.float64).reshape(net.shapes[k]) for k, v in inputs.items()}
    for step in net.steps:
        if isinstance(step, GlobalPool):
            env[step.output] = env[step.input].mean(axis=(1, 2), keepdims=True)
            peak = float(np.abs(env[step.output]).max())
        elif isinstance(step, Upsample):
            env[step.output] = step.forward(env[step.input])
            peak = float(np.abs(env[step.output]).max())
        elif isinstance(step, Product):
            env[step.output] = step.forward(env[step.a], env[step.b])
            peak = float(np.abs(env[step.output]).max())
        elif isinstance(step, Constant):
            env[step.output] = step.values
            peak = float(np.abs(step.values).max())
        else:
            total, peak = None, 0.0
            for t in step.terms:
                y = conv2d(env[t.input], t.weight, t.strides, t.pads)
                total = y + step.bias[:, None, None] if total is None else total + y
                peak = max(peak, float(np.abs(total).max()))
            env[step.output] = apply_pool(apply_act(total, step.act), step.pool)
        if ranges is not None:
            r = ranges.setdefault(step.name, {"accumulator_max_abs": 0.0, "output_max_abs": 0.0})
            r["accumulator_max_abs"] = max(r["accumulator_max_abs"], peak)
            r["output_max_abs"] = max(r["output_max_abs"], float(np.abs(env[step.output]).max()))
    return {o: env[o] for o in net.outputs}


def conv2d(x: np.ndarray, w: np.ndarray, strides, pads) -> np.ndarray:
    """Plain float convolution of one (C, H, W) image (im2col with numpy)."""
    c, h, wd = x.shape
    co, ci, kh, kw = w.shape
    xp = np.pad(x, ((0, 0), (pads[0], pads[2]), (pads[1], pads[3])))
    ho = (h + pads[0] + pads[2] - kh) // strides[0] + 1
    wo = (wd + pads[1] + pads[3] - kw) // strides[1] + 1
    out = np.zeros((co, ho, wo))
    for i in range(kh):
        for j in range(kw):
            patch = xp[:, i:i + strides[0] * (ho - 1) + 1:strides[0], j:j + strides[1] * (wo - 1) + 1:strides[1]]
            out += np.einsum("oc,chw->ohw", w[:, :, i, j], patch)
    return out


def apply_act(x: np.ndarray, act: tuple) -> np.ndarray:
    if not act:
        return x
    if act[0] == "relu":
        return np.maximum(x, 0.0)
    if act[0] == "leaky":
        return np.maximum(x, act[1] * x)
    return np.clip(x, act[1], act[2])


def apply_pool(x: np.ndarray, pool: tuple) -> np.ndarray:
    if not pool:
        return x
    _, (kh, kw), (sh, sw) = pool
    c, h, w = x.shape
    ho, wo = (h - kh) // sh + 1, (w - kw) // sw + 1
    out = np.full((c, ho, wo), -np.inf)
    for i in range(kh):
        for j in range(kw):
            out = np.maximum(out, x[:, i:i + sh * (ho - 1) + 1:sh, j:j + sw * (wo - 1) + 1:sw])
    return out


def pack_taps_into_lanes(net: Network, array_size: int) -> Network:
    """Narrow-input convolutions (e.g. RGB, 3 of A lanes used): move the kernel's horizontal taps
    into lanes first.

    A term conv(x, W[Co, Ci, kh, kw]) with Ci * kw <= A and horizontal stride 1 becomes
    conv(x', W'[Co, Ci*kw, kh, 1]) where x'[k*Ci + c, y, x] = x_padded[c, y, x + k] is built by a
    copy layer (0/1 weights: exact). The main conv then runs kh instead of kh*kw weight tiles
    per output tile: for the default backbone's first layer, 6 + 3 passes over the image
    instead of 18.
    """
    steps: list[Step] = []
    shapes = dict(net.shapes)
    for step in net.steps:
        if isinstance(step, Layer):
            new_terms = []
            packed_of: dict[tuple, str] = {}  # terms of one layer reading the same packing share it
            for t in step.terms:
                co, ci, kh, kw = t.weight.shape
                if kw > 1 and ci * kw <= array_size and t.strides[1] == 1:
                    c, h, w = shapes[t.input]
                    wo = w + t.pads[1] + t.pads[3] - kw + 1
                    key = (t.input, kw, t.pads[1], t.pads[3])
                    suffix = f"/{len(packed_of)}" if packed_of else ""
                    packed = packed_of.get(key) or f"{t.input}/taps_in_lanes/{step.name}{suffix}"
                    if key not in packed_of:
                        packed_of[key] = packed
                        copy = np.zeros((ci * kw, ci, 1, kw))
                        for k in range(kw):
                            copy[k * ci + np.arange(ci), np.arange(ci), 0, k] = 1.0
                        term = Term(t.input, copy, (1, 1), (0, t.pads[1], 0, t.pads[3]))
                        steps.append(Layer(f"{step.name}/taps_in_lanes{suffix}", [term], np.zeros(ci * kw), packed,
                                           sources=list(step.sources[:1]), copy=True))
                        shapes[packed] = (ci * kw, h, wo)
                    w2 = t.weight.transpose(0, 3, 1, 2).reshape(co, kw * ci, kh, 1)
                    new_terms.append(Term(packed, w2, t.strides, (t.pads[0], 0, t.pads[2], 0)))
                else:
                    new_terms.append(t)
            step = dataclasses.replace(step, terms=new_terms)
        steps.append(step)
    return Network(steps, shapes, net.inputs, net.outputs, net.io_shapes)


def _tile_diagonal(weight: np.ndarray, a: int) -> bool:
    """True when output channel tile t reads only input channel tile t (depthwise / small groups)."""
    co, ci = weight.shape[:2]
    if co != ci or co <= a:
        return False
    rows, cols = np.nonzero(np.any(weight != 0, axis=(2, 3)))
    return bool(np.all(rows // a == cols // a))


def split_depthwise(net: Network, array_size: int) -> Network:
    """Depthwise (tile-diagonal) convolutions one channel tile at a time, so no lanes multiply zeros.

    A convolution whose output tile t reads only input tile t (groups of at most A channels,
    e.g. depthwise) still runs, densely expanded, every (tap, input tile) pair of each output
    tile: T times the work, for T channel tiles. When its input comes from a layer used by it
    alone, and its output only feeds convolution terms, this pass splits the producer, the
    depthwise layer and the consumers' terms by channel tile:

        X = producer(...)           ->  X_t = producer_t(...)            (rows t of its weights)
        Y = act(dw(X))              ->  Y_t = act(dw_t(X_t))             (one input tile each)
        Z = conv(Y, W) + ...        ->  Z = sum_t conv(Y_t, W[:, t]) + ...

    The same non-zero products (1x1 consumers even add them in the same order); the depthwise
    layers run 1/T of the MatMuls.
    """
    a = array_size
    uses: dict[str, list[Step]] = {}
    for step in net.steps:
        for x in step.inputs:
            uses.setdefault(x, []).append(step)
    producers = {s.output: s for s in net.steps}
    shapes = dict(net.shapes)
    latest: dict[int, Step] = {id(s): s for s in net.steps}  # id(original step) -> its current version
    replace: dict[int, list[Step]] = {}  # id(step) -> the steps it becomes
    for original in net.steps:
        dw = latest[id(original)]
        if not isinstance(dw, Layer) or len(dw.terms) != 1 or dw.copy:
            continue
        term = dw.terms[0]
        src_original = producers.get(term.input)
        src = latest.get(id(src_original))
        if (not _tile_diagonal(term.weight, a) or not isinstance(src, Layer) or id(src_original) in replace
                or uses.get(term.input) != [original] or dw.output in net.outputs
                or not all(isinstance(u, Layer) for u in uses.get(dw.output, []))):
            continue
        c = term.weight.shape[0]
        cuts = [(lo, min(lo + a, c)) for lo in range(0, c, a)]
        xs = [f"{term.input}/tile{t}" for t in range(len(cuts))]
        ys = [f"{dw.output}/tile{t}" for t in range(len(cuts))]
        replace[id(src_original)] = [
            Layer(f"{src.name}/tile{t}", [Term(s.input, s.weight[lo:hi], s.strides, s.pads) for s in src.terms],
                  src.bias[lo:hi], x, src.act, src.pool, list(src.sources), src.copy)
            for t, ((lo, hi), x) in enumerate(zip(cuts, xs))]
        replace[id(original)] = [
            Layer(f"{dw.name}/tile{t}", [Term(x, term.weight[lo:hi, lo:hi], term.strides, term.pads)],
                  dw.bias[lo:hi], y, dw.act, dw.pool, list(dw.sources))
            for t, ((lo, hi), x, y) in enumerate(zip(cuts, xs, ys))]
        for (lo, hi), x, y in zip(cuts, xs, ys):
            shapes[x] = (hi - lo, *net.shapes[term.input][1:])
            shapes[y] = (hi - lo, *net.shapes[dw.output][1:])
        for consumer in uses.get(dw.output, []):
            current = latest[id(consumer)]
            latest[id(consumer)] = dataclasses.replace(current, terms=[nt for t in current.terms for nt in (
                [Term(y, t.weight[:, lo:hi], t.strides, t.pads) for (lo, hi), y in zip(cuts, ys)]
                if t.input == dw.output else [t])])
    steps = [s for step in net.steps for s in replace.get(id(step), [latest[id(step)]])]
    return Network(steps, shapes, net.inputs, net.outputs, net.io_shapes)
