"""`--display web`: the screen served to a browser, and its buttons as demo events."""

from __future__ import annotations

import shutil
import subprocess
import time
import urllib.error
import urllib.request

import cv2
import numpy as np
import pytest

from board.app import AppConfig, FewShotApp
from board.controls import Action, Event
from board.fewshot import FewShotClassifier, NcmConfig
from board.screen import HEIGHT, WIDTH, Screen, Timing
from board.web import WebConfig, WebDisplay


@pytest.fixture
def web():
    display = WebDisplay(WebConfig(port=0))
    yield display
    display.close()


def _get(url: str, timeout: float = 5) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()


def _post(url: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method="POST"), timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


def _canvas() -> np.ndarray:
    canvas = np.zeros((HEIGHT, WIDTH, 3), np.uint8)
    canvas[:, : WIDTH // 2] = (0, 0, 255)        # red left half, green right half (BGR)
    canvas[:, WIDTH // 2:] = (0, 255, 0)
    return canvas


def test_page_frames_and_buttons(web):
    assert web.server.server_address[0] == "127.0.0.1"          # not reachable from other hosts by default
    status, page = _get(web.url)
    assert status == 200 and all(f'id="{b}"' in page.decode() for b in ("shot", "next", "infer", "reset"))
    assert _get(web.url + "frame.jpg")[0] == 503
    web.write(_canvas())
    status, jpeg = _get(web.url + "frame.jpg")
    img = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert status == 200 and img.shape == (HEIGHT, WIDTH, 3)
    assert img[240, 100, 2] > 200 and img[240, 700, 1] > 200 and img[240, 100, 1] < 60
    assert _post(web.url + "action/next") == 200 and _post(web.url + "action/shot") == 200
    assert _post(web.url + "action/format-disk") == 404
    assert web.poll(0) == [Event(Action.NEXT_CLASS), Event(Action.SHOT)] and web.poll(1) == []


def test_stream_sends_each_new_frame(web):
    web.write(_canvas())
    with urllib.request.urlopen(web.url + "stream", timeout=5) as r:
        assert r.headers["Content-Type"].startswith("multipart/x-mixed-replace")
        first = r.read(200)
        assert first.startswith(b"--frame\r\nContent-Type: image/jpeg")


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.mark.skipif(_chromium() is None, reason="no chromium (Debian package chromium) for the browser test")
def test_in_headless_chromium_the_page_shows_frames_and_teach_teaches(web, tmp_path):
    """A real browser: the screenshot shows the demo screen; clicking NEW CLASS teaches a class."""
    app = FewShotApp(FewShotClassifier(4, None, NcmConfig()), AppConfig(frames_per_shot=1), "m")
    frame = np.full((240, 320, 3), (40, 40, 230), np.uint8)
    screen, stop = Screen(), time.monotonic() + 60

    def loop_once() -> None:              # what the demo loop does each frame with this display
        for event in web.poll(0):
            app.handle(event)
        app.on_frame(frame, np.ones(4))
        web.write(screen.draw(frame, app, Timing(fps=10)))

    loop_once()
    shot = tmp_path / "shot.png"
    browser = subprocess.Popen(
        [_chromium(), "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=840,620",
         f"--screenshot={shot}", "--virtual-time-budget=4000", f"{web.url}#click=next"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while browser.poll() is None and time.monotonic() < stop:
        loop_once()
        time.sleep(0.05)
    browser.kill()
    assert len(app.classifier.classes) == 1 and len(app.classifier.classes[0].shots) >= 1   # the click taught
    img = cv2.imread(str(shot))
    assert img is not None
    video = img[80:480, 20:600]           # the live video area of the served screen
    assert (np.abs(video.astype(int) - (40, 40, 230)).max(axis=2) < 40).mean() > 0.3


def test_close_twice_and_the_port_is_free_again():
    display = WebDisplay(WebConfig(port=0))
    port = display.server.server_address[1]
    display.close()
    display.close()
    WebDisplay(WebConfig(port=port)).close()     # the socket was released


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_demo_with_display_web_serves_its_screen(onnx_bundle, generated_video, tmp_path):
    import threading

    from board.demo import DemoConfig, run_demo

    port = _free_port()
    config = DemoConfig(bundle=str(onnx_bundle), backend="onnx", video=str(generated_video), display="web",
                        web_port=port, out=str(tmp_path))
    done: dict = {}
    runner = threading.Thread(target=lambda: done.setdefault("report", run_demo(config)))
    runner.start()
    frame, deadline = None, time.monotonic() + 60
    while runner.is_alive() and frame is None and time.monotonic() < deadline:
        try:
            status, body = _get(f"http://127.0.0.1:{port}/frame.jpg", timeout=2)
            frame = body if status == 200 else None
        except OSError:
            time.sleep(0.05)
    runner.join(120)
    assert frame is not None and cv2.imdecode(np.frombuffer(frame, np.uint8), cv2.IMREAD_COLOR).shape == (HEIGHT, WIDTH, 3)
    assert done["report"].error is None and done["report"].accuracy >= 0.9    # the scripted events still drive it


def test_web_flags_are_checked(capsys):
    from board.cli import main

    assert main(["demo", "--display", "web", "--web-port", "70000"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == ["board: error: --web-port 70000: must be between 0 and 65535"]
