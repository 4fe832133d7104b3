"""Shapes of the work a layer does, shared by the memory planner and the emitter.

Pure functions of the network and the activation buffers: how many rows a convolution
computes for a band of output rows, which input rows it reads, how its weights are cut into
tiles, and how many accumulator and local vectors a band needs.
"""

from __future__ import annotations

from tensil.compiler.bands import Band
from tensil.compiler.graph import Layer, Network, Term
from tensil.compiler.memory import Buffer, tiles


def conv_geometry(net: Network, layer: Layer) -> tuple[int, int]:
    """(conv output rows, conv output width) before pooling."""
    t0 = layer.terms[0]
    _, h, w = net.shapes[t0.input]
    kh, kw = t0.weight.shape[2:]
    return ((h + t0.pads[0] + t0.pads[2] - kh) // t0.strides[0] + 1,
            (w + t0.pads[1] + t0.pads[3] - kw) // t0.strides[1] + 1)


def conv_rows(layer: Layer, band: Band) -> tuple[int, int]:
    """Conv output rows [first, last+1) that the band's (pooled) output rows need."""
    if not layer.pool:
        return band.r0, band.r1
    _, (kh, _), (sh, _) = layer.pool
    return band.r0 * sh, (band.r1 - 1) * sh + kh


def input_rows(term: Term, buf: Buffer, cr0: int, cr1: int) -> tuple[int, int]:
    """Padded input rows [first, last+1) that conv rows [cr0, cr1) read."""
    kh = term.weight.shape[2]
    sh, pt = term.strides[0], term.pads[0]
    return cr0 * sh - pt + buf.pad, (cr1 - 1) * sh + kh - pt + buf.pad


def tile_rows(layer: Layer, a: int) -> list[int]:
    """Real input channels of every weight tile, in the order (term, kernel tap, input tile)."""
    return [min(a, t.weight.shape[1] - c * a) for t in layer.terms
            for _ in range(t.weight.shape[2] * t.weight.shape[3]) for c in range(tiles(t.weight.shape[1], a))]


def tile_sizes(layer: Layer, a: int) -> tuple[list[int], list[int]]:
    """(offset, length) of each weight tile in an output tile's block: the first one carries the
    bias vector, every other one only its real input rows."""
    sizes = [r + (1 if k == 0 else 0) for k, r in enumerate(tile_rows(layer, a))]
    offsets = [0]
    for n in sizes[:-1]:
        offsets.append(offsets[-1] + n)
    return offsets, sizes


def one_vector_band(net: Network, layer: Layer, band: Band, a: int) -> bool:
    """True when the band's convolution output is a single vector accumulated from several
    weight tiles: the emitter then alternates two accumulators (the RTL loses back-to-back
    accumulations into one address)."""
    cr0, cr1 = conv_rows(layer, band)
    return (cr1 - cr0) * conv_geometry(net, layer)[1] == 1 and len(tile_rows(layer, a)) > 1


def band_accumulators(net: Network, layer: Layer, out: Buffer, band: Band, a: int) -> int:
    """Accumulator vectors one band uses: the conv rows (when pooled), the output region and
    the second accumulator of a one-vector band."""
    cr0, cr1 = conv_rows(layer, band)
    conv = (cr1 - cr0) * conv_geometry(net, layer)[1] if layer.pool else 0
    return conv + (band.pr1 - band.pr0) * out.wp + (1 if one_vector_band(net, layer, band, a) else 0)


def staged_input_sizes(layer: Layer, buffers: dict[str, Buffer], band: Band) -> list[int]:
    """Local vectors staged per DRAM0-homed input term for one band."""
    cr0, cr1 = conv_rows(layer, band)
    sizes = []
    for t in layer.terms:
        ib = buffers[t.input]
        if ib.home == "dram0":
            f, last = input_rows(t, ib, cr0, cr1)
            sizes.append(ib.tiles * (last - f) * ib.wp)
    return sizes


def layer_macs(net: Network, layer: Layer) -> int:
    if layer.copy:
        return 0
    hc, wc = conv_geometry(net, layer)
    return sum(int((t.weight != 0).sum()) for t in layer.terms) * hc * wc
