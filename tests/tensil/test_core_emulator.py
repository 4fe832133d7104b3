"""Every instruction on hand-written programs against the memory contents measured on the RTL
(docs/tensil.md), plus whole-model runs through .tmodel files."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from tensil import fixed
from tensil.arch import load_arch
from tensil.emulator import EmulatorError, Machine, ModelRunner, build_plan, run_model
from tensil.isa import DataFlow, DataMove, LoadWeight, MatMul, Simd, SimdOp, encode_program, Layout
from tensil.layout import to_vectors
from tensil.tmodel import LoadedModel, ModelError, read_model, write_model

ARCH = load_arch("custom_perf")
A = 12
FP16 = ARCH.dtype


def machine_with_local(rows: dict) -> Machine:
    m = Machine(ARCH)
    for addr, vec in rows.items():
        m.local[addr] = vec
    return m


def test_datamove_round_trip_with_strides_leaves_gaps():
    m = Machine(ARCH)
    rng = np.random.default_rng(42)
    src = rng.integers(-32768, 32768, (32, A))
    m.dram0.write(np.arange(1000, 1032), src)
    m.execute([
        DataMove(DataFlow.DRAM0_TO_LOCAL, 64, 2, 1000, 3, 3),  # 4 vectors, local step 4, DRAM step 8
        DataMove(DataFlow.LOCAL_TO_DRAM0, 64, 2, 200000, 1, 3),
    ])  # fmt: skip
    assert np.array_equal(m.local[64:80:4], src[0:32:8])
    assert not m.local[65:68].any()
    assert np.array_equal(m.dram0.read(np.arange(200000, 200008, 2)), src[0:32:8])
    assert not m.dram0.read(np.arange(200001, 200008, 2)).any()


def test_dram1_and_local_acc_moves_saturate_on_accumulate():
    m = Machine(ARCH)
    a = np.full((2, A), 32000)
    a[1] = -32000
    b = np.full((2, A), 1000)
    b[1] = -1000
    m.dram1.write(np.arange(5000, 5002), a)
    m.dram1.write(np.arange(6000, 6002), b)
    m.execute([
        DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 5000, 0, 1),
        DataMove(DataFlow.DRAM1_TO_LOCAL, 100, 0, 6000, 0, 1),
        DataMove(DataFlow.LOCAL_TO_ACC, 0, 0, 50, 0, 1),
        DataMove(DataFlow.LOCAL_TO_ACC_ACCUMULATE, 100, 0, 50, 0, 1),
        DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 50, 0, 1),
        DataMove(DataFlow.LOCAL_TO_DRAM1, 200, 0, 7000, 0, 1),
    ])  # fmt: skip
    assert m.dram1.read([7000]).tolist() == [[32767] * A]
    assert m.dram1.read([7001]).tolist() == [[-32768] * A]
    assert m.counters.accumulate_saturations == 2 * A


def load_pattern(m: Machine, base: int) -> np.ndarray:
    P = np.array([[16 * j + lane + 1 for lane in range(A)] for j in range(A + 1)])
    m.local[base : base + A + 1] = P
    return P


def array_state(m: Machine) -> tuple:
    """Read bias and columns back with unit inputs, as the RTL experiment did."""
    m.local[500 : 500 + A] = np.eye(A, dtype=np.int64) * 256
    m.execute([MatMul(500, 0, 0, 0, A - 1), MatMul(0, 0, 20, 0, 0, zeroes=True)])
    bias = m.acc[20].copy()
    cols = m.acc[:A] - bias
    return bias, cols


def test_load_weight_order_and_shift_register():
    m = Machine(ARCH)
    P = load_pattern(m, 40)
    m.execute([LoadWeight(40, 0, A)])
    bias, cols = array_state(m)
    assert np.array_equal(bias, P[0]) and np.array_equal(cols, P[1:])
    Q = np.arange(7 * A).reshape(7, A) + 1000
    m.local[200:207] = Q
    m.execute([LoadWeight(200, 1, 3)])  # pushes Q6, Q4, Q2, Q0
    bias, cols = array_state(m)
    assert np.array_equal(bias, Q[0])
    assert np.array_equal(cols, np.vstack([Q[2], Q[4], Q[6], P[0:9]]))
    m.execute([LoadWeight(40, 0, A), LoadWeight(0, 0, 1, zeroes=True)])
    bias, cols = array_state(m)
    assert not bias.any() and not cols[0].any() and np.array_equal(cols[1:], P[0:11])


def run_matmul(x_rows, bias, weights, init=None, accumulate=False):
    """One weight block (bias + A weight vectors) and x rows through one MatMul."""
    m = Machine(ARCH)
    m.local[0] = bias
    m.local[1 : A + 1] = weights
    m.local[100 : 100 + len(x_rows)] = x_rows
    if init is not None:
        m.acc[0 : len(x_rows)] = init
    m.execute([LoadWeight(0, 0, A), MatMul(100, 0, 0, 0, len(x_rows) - 1, accumulate=accumulate)])
    return m.acc[0 : len(x_rows)]


def lanes(values) -> np.ndarray:
    x = np.zeros(A, dtype=np.int64)
    x[: len(values)] = values
    return x


def test_matmul_ties_saturation_order_and_bias_first():
    W = np.full((A, A), 256)  # identity-scale weights: products equal the inputs
    # (i) ties: all x = 1, W = 128 -> RNE of the running sum
    for bias, expected in [(0, 0), (1, 2), (3, 4), (-1, 0)]:
        assert run_matmul([np.ones(A)], np.full(A, bias), np.full((A, A), 128))[0, 0] == expected
    # (ii) saturation at every step
    assert run_matmul([lanes([1000, -1000])], np.full(A, 32767), W)[0, 0] == 31767
    assert run_matmul([lanes([30000, 30000, -30000])], np.zeros(A), W)[0, 0] == 2767
    # (iii) lanes summed 0..A-1
    assert run_matmul([lanes([20000, 20000] + [0] * 9 + [-20000])], np.zeros(A), W)[0, 0] == 12767
    Wd = np.ones((A, A)) - 2 * np.eye(A)  # +1 everywhere except -1 on the diagonal
    out = run_matmul([np.full(A, 6000)], np.zeros(A), Wd * 256)[0]
    assert out[:11].tolist() == [32767] * 11 and out[11] == 26767
    # (iv) bias first
    assert run_matmul([lanes([20000, 20000])], np.full(A, -20000), W)[0, 0] == 20000


def test_matmul_accumulate_adds_after_the_chain_and_zeroes_give_bias():
    W = np.full((A, A), 256)
    out = run_matmul([lanes([20000, -20000])], np.zeros(A), W, init=np.full((1, A), 20000), accumulate=True)
    assert out[0, 0] == 20000  # injecting init into the chain would give 12767
    m = Machine(ARCH)
    m.local[0] = np.arange(A) - 5
    m.local[100:108] = 999
    m.acc[0:8] = 30000
    m.execute([LoadWeight(0, 0, 0), MatMul(100, 0, 0, 0, 3, zeroes=True),
               MatMul(100, 0, 4, 0, 3, zeroes=True, accumulate=True)])  # fmt: skip
    assert np.array_equal(m.acc[0:4], np.tile(np.arange(A) - 5, (4, 1)))
    assert np.array_equal(m.acc[4:8], np.tile(np.clip(30000 + np.arange(A) - 5, -32768, 32767), (4, 1)))


def test_matmul_strides_and_wraparound():
    m = Machine(ARCH)
    m.local[1001 : 1001 + A] = np.eye(A, dtype=np.int64) * 256  # identity, zero bias at 1000
    rows = np.arange(5 * A).reshape(5, A)
    m.local[8190] = rows[0]
    m.local[(8190 + 4 * np.arange(1, 5)) % 8192] = rows[1:]
    m.execute([LoadWeight(1000, 0, A), MatMul(8190, 2, 2046, 1, 4)])
    assert np.array_equal(m.acc[[2046, 0, 2, 4, 6]], rows)


# SIMD results measured on the simulated RTL, I = acc[0], R1 = acc[1]
I = [32767, -32768, 0, 256, -256, 128, 1000, -1000, 3, -3, 384, -128]
R1 = [1, -1, 0, 256, 32767, -32768, 31000, -31000, 128, 128, 129, 127]
SIMD_TABLE = {
    (SimdOp.ADD, 0, 1): [32767, -32768, 0, 512, 32511, -32640, 32000, -32000, 131, 125, 513, -1],
    (SimdOp.SUBTRACT, 0, 1): [32766, -32767, 0, 0, -32768, 32767, -30000, 30000, -125, -131, 255, -255],
    (SimdOp.SUBTRACT, 1, 0): [-32766, 32767, 0, 0, 32767, -32768, 30000, -30000, 125, 131, -255, 255],
    (SimdOp.MULTIPLY, 0, 1): [128, 128, 0, 256, -32767, -16384, 32767, 32767, 2, -2, 194, -64],
    (SimdOp.MAX, 0, 1): [32767, -1, 0, 256, 32767, 128, 31000, -1000, 128, 128, 384, 127],
    (SimdOp.MIN, 0, 1): [1, -32768, 0, 256, -256, -32768, 1000, -31000, 3, -3, 129, -128],
    (SimdOp.NOT, 0, 1): [0, 0, 256, 0, 0, 0, 0, 0, 0, 0, 0, 0],
    (SimdOp.AND, 0, 1): [256, 256, 0, 256, 256, 256, 256, 256, 256, 256, 256, 256],
    (SimdOp.OR, 0, 1): [256, 256, 0, 256, 256, 256, 256, 256, 256, 256, 256, 256],
    (SimdOp.INCREMENT, 0, 1): [32767, -32512, 256, 512, 0, 384, 1256, -744, 259, 253, 640, 128],
    (SimdOp.DECREMENT, 0, 1): [32511, -32768, -256, 0, -512, -128, 744, -1256, -253, -259, 128, -384],
    (SimdOp.ABS, 0, 1): [32767, -32768, 0, 256, 256, 128, 1000, 1000, 3, 3, 384, 128],
    (SimdOp.GREATER, 0, 1): [256, 0, 0, 0, 0, 256, 0, 256, 0, 0, 256, 0],
    (SimdOp.GREATER_EQUAL, 0, 1): [256, 0, 256, 256, 0, 256, 0, 256, 0, 0, 256, 0],
}


@pytest.mark.parametrize("key", list(SIMD_TABLE), ids=lambda k: f"{k[0].name}{k[1]}{k[2]}")
def test_simd_ops_match_rtl_table(key):
    op, left, right = key
    m = Machine(ARCH)
    m.acc[0], m.acc[1] = I, R1
    m.execute([
        Simd(SimdOp.MOVE, left=0, right=0, dest=1, read=True, read_addr=1),
        Simd(op, left=left, right=right, read=True, write=True, read_addr=0, write_addr=100),
    ])  # fmt: skip
    assert m.acc[100].tolist() == SIMD_TABLE[key]


def test_simd_accumulate_register_dest_and_read_modify_write():
    m = Machine(ARCH)
    m.acc[0], m.acc[1], m.acc[120] = I, R1, 30000
    m.execute([
        Simd(SimdOp.MOVE, left=0, right=0, dest=1, read=True, read_addr=1),
        Simd(SimdOp.MOVE, left=0, right=0, read=True, write=True, accumulate=True, read_addr=0, write_addr=120),
        Simd(SimdOp.ADD, left=0, right=1, dest=1, read=True, write=True, read_addr=0, write_addr=200),
        Simd(SimdOp.ADD, left=0, right=0, read=True, write=True, read_addr=0, write_addr=0),  # same address
        Simd(SimdOp.ZERO, dest=0, write=True, write_addr=5),
    ])  # fmt: skip
    assert m.acc[120].tolist() == [32767, -2768, 30000, 30256, 29744, 30128, 31000, 29000, 30003, 29997, 30384, 29872]
    added = SIMD_TABLE[(SimdOp.ADD, 0, 1)]
    assert m.acc[200].tolist() == added and m.registers[0].tolist() == added  # writes both, like the RTL
    assert m.acc[0].tolist() == fixed.add(I, I, FP16).tolist()
    assert not m.acc[5].any()


def test_periodic_simd_block_equals_one_by_one():
    """LeakyReLU triples over 50 vectors: the planner batches them; compare with singles."""
    rng = np.random.default_rng(0)
    prog = []
    for v in range(50):
        prog += [
            Simd(SimdOp.MOVE, 0, 0, 1, read=True, read_addr=1000),
            Simd(SimdOp.MULTIPLY, 0, 1, 1, read=True, read_addr=v),
            Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True, read_addr=v, write_addr=v + 500),
        ]
    init = rng.integers(-32768, 32768, (2048, A))
    a, b = Machine(ARCH), Machine(ARCH)
    a.acc[:] = init
    b.acc[:] = init
    plan = build_plan(prog, ARCH)
    assert len(plan.steps) == 1  # one block of 50 periods
    a.execute(plan)
    for ins in prog:
        b.execute([ins])
    assert np.array_equal(a.acc, b.acc) and np.array_equal(a.registers, b.registers)


def test_stalling_simd_and_out_of_range_dram_are_errors():
    with pytest.raises(EmulatorError, match="instruction 1 would stall"):
        Machine(ARCH).execute([Simd(SimdOp.ZERO, dest=1), Simd(SimdOp.MAX, 0, 1, 0, write=True)])
    small = Machine(ARCH, dram0=bytearray(10 * ARCH.vector_bytes))
    with pytest.raises(EmulatorError, match="past the end"):
        small.execute([DataMove(DataFlow.DRAM0_TO_LOCAL, 0, 0, 8, 0, 3)])


def test_dram_wraps_a_shared_caller_buffer():
    buf = np.zeros(100 * A, dtype=np.uint16)
    m = Machine(ARCH, dram0=buf)
    m.local[3] = np.arange(A) - 6
    m.execute([DataMove(DataFlow.LOCAL_TO_DRAM0, 3, 0, 7, 0, 0)])
    assert buf[7 * A : 8 * A].view(np.int16).tolist() == (np.arange(A) - 6).tolist()
    with pytest.raises(EmulatorError, match="writable"):
        Machine(ARCH, dram0=bytes(100))


def test_fp18_dram_sign_extension():
    arch = ARCH.__class__(**{**ARCH.to_json_dict(), "data_type": "FP18BP10"})
    m = Machine(arch)
    m.local[0] = np.arange(A) - 131072 // 2
    m.local[0, 0] = -131072
    m.execute([DataMove(DataFlow.LOCAL_TO_DRAM0, 0, 0, 5, 0, 0), DataMove(DataFlow.DRAM0_TO_LOCAL, 1, 0, 5, 0, 0)])
    assert np.array_equal(m.local[1], m.local[0])
    assert m.dram0.vectors[5, 0] == 1 << 17  # 18 bits in a 32-bit slot, upper bits zero


def dense_relu_model(tmp_path, x_shape=(1, 3, 2, 2)):
    """1x1 conv 3 -> 5 channels + bias + ReLU written by hand the way Tensil lowers it."""
    rng = np.random.default_rng(1)
    Wf = rng.uniform(-1, 1, (5, 3))
    bf = rng.uniform(-0.5, 0.5, 5)
    W, _ = fixed.quantize(Wf, FP16)
    b, _ = fixed.quantize(bf, FP16)
    pixels = int(np.prod(x_shape[2:]))
    block = np.zeros((A + 1, A), dtype=np.int64)  # [bias, W[ci] as a vector over co]
    block[0, :5] = b
    block[1:4, :5] = W.T
    consts = fixed.to_bytes(block, FP16)
    out_base = 64
    prog = [
        DataMove(DataFlow.DRAM1_TO_LOCAL, 0, 0, 0, 0, A),
        DataMove(DataFlow.DRAM0_TO_LOCAL, 100, 0, 0, 0, pixels - 1),
        LoadWeight(0, 0, A),
        MatMul(100, 0, 0, 0, pixels - 1),
        Simd(SimdOp.ZERO, dest=1),
    ] + [Simd(SimdOp.MAX, 0, 1, 0, read=True, write=True, read_addr=p, write_addr=p) for p in range(pixels)] + [
        DataMove(DataFlow.ACC_TO_LOCAL, 200, 0, 0, 0, pixels - 1),
        DataMove(DataFlow.LOCAL_TO_DRAM0, 200, 0, out_base, 0, pixels - 1),
    ]  # fmt: skip
    path = write_model(tmp_path, "dense_relu", ARCH, encode_program(prog, Layout.from_arch(ARCH)), consts,
                       inputs=[("x", 0, pixels)], outputs=[("y", out_base, pixels)])  # fmt: skip
    return path, Wf, bf, W, b


def test_run_model_end_to_end_matches_fixed_point_reference(tmp_path):
    path, Wf, bf, W, b = dense_relu_model(tmp_path)
    loaded = read_model(path, expect_arch=ARCH)
    rng = np.random.default_rng(2)
    x = rng.uniform(-2, 2, (1, 3, 2, 2)).astype(np.float32)
    y = run_model(loaded, {"x": x}, output_shapes={"y": (1, 5, 2, 2)})["y"]
    assert y.shape == (1, 5, 2, 2) and y.dtype == np.float32
    # independent fixed-point reference: quantize input half-even, mac chain in lane order
    xq, _ = fixed.quantize(x, FP16, rounding="half_even")
    ref = np.zeros((1, 5, 2, 2))
    for h in range(2):
        for w in range(2):
            for co in range(5):
                acc = b[co]
                for ci in range(3):
                    acc = fixed.mac(xq[0, ci, h, w], W[co, ci], acc, FP16)
                ref[0, co, h, w] = max(int(acc), 0) / 256
    assert np.array_equal(y, ref.astype(np.float32))
    float_ref = np.maximum(np.einsum("oc,nchw->nohw", Wf, x) + bf[None, :, None, None], 0)
    assert np.abs(y - float_ref).max() < 0.03
    flat = run_model(loaded, {"x": x})["y"]
    assert flat.shape == (4 * A,)  # no shape: flat vectors like the upstream driver


def test_model_runner_reuses_its_plan_and_checks_inputs(tmp_path):
    path, *_ = dense_relu_model(tmp_path)
    runner = ModelRunner(read_model(path))
    x = np.full((1, 3, 2, 2), 200.0)  # saturates at 127.996
    runner.run({"x": x})
    assert runner.input_overflows == 12
    with pytest.raises(ModelError, match="packs into 9 vectors, the model expects 4"):
        runner.run({"x": np.zeros((1, 3, 3, 3))})
    with pytest.raises(ModelError, match="missing input"):
        runner.run({})


def test_load_consts_to_local(tmp_path):
    path, *_ = dense_relu_model(tmp_path)
    loaded = read_model(path)
    loaded = LoadedModel(replace(loaded.manifest, load_consts_to_local=True), loaded.program, loaded.consts)
    runner = ModelRunner(loaded)
    assert np.array_equal(runner.machine.local[: A + 1], runner.machine.dram1.read(np.arange(A + 1)))
    assert to_vectors(np.zeros((1, 3, 2, 2)), A).shape == (4, A)


def test_realistic_conv_layer_matches_independent_fixed_point_conv():
    """The RTL-verified 3x3 convolution (§3.4) against a direct conv built from tensil.fixed."""
    from core_conv_program import OUTPUT_DRAM0, TAPS, conv3x3_program

    rng = np.random.default_rng(7)
    x = rng.integers(-600, 600, (8, 8, A))  # NHWC raw input
    W = rng.integers(-300, 300, (9, A, A))  # [tap][ci][co]
    bias = rng.integers(-500, 500, A)
    m = Machine(ARCH)
    m.dram1.write(np.arange(109), np.vstack([bias[None], W.reshape(-1, A)]))
    m.dram0.write(np.arange(64), x.reshape(64, A))
    m.execute(conv3x3_program())
    got = m.dram0.read(np.arange(OUTPUT_DRAM0, OUTPUT_DRAM0 + 64)).reshape(8, 8, A)

    xp = np.pad(x, ((1, 1), (1, 1), (0, 0)))
    acc = None
    for t, (kh, kw) in enumerate(TAPS):
        y = np.broadcast_to(bias if t == 0 else np.zeros(A, dtype=np.int64), (8, 8, A))
        patch = xp[kh : kh + 8, kw : kw + 8]
        for ci in range(A):
            y = fixed.mac(patch[..., ci : ci + 1], W[t, ci], y, FP16)
        acc = y if acc is None else fixed.add(acc, y, FP16)
    assert np.array_equal(got, np.maximum(acc, 0))


def test_upstream_global_average_pool_sequence_is_batched_and_exact():
    """Upstream's GAP over 8x8: 65 SIMD per channel vector, a period of 65."""
    cv, pixels, mult_addr = 3, 64, 1000
    prog = []
    for c in range(cv):
        prog.append(Simd(SimdOp.MAX, 0, 0, 1, read=True, read_addr=c))
        prog += [Simd(SimdOp.ADD, 0, 1, 1, read=True, read_addr=p * cv + c) for p in range(1, pixels)]
        prog.append(Simd(SimdOp.MULTIPLY, 0, 1, 0, read=True, write=True, read_addr=mult_addr, write_addr=1500 + c))
    init = np.random.default_rng(3).integers(-2000, 2000, (2048, A))
    a, b = Machine(ARCH), Machine(ARCH)
    a.acc[:] = init
    b.acc[:] = init
    plan = build_plan(prog, ARCH)
    assert len(plan.steps) == 1
    a.execute(plan)
    for ins in prog:
        b.execute([ins])
    assert np.array_equal(a.acc, b.acc) and np.array_equal(a.registers, b.registers)
    assert a.counters.simd_saturations > 0  # sums of 64 values of up to ~8 saturate at 128


def test_only_accumulating_matmul_vectors_count_accumulate_saturations():
    """A run mixing plain writes and accumulations: a plain write over a full accumulator
    clips nothing, so only the accumulating vectors' clipped lanes count."""
    m = Machine(ARCH)
    m.local[0] = 1000  # the bias: 1000 in every lane
    m.acc[0:8] = 32000
    m.execute([LoadWeight(0, 0, 0), MatMul(100, 0, 0, 0, 3, zeroes=True),
               MatMul(100, 0, 4, 0, 3, zeroes=True, accumulate=True)])  # fmt: skip
    assert np.array_equal(m.acc[0:4], np.full((4, A), 1000))
    assert np.array_equal(m.acc[4:8], np.full((4, A), 32767))
    assert m.counters.accumulate_saturations == 4 * A
