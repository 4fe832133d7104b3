"""The TCU driver against the emulated PYNQ device, compared with the emulator called directly."""

import numpy as np
import pytest

pytest.importorskip("tensil.emulator")

from board.emulated_pynq import EmulatedPynq
from board.errors import AcceleratorTimeoutError, ArchMismatchError, BackendError
from board.tcu import TcuDriver
from tensil.arch import load_arch
from tensil.emulator import ModelRunner
from tensil.tmodel import read_model

from board_testdata import POINTWISE_PIXELS as PIXELS, pointwise_model


def emulated_driver(loaded, timeout_s: float, load: bool = True, **device_options):
    """Our TCU driver on a fresh emulated PYNQ of the model's arch (the model loaded unless `load` is False)."""
    device = EmulatedPynq(loaded.arch, **device_options)
    driver = TcuDriver(loaded.arch, device.axi_dma_0, device.allocate, timeout_s=timeout_s)
    if load:
        driver.load_model(loaded)
    return device, driver


def test_driver_refuses_a_program_the_hardware_gets_wrong(tmp_path):
    """Whoever compiled it, a program breaking a hardware rule never reaches the TCU: one line
    naming the instruction and the rule, before anything is streamed."""
    loaded = read_model(pointwise_model(tmp_path, lost_update=True)[0])
    device, driver = emulated_driver(loaded, timeout_s=5, load=False)
    with pytest.raises(BackendError) as e:
        driver.load_model(loaded)
    assert len(str(e.value).splitlines()) == 1
    assert "instruction 4 (MatMul" in str(e.value) and "breaks rule acc-read-after-write" in str(e.value)
    assert driver.model is None and device.tcu.fault is None
    with pytest.raises(Exception, match="acc-read-after-write"):
        ModelRunner(loaded)  # the emulator refuses it too


@pytest.mark.parametrize("preload", [False, True])
def test_driver_on_emulated_device_equals_emulator(tmp_path, preload):
    path, w, b = pointwise_model(tmp_path, load_consts_to_local=preload)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=5)
    direct = ModelRunner(loaded)
    rng = np.random.default_rng(1)
    for _ in range(3):                                         # buffers reused across frames
        x = rng.normal(size=(1, 3, 4, 4)).astype(np.float32)
        ours = driver.run({"x": x})["y"]
        ref = direct.run({"x": x})["y"]
        np.testing.assert_array_equal(ours.astype(np.float64).ravel() / 256, ref)
        # and the arithmetic is the 1x1 convolution it claims to be (fixed point tolerance)
        pixels = x[0].reshape(3, -1).T
        np.testing.assert_allclose(ours / 256.0, pixels @ w + b, atol=0.03)
    assert device.tcu.fault is None
    device.memory.cache_maintenance.clear()
    driver.run({"x": x})
    ops = device.memory.cache_maintenance        # only the touched bytes, never the 24 MiB DRAM0
    assert ops and max(n for _, n in ops) <= PIXELS * loaded.arch.vector_bytes


def test_driver_streams_long_programs_in_chunks(tmp_path):
    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=5, buffer_max_size=40)     # 5 instructions per DMA transfer
    x = np.ones((1, 3, 4, 4), np.float32)
    np.testing.assert_array_equal(driver.run({"x": x})["y"].ravel() / 256, ModelRunner(loaded).run({"x": x})["y"])


def test_model_for_another_arch_is_refused(tmp_path):
    path, _, _ = pointwise_model(tmp_path, arch_name="pynqz1")
    hw = load_arch("custom_perf")
    device = EmulatedPynq(hw)
    driver = TcuDriver(hw, device.axi_dma_0, device.allocate, timeout_s=5)
    with pytest.raises(ArchMismatchError, match="compiled for"):
        driver.load_model(read_model(path))


def test_bitstream_of_another_arch_times_out_instead_of_hanging():
    """The demo believes the bitstream is custom_perf; it really is pynqz1 (A=8): the probe never lands."""
    device = EmulatedPynq(load_arch("pynqz1"))
    with pytest.raises(AcceleratorTimeoutError, match="did not finish"):
        TcuDriver(load_arch("custom_perf"), device.axi_dma_0, device.allocate, timeout_s=0.3)


def test_hung_accelerator_times_out(tmp_path):
    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=0.3)
    device.tcu.hung = True                                     # e.g. a SIMD hazard stalled it
    with pytest.raises(AcceleratorTimeoutError, match="within 0.3 s"):
        driver.run({"x": np.zeros((1, 3, 4, 4), np.float32)})


def test_emulator_backend_gives_the_emulators_features(tensil_bundle):
    """A compiled backbone through the driver and the emulated PYNQ == tensil.emulator directly."""
    from board.backends import BackendConfig, open_backend
    from board.bundle import load_bundle

    bundle = load_bundle(tensil_bundle)
    backend = open_backend(bundle, BackendConfig("emulator"))
    onnx_backend = open_backend(bundle, BackendConfig("onnx"))
    direct = ModelRunner(read_model(bundle.path("tmodel")))
    rng = np.random.default_rng(4)
    for _ in range(3):
        x = rng.normal(size=(1, 3, 32, 32)).astype(np.float32)
        ours = backend.features(x)
        np.testing.assert_array_equal(ours, direct.run({"input": x}, {"output": (1, 24)})["output"].ravel())
        np.testing.assert_allclose(ours, onnx_backend.features(x), atol=0.05)   # FP16BP8 vs float
    assert backend.driver.arch.name == "custom_perf"
    figures = bundle.meta["verification"]["board_driver"]          # checked when the bundle was built
    assert figures["samples"] == 2 and figures["min_cosine_similarity"] > 0.98


