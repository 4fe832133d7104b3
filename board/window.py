"""`--display window`: the screen in a desktop window, keys as demo events (a laptop with a webcam).

The window is drawn with Tk (Python's standard `tkinter`), not with OpenCV's highgui: the pinned
OpenCV is the headless build (`opencv-python-headless`), which captures from a webcam but opens no
window, and its GUI twin `opencv-python` installs the same `cv2` module, so the two cannot share
one environment. Tk comes with the python.org and pyenv builds of Python and, on Debian/Ubuntu,
with the `python3-tk` package. Where tkinter is missing but OpenCV has a GUI (the PYNQ image's
OpenCV), the window falls back to OpenCV's. Tk runs in the caller's thread: `write` draws one
frame and handles the pending window events (keys, closing the window).
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np

from board.errors import BoardError

ESCAPE = 27   # the key code that quits (board.controls.KEYS)
_KEYSYMS = {"space": ord(" "), "Escape": ESCAPE}


def open_window(title: str = "few-shot demo"):
    """A Tk window, or OpenCV's when tkinter is missing; one-line BoardError when neither can open."""
    try:
        import tkinter  # noqa: F401
    except ImportError:
        from board.sources import WindowSink

        try:
            return WindowSink(title)
        except BoardError:
            raise BoardError("no window toolkit: install tkinter (Debian: python3-tk) or an OpenCV with GUI "
                             "support, or use --display web or --display file") from None
    return TkWindow(title)


def ppm(canvas: np.ndarray) -> bytes:
    """A BGR uint8 (H, W, 3) image as binary PPM (what Tk's photo images read without Pillow)."""
    h, w = canvas.shape[:2]
    return b"P6 %d %d 255\n" % (w, h) + np.ascontiguousarray(canvas[:, :, ::-1]).tobytes()


class TkWindow:
    """A display sink (`write`, `close`) whose `last_key` is the oldest unread key (-1: none);
    setting it to -1 consumes that key (the demo loop's keyboard protocol)."""

    def __init__(self, title: str = "few-shot demo"):
        import tkinter

        try:
            self.root = tkinter.Tk(className="fsl-demo")
        except tkinter.TclError as exc:
            raise BoardError(f"--display window cannot open a window: {exc} "
                             "(use --display web or --display file)") from None
        self.root.title(title)
        self.root.configure(background="black")
        self.root.protocol("WM_DELETE_WINDOW", self._on_close)
        self.root.bind("<Key>", self._on_key)
        self._photo = None
        self._label = tkinter.Label(self.root, borderwidth=0, highlightthickness=0, background="black")
        self._label.pack()
        self._keys: deque[int] = deque()
        self._closed = False

    @property
    def last_key(self) -> int:
        return self._keys[0] if self._keys else -1

    @last_key.setter
    def last_key(self, value: int) -> None:
        if value < 0:
            if self._keys:
                self._keys.popleft()
        else:
            self._keys.append(value)

    def key_code(self, char: str, keysym: str) -> int | None:
        """The demo's key code of a Tk key event (cv2.waitKey's codes: ASCII, 27 for Escape)."""
        if keysym in _KEYSYMS:
            return _KEYSYMS[keysym]
        if len(char) == 1 and 32 < ord(char) < 127:
            return ord(char.lower())
        return None

    def _on_key(self, event) -> None:
        code = self.key_code(event.char, event.keysym)
        if code is not None:
            self._keys.append(code)

    def _on_close(self) -> None:
        self._keys.append(ESCAPE)                       # closing the window quits the demo
        self._closed = True

    def write(self, canvas: np.ndarray) -> None:
        import tkinter

        if self._closed:
            return
        if canvas.ndim == 2:
            canvas = cv2.cvtColor(canvas, cv2.COLOR_GRAY2BGR)
        photo = tkinter.PhotoImage(master=self.root, data=ppm(canvas), format="PPM")
        self._label.configure(image=photo)
        self._photo = photo                             # Tk shows it only while Python holds it
        try:
            self.root.update()
        except tkinter.TclError:                         # the window went away under us
            self._on_close()

    def close(self, keep: bool = True) -> None:
        import tkinter

        try:
            self.root.destroy()
        except tkinter.TclError:
            pass
