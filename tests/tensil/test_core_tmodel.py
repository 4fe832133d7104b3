"""`.tmodel` IO (exact upstream JSON, atomic writes, truncation, arch mismatch) and host layouts."""

from __future__ import annotations

import json
import os

import numpy as np
import pytest

from tensil.arch import load_arch
from tensil.layout import LayoutError, from_vectors, pack_input, to_vectors, unpack_output, vector_count
from tensil.tmodel import ModelError, Span, model_file_name, read_model, write_model

ARCH = load_arch("custom_perf")
PROG = bytes(range(16))  # two 8-byte records (content irrelevant for IO)
CONSTS = bytes(3 * ARCH.vector_bytes)


def write(tmp_path, **kw):
    args = dict(name="net_onnx_custom_perf", arch=ARCH, program=PROG, consts=CONSTS,
                inputs=[("input.1", 0, 1024)], outputs=[Span(base=1024, size=7, name="Output")])  # fmt: skip
    args.update(kw)
    return write_model(tmp_path, **args)


def test_manifest_is_exactly_upstreams_format(tmp_path):
    path = write(tmp_path)
    text = path.read_text()
    assert text == (
        '{"name":"net_onnx_custom_perf","prog":{"file_name":"net_onnx_custom_perf.tprog","size":16},'
        '"consts":[{"file_name":"net_onnx_custom_perf.tdata","base":0,"size":3}],'
        '"inputs":[{"name":"input.1","base":0,"size":1024}],"outputs":[{"name":"Output","base":1024,"size":7}],'
        '"arch":{"data_type":"FP16BP8","array_size":12,"dram0_depth":1048576,"dram1_depth":1048576,'
        '"local_depth":8192,"accumulator_depth":2048,"simd_registers_depth":1,"stride0_depth":8,'
        '"stride1_depth":8,"number_of_threads":1,"thread_queue_depth":8},"load_consts_to_local":false}'
    )
    loaded = read_model(path, expect_arch=ARCH)
    assert loaded.program == PROG and loaded.consts == CONSTS
    assert loaded.manifest.input_names == ["input.1"] and loaded.manifest.output_names == ["Output"]
    assert sorted(os.listdir(tmp_path)) == [f"net_onnx_custom_perf.{e}" for e in ("tdata", "tmodel", "tprog")]


def test_split_variables_are_sorted_by_base(tmp_path):
    path = write(tmp_path, outputs=[("y", 900, 2), ("y", 100, 3)])
    spans = read_model(path).manifest.spans("y", outputs=True)
    assert [(s.base, s.size) for s in spans] == [(100, 3), (900, 2)]
    with pytest.raises(ModelError, match="no output named 'z'"):
        read_model(path).manifest.spans("z", outputs=True)


@pytest.mark.parametrize("suffix,cut", [(".tprog", 3), (".tdata", 1), (".tprog", 8)])
def test_truncated_files_are_refused(tmp_path, suffix, cut):
    path = write(tmp_path)
    f = path.with_suffix(suffix)
    f.write_bytes(f.read_bytes()[:-cut])
    with pytest.raises(ModelError, match="truncated"):
        read_model(path)


def test_missing_file_bad_json_extra_key_and_arch_mismatch(tmp_path):
    path = write(tmp_path)
    with pytest.raises(ModelError, match="compiled for another architecture than pynqz1 .*array_size"):
        read_model(path, expect_arch=load_arch("pynqz1"))
    path.with_suffix(".tdata").unlink()
    with pytest.raises(ModelError, match="constants file .* is missing"):
        read_model(path)
    d = json.loads(path.read_text())
    path.write_text(json.dumps({**d, "comment": 1}))
    with pytest.raises(ModelError, match="unknown key"):
        read_model(path)
    del d["arch"]["thread_queue_depth"]
    path.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="bad arch.*thread_queue_depth"):
        read_model(path)
    path.write_text("{")
    with pytest.raises(ModelError, match="not valid JSON"):
        read_model(path)
    with pytest.raises(ModelError, match="no such"):
        read_model(tmp_path / "nothing.tmodel")


