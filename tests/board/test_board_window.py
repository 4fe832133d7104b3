"""`--display window`: a real Tk window on an X server (Xvfb), checked with screenshots of that
server's framebuffer; keys typed into the window become demo events."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import threading
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from board.screen import HEIGHT, WIDTH

try:
    import tkinter  # noqa: F401
    NO_TK = None
except ImportError:
    NO_TK = "no tkinter (Debian: python3-tk) for the window test"

pytestmark = pytest.mark.skipif(shutil.which("Xvfb") is None or NO_TK is not None,
                                reason=NO_TK or "no Xvfb (Debian package xvfb) for the window test")


class Xvfb:
    """An X server in memory whose screen is also a file (`-fbdir`): the screenshot source."""

    def __init__(self, folder: Path):
        read, write = os.pipe()
        self.fbdir = folder
        self.proc = subprocess.Popen(["Xvfb", "-displayfd", str(write), "-screen", "0", "1024x768x24",
                                      "-fbdir", str(folder), "-nolisten", "tcp"],
                                     pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(write)
        with os.fdopen(read) as f:
            number = f.readline().strip()
        if not number:
            self.proc.kill()
            pytest.skip("Xvfb did not start")
        self.display = f":{number}"

    def screenshot(self) -> np.ndarray:
        """The whole screen as BGR, read from Xvfb's XWD framebuffer file."""
        data = (self.fbdir / "Xvfb_screen0").read_bytes()
        header = struct.unpack(">25I", data[:100])
        size, width, height, bpp, line, ncolors = header[0], header[4], header[5], header[11], header[12], header[19]
        assert bpp == 32 and header[7] == 0            # 32-bit pixels, least significant byte first
        start = size + 12 * ncolors
        pixels = np.frombuffer(data, np.uint8, count=line * height, offset=start).reshape(height, line // 4, 4)
        return pixels[:, :width, :3].copy()            # B, G, R, unused

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def _server(tmp_path_factory):
    # One server for the module: Tk keeps its connection after a window is destroyed, and Xlib
    # ends the process when a server it is connected to goes away.
    server = Xvfb(tmp_path_factory.mktemp("xvfb"))
    yield server
    server.close()


@pytest.fixture
def xserver(_server, monkeypatch):
    monkeypatch.setenv("DISPLAY", _server.display)
    return _server


def _canvas() -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    canvas[:, : WIDTH // 2] = (0, 0, 255)
    canvas[:, WIDTH // 2:] = (0, 255, 0)
    cv2.putText(canvas, "window test", (40, 240), cv2.FONT_HERSHEY_SIMPLEX, 2, (255, 255, 255), 3)
    return canvas


def test_the_window_shows_the_screen_pixel_for_pixel(xserver, tmp_path):
    from board.window import TkWindow

    window = TkWindow()
    canvas = _canvas()
    try:
        deadline = time.monotonic() + 10                # the X server draws asynchronously
        while True:
            window.write(canvas)
            x, y = window.root.winfo_rootx(), window.root.winfo_rooty()
            shot = xserver.screenshot()
            if np.array_equal(shot[y:y + HEIGHT, x:x + WIDTH], canvas) or time.monotonic() > deadline:
                break
            time.sleep(0.05)
    finally:
        window.close()
    cv2.imwrite(str(tmp_path / "screenshot.png"), shot)
    assert np.array_equal(shot[y:y + HEIGHT, x:x + WIDTH], canvas)


def test_keys_typed_into_the_window_are_read_in_order_and_closing_quits(xserver):
    from board.controls import Action, key_event
    from board.window import ESCAPE, TkWindow

    window = TkWindow()
    try:
        window.write(_canvas())
        window.root.focus_force()
        for keysym in ("n", "space", "3", "F1", "i"):   # F1 is no demo key
            window.root.event_generate("<KeyPress>", keysym=keysym, when="tail")
        window.write(_canvas())
        read = []
        while window.last_key >= 0:
            read.append(window.last_key)
            window.last_key = -1
        assert [key_event(k).action for k in read] == [Action.NEXT_CLASS, Action.SHOT, Action.SHOT, Action.INFER]
        window._on_close()                              # what the window manager's close button calls
        assert window.last_key == ESCAPE and key_event(ESCAPE).action is Action.QUIT
    finally:
        window.close()


def test_demo_in_a_window_runs_and_is_seen(xserver, onnx_bundle, generated_video, tmp_path):
    from board.demo import DemoConfig, run_demo

    shots: list[np.ndarray] = []
    stop = threading.Event()

    def grab() -> None:                                 # screenshots while the demo runs
        while not stop.is_set():
            shot = xserver.screenshot()
            if shot[:HEIGHT, :WIDTH].std() > 20:         # the demo screen, not the empty root window
                shots.append(shot)
            time.sleep(0.2)

    grabber = threading.Thread(target=grab, daemon=True)
    grabber.start()
    try:
        report = run_demo(DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video),
                                     display="window", out=str(tmp_path / "out")))
    finally:
        stop.set()
        grabber.join(5)
    assert report.error is None and report.accuracy >= 0.9   # the scripted events drive it as on the board
    assert shots, "no screenshot showed the demo screen"
    cv2.imwrite(str(tmp_path / "demo_window.png"), shots[-1])
    bar = shots[-1][HEIGHT - 30:HEIGHT, :WIDTH]
    assert bar.std() > 5                                # the bottom bar's text is drawn


def test_without_a_display_the_window_is_one_line(monkeypatch, capsys, onnx_bundle, generated_video, tmp_path):
    from board.cli import main

    monkeypatch.delenv("DISPLAY", raising=False)
    assert main(["demo", "--bundle", str(onnx_bundle), "--backend", "onnx", "--video", str(generated_video),
                 "--display", "window", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("board: error: --display window cannot open a window") and "Traceback" not in "".join(err)