def test_pefsl_unpadded_input_is_caught_by_the_bundle_check(tensil_bundle, monkeypatch):
    """PEFSL sends RGB packed 3 scalars per pixel; Tensil expects A lanes per pixel (docs/tensil.md)."""
    from board import tcu
    from board.bundle import load_bundle
    from board.verify import verify_driver_against_onnx
    from tensil.layout import pack_input

    def pefsl_pack(x, arch):
        raw, n = pack_input(x, arch)
        packed = np.zeros(raw.size, dtype=raw.dtype)
        packed[:raw.shape[0] * 3] = raw[:, :3].reshape(-1)
        return packed.reshape(raw.shape), n

    monkeypatch.setattr(tcu, "pack_input", pefsl_pack)
    assert verify_driver_against_onnx(load_bundle(tensil_bundle))["min_cosine_similarity"] < 0.9


def test_run_after_a_timeout_says_the_accelerator_is_still_busy(tmp_path):
    """pynq's 'DMA channel not idle' RuntimeError becomes one clear accelerator error."""
    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=0.3)
    device.tcu.hung = True
    x = np.zeros((1, 3, 4, 4), np.float32)
    with pytest.raises(AcceleratorTimeoutError):
        driver.run({"x": x})
    with pytest.raises(AcceleratorTimeoutError, match="restart the demo"):
        driver.run({"x": x})


def test_dma_error_is_reported_not_waited_out(tmp_path):
    from board.errors import BackendError

    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=30)
    device.tcu.hung = True                     # the transfer never completes ...
    device.axi_dma_0.sendchannel.error = True  # ... because the DMA hit a decode error
    with pytest.raises(BackendError, match="reported an error") as info:
        driver.run({"x": np.zeros((1, 3, 4, 4), np.float32)})
    assert not isinstance(info.value, AcceleratorTimeoutError)


@pytest.mark.parametrize("skipped", ["_flush", "_invalidate"])
def test_emulated_device_catches_missing_cache_maintenance(tmp_path, monkeypatch, skipped):
    """The emulated PL sees only flushed bytes and the CPU only invalidated ones (cacheable buffers)."""
    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=0.3)
    monkeypatch.setattr(TcuDriver, skipped, staticmethod(lambda view: None))
    x = np.random.default_rng(0).normal(size=(1, 3, 4, 4)).astype(np.float32)
    try:
        ours = driver.run({"x": x})["y"]
    except AcceleratorTimeoutError:
        return                                   # the probe never seen: caught
    assert not np.array_equal(ours.ravel() / 256, ModelRunner(loaded).run({"x": x})["y"])


def test_model_whose_io_overlaps_the_completion_probe_is_refused(tmp_path):
    import dataclasses

    from board.errors import BackendError

    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=5, load=False)
    out = loaded.manifest.outputs[0]
    moved = dataclasses.replace(out, base=loaded.arch.dram0_depth - 1 - out.size + 1)
    manifest = dataclasses.replace(loaded.manifest, outputs=(moved,))
    with pytest.raises(BackendError, match="completion probe"):
        driver.load_model(dataclasses.replace(loaded, manifest=manifest))


def test_driver_saturates_out_of_range_inputs_instead_of_wrapping(tmp_path):
    """Upstream's driver lets 200.0 wrap to a negative number; ours clips it and counts it."""
    path, _, _ = pointwise_model(tmp_path)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=5)
    x = np.zeros((1, 3, 4, 4), np.float32)
    x[0, 0, 0, 0], x[0, 1, 2, 3], x[0, 2, 1, 1] = 200.0, -300.0, 1000.0
    ours = driver.run({"x": x})["y"]
    assert driver.saturated_inputs == 3
    top = loaded.arch.dtype.max_value
    clipped = np.clip(x, -128.0, top)
    np.testing.assert_array_equal(ours.ravel() / 256, ModelRunner(loaded).run({"x": clipped})["y"])
    wrapped = x.copy()
    wrapped[0, 0, 0, 0] = 200.0 - 256.0
    assert not np.array_equal(ours.ravel() / 256, ModelRunner(loaded).run({"x": wrapped})["y"])


def test_reloading_models_does_not_leak_contiguous_memory(tmp_path):
    """CMA is scarce on the board: one-off instruction buffers and replaced ones are given back."""
    path, _, _ = pointwise_model(tmp_path, load_consts_to_local=True)
    loaded = read_model(path)
    device, driver = emulated_driver(loaded, timeout_s=5)
    live = len(device.memory._blocks)
    assert live == 3                                    # DRAM0, DRAM1, the program
    x = np.ones((1, 3, 4, 4), np.float32)
    first = driver.run({"x": x})["y"]
    for _ in range(3):
        driver.load_model(loaded)
    assert len(device.memory._blocks) == live
    np.testing.assert_array_equal(driver.run({"x": x})["y"], first)
    driver.close()
    assert device.memory._blocks == []