def test_write_is_atomic_on_failure(tmp_path, monkeypatch):
    calls = []
    real_replace = os.replace

    def failing_replace(src, dst):
        calls.append(dst)
        if len(calls) == 2:
            raise OSError("disk full")
        real_replace(src, dst)

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError):
        write(tmp_path)
    assert not any(p.name.endswith(".tmp") for p in tmp_path.iterdir())
    assert not (tmp_path / "net_onnx_custom_perf.tmodel").exists()


def test_write_refuses_partial_records(tmp_path):
    with pytest.raises(ModelError, match="instructions"):
        write(tmp_path, program=PROG[:-1])
    with pytest.raises(ModelError, match="vectors"):
        write(tmp_path, consts=CONSTS[:-2])
    assert list(tmp_path.iterdir()) == []


def test_model_file_name_like_upstream():
    assert model_file_name("resnet9_strided_16fmaps.onnx", "custom_perf") == "resnet9_strided_16fmaps_onnx_custom_perf"
    assert model_file_name("a-b c:d.onnx", "pynqz1") == "a_b c:d_onnx_pynqz1"


# ---------------------------------------------------------------------------------- layouts


def test_nchw_layout_index_formula():
    A = 4
    x = np.arange(2 * 6 * 3 * 2).reshape(2, 6, 3, 2)  # N C H W, C=6 -> Cv=2
    v = to_vectors(x, A)
    assert v.shape == (2 * 3 * 2 * 2, A) == (vector_count(x.shape, A), A)
    for n, c, h, w in [(0, 0, 0, 0), (1, 5, 2, 1), (0, 4, 1, 0), (1, 3, 0, 1)]:
        vec = ((n * 3 + h) * 2 + w) * 2 + c // A
        assert v[vec, c % A] == x[n, c, h, w]
    assert not v[1::2, 2:].any()  # padding lanes of the second channel vector
    assert np.array_equal(from_vectors(v, x.shape, A), x)


@pytest.mark.parametrize("shape", [(7,), (3, 13), (1, 3, 5, 5), (2, 12, 1, 1)])
def test_layout_round_trips(shape):
    x = np.random.default_rng(0).integers(-100, 100, shape)
    assert np.array_equal(from_vectors(to_vectors(x, 12), shape, 12), x)


def test_layout_errors():
    with pytest.raises(LayoutError, match="rank 3"):
        vector_count((1, 2, 3), 12)
    with pytest.raises(LayoutError, match="rank 3"):
        to_vectors(np.zeros((1, 2, 3)), 12)
    with pytest.raises(LayoutError, match="needs 2 vectors"):
        from_vectors(np.zeros((3, 12)), (1, 20), 12)


def test_pack_input_rounds_half_even_and_saturates():
    x = np.array([[0.5 / 256, 1.5 / 256, 2.5 / 256, 200.0, -200.0]])
    raw, n = pack_input(x, ARCH)
    assert raw.shape == (1, 12)
    assert raw[0, :5].tolist() == [0, 2, 2, 32767, -32768] and n == 2
    with pytest.raises(LayoutError, match="NaN"):
        pack_input(np.array([np.nan]), ARCH)
    out = unpack_output(raw, (1, 5), ARCH)
    assert out.dtype == np.float32 and out[0, 3] == np.float32(32767 / 256)


def test_file_names_must_stay_next_to_the_manifest(tmp_path):
    with pytest.raises(ModelError, match="plain file name"):
        write(tmp_path, name="../escape")
    path = write(tmp_path)
    d = json.loads(path.read_text())
    d["prog"]["file_name"] = "../../etc/passwd"
    path.write_text(json.dumps(d))
    with pytest.raises(ModelError, match="plain name"):
        read_model(path)
