"""The on-board code paths (pynq Overlay, allocate, axi_dma_0, HDMI out, AXI GPIO buttons) run
against a stand-in `pynq` module whose DMA and memory are the emulated PYNQ device."""

import hashlib
import json
import shutil
import sys
import types

import numpy as np
import pytest

pytest.importorskip("tensil.emulator")

from board.demo import DemoConfig, run_demo
from board.emulated_pynq import EmulatedPynq


class FakeHdmiOut:
    def __init__(self):
        self.frames, self.mode, self.closed = [], None, False
        self._vdma = None        # as pynq's VideoOut in a video hierarchy without HDMI in (no HDMIWrapper)

    def configure(self, mode, pixelformat):
        if self._vdma is None:   # pynq: AttributeError on None.readchannel
            raise AttributeError("'NoneType' object has no attribute 'readchannel'")
        self.mode = (mode, pixelformat)

    def start(self):
        pass

    def newframe(self):
        return np.full((600, 800, 3), 7, np.uint8)

    def writeframe(self, frame):
        self.frames.append(frame)

    def close(self):
        self.closed = True


class FakeChannel:
    def setdirection(self, d):
        pass

    def read(self):
        return 0


def fake_pynq(device: EmulatedPynq, hdmi: FakeHdmiOut, loaded: list):
    pynq = types.ModuleType("pynq")

    class Overlay:
        def __init__(self, path):
            loaded.append(path)
            self.axi_dma_0 = device.axi_dma_0
            self.btns_gpio = types.SimpleNamespace(channel1=FakeChannel(), channel2=FakeChannel())
            self.video = types.SimpleNamespace(hdmi_out=hdmi, axi_vdma="the video/axi_vdma driver")

    pynq.Overlay, pynq.allocate = Overlay, device.allocate
    lib = types.ModuleType("pynq.lib")
    video = types.ModuleType("pynq.lib.video")
    video.VideoMode = lambda w, h, bpp: (w, h, bpp)
    video.PIXEL_BGR = "BGR"
    pynq.lib, lib.video = lib, video
    return {"pynq": pynq, "pynq.lib": lib, "pynq.lib.video": video}


def test_tensil_backend_hdmi_and_buttons_through_pynq(tensil_bundle, samples_npz, tmp_path, monkeypatch):
    from board.bundle import load_bundle
    from board.synthvideo import VideoConfig, generate_video

    bundle_dir = tmp_path / "bundle"
    shutil.copytree(tensil_bundle, bundle_dir)
    meta = json.loads((bundle_dir / "model.json").read_text())
    (bundle_dir / "design.bit").write_bytes(b"bit")
    (bundle_dir / "design.hwh").write_text("<hwh/>")
    meta["files"].update(bitstream="design.bit", hwh="design.hwh")
    meta["sha256"].update({name: hashlib.sha256((bundle_dir / name).read_bytes()).hexdigest()
                           for name in ("design.bit", "design.hwh")})
    meta["bitstream_arch"] = meta["arch"]
    (bundle_dir / "model.json").write_text(json.dumps(meta))
    bundle = load_bundle(bundle_dir)
    assert bundle.backends() == ["onnx", "emulator", "tensil"]

    device, hdmi, loaded = EmulatedPynq(bundle.bitstream_arch), FakeHdmiOut(), []
    for name, module in fake_pynq(device, hdmi, loaded).items():
        monkeypatch.setitem(sys.modules, name, module)
    generate_video(VideoConfig(samples=str(samples_npz), out=str(tmp_path / "video"), classes=2, shots=1,
                               test_frames=10))
    report = run_demo(DemoConfig(bundle=str(bundle_dir), backend="tensil", video=str(tmp_path / "video"),
                                 display="hdmi", buttons=True, out=str(tmp_path / "demo")))
    assert report.error is None and report.accuracy >= 0.9
    assert loaded == [str(bundle_dir / "design.bit")]
    assert hdmi.mode == ((800, 600, 24), "BGR") and hdmi.closed and hdmi._vdma == "the video/axi_vdma driver"
    assert len(hdmi.frames) == report.frames
    assert (hdmi.frames[-1][480:] == 0).all() and hdmi.frames[-1][:480].any()
    assert device.tcu.instructions > 0 and device.tcu.fault is None


def test_overlay_that_fails_to_load_is_one_clear_error(tensil_bundle, monkeypatch):
    """pynq.Overlay's own failures (not root, .hwh not matching the .bit) do not end in a traceback."""
    from board.backends import load_overlay
    from board.bundle import load_bundle
    from board.errors import BackendError

    pynq = types.ModuleType("pynq")

    def Overlay(path):
        raise RuntimeError("Could not find a device")

    pynq.Overlay = Overlay
    monkeypatch.setitem(sys.modules, "pynq", pynq)
    bundle = load_bundle(tensil_bundle)
    monkeypatch.setattr(type(bundle), "path", lambda self, role: tensil_bundle / "design.bit")
    with pytest.raises(BackendError, match="cannot load the bitstream .*Could not find a device"):
        load_overlay(bundle)
