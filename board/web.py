"""`--display web`: the annotated screen and the four buttons, served to a browser.

For a board without an HDMI screen, reached over the network the way PYNQ users reach Jupyter:
`GET /` is a page with the live picture and the SHOT / NEW CLASS / INFER / RESET buttons,
`GET /stream` the screen as MJPEG, `GET /frame.jpg` the latest screen, `POST /action/<name>` a
button press. Standard library + OpenCV only (it runs on the board). Bound to 127.0.0.1 unless
told otherwise: it has no authentication, so expose it only on a trusted network (or reach it
through `ssh -L 8080:127.0.0.1:8080 xilinx@<board>`).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import cv2
import numpy as np

from board.controls import Action, Event

BUTTONS = (("shot", "SHOT", Action.SHOT), ("next", "NEW CLASS", Action.NEXT_CLASS),
           ("infer", "INFER", Action.INFER), ("reset", "RESET", Action.RESET))
ACTIONS = {name: action for name, _, action in BUTTONS}

PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>few-shot demo</title>
<style>body{{background:#181818;color:#eee;font-family:sans-serif;margin:12px}}
img{{max-width:100%;border:1px solid #444}} button{{font-size:18px;margin:6px 6px 0 0;padding:8px 16px}}</style>
</head><body>
<img id="screen" src="/stream" width="800" height="480" alt="demo screen">
<div>{buttons}</div>
<div id="status"></div>
<script>
async function press(name) {{
  const r = await fetch('/action/' + name, {{method: 'POST'}});
  document.getElementById('status').textContent = name + ': ' + (await r.text());
}}
// '#click=<button>' in the address presses that button once (bookmarks, scripted checks)
const wanted = location.hash.startsWith('#click=') ? document.getElementById(location.hash.slice(7)) : null;
if (wanted) wanted.click();
</script>
</body></html>
"""


@dataclass(frozen=True)
class WebConfig:
    host: str = "127.0.0.1"
    port: int = 8080              # 0: any free port (tests)
    quality: int = 80             # JPEG quality of the stream


class WebDisplay:
    """A display sink (`write`, `close`) and a control (`poll`) in one: frames out, presses in."""

    def __init__(self, config: WebConfig = WebConfig()):
        self.config = config
        self._frame: bytes | None = None
        self._seq = 0
        self._events: list[Event] = []
        self._cond = threading.Condition()
        self._closed = False
        self.server = ThreadingHTTPServer((config.host, config.port), _handler(self))
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.1,), name="board-web", daemon=True)
        self._thread.start()

    @property
    def url(self) -> str:
        host, port = self.server.server_address[:2]
        return f"http://{host}:{port}/"

    # ----- sink ------------------------------------------------------------------------------
    def write(self, canvas: np.ndarray) -> None:
        ok, jpeg = cv2.imencode(".jpg", canvas, [cv2.IMWRITE_JPEG_QUALITY, self.config.quality])
        if ok:
            with self._cond:
                self._frame, self._seq = jpeg.tobytes(), self._seq + 1
                self._cond.notify_all()

    def close(self, keep: bool = True) -> None:
        """Stop serving (idempotent: the demo closes it as a sink and as a control)."""
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self.server.shutdown()
        self.server.server_close()

    # ----- control ---------------------------------------------------------------------------
    def press(self, name: str) -> bool:
        action = ACTIONS.get(name)
        if action is None:
            return False
        with self._cond:
            self._events.append(Event(action))
        return True

    def poll(self, frame_number: int) -> list[Event]:
        with self._cond:
            events, self._events = self._events, []
        return events

    # ----- for the handler -------------------------------------------------------------------
    def next_frame(self, after: int, timeout: float = 2.0) -> tuple[int, bytes | None]:
        """The first frame newer than sequence number `after` (waits up to `timeout`)."""
        with self._cond:
            self._cond.wait_for(lambda: self._seq > after or self._closed, timeout)
            return self._seq, self._frame

    @property
    def closed(self) -> bool:
        return self._closed


def _handler(display: WebDisplay) -> type[BaseHTTPRequestHandler]:
    buttons = "".join(f'<button id="{name}" onclick="press(\'{name}\')">{label}</button>'
                      for name, label, _ in BUTTONS)
    page = PAGE.format(buttons=buttons).encode()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, *args) -> None:   # no per-request lines on the demo's console
            pass

        def _send(self, code: int, body: bytes, kind: str) -> None:
            self.send_response(code)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            if self.path == "/":
                self._send(200, page, "text/html; charset=utf-8")
            elif self.path == "/frame.jpg":
                _, frame = display.next_frame(-1, 0)
                self._send(200, frame, "image/jpeg") if frame else self._send(503, b"no frame yet", "text/plain")
            elif self.path == "/stream":
                self._stream()
            else:
                self._send(404, b"not found", "text/plain")

        def do_POST(self) -> None:
            name = self.path.removeprefix("/action/")
            if self.path.startswith("/action/") and display.press(name):
                self._send(200, b"ok", "text/plain")
            else:
                self._send(404, b"unknown action", "text/plain")

        def _stream(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
            self.send_header("Cache-Control", "no-store")
            self.end_headers()
            seq = 0
            try:
                while not display.closed:
                    seq, frame = display.next_frame(seq)
                    if frame is None:
                        continue
                    self.wfile.write(b"--frame\r\nContent-Type: image/jpeg\r\nContent-Length: "
                                     + str(len(frame)).encode() + b"\r\n\r\n" + frame + b"\r\n")
            except (BrokenPipeError, ConnectionResetError):
                pass

    return Handler
