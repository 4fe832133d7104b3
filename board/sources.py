"""Where frames come from (camera, video file) and where the screen goes (video file, window, HDMI)."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import cv2
import numpy as np

from board.errors import BoardError, CameraError
from contracts import Instances
from safeio import ARTIFACT_MODE, temp_path

log = logging.getLogger("board")


class CameraSource:
    """A USB camera through OpenCV; a failed read means the camera was unplugged."""

    def __init__(self, index: int = 0, width: int = 320, height: int = 240):
        self.index = index
        self._cap = cv2.VideoCapture(index)
        if not self._cap.isOpened():
            self._cap.release()
            raise CameraError(f"no camera at index {index} (is it plugged in?)")
        self._cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
        self._cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
        self._cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)      # newest frame, not one queued by the driver
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        if not ok:
            raise CameraError(f"camera {self.index} stopped delivering frames (unplugged?)")
        return frame

    def close(self) -> None:
        self._cap.release()


class VideoFileSource:
    """Frames of a video file; `read()` returns None at the end."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        if not self.path.is_file():
            raise CameraError(f"video file {self.path} does not exist")
        self._cap = cv2.VideoCapture(str(self.path))
        if not self._cap.isOpened():
            raise CameraError(f"cannot decode video file {self.path}")
        self.fps = self._cap.get(cv2.CAP_PROP_FPS) or 30.0

    def read(self) -> np.ndarray | None:
        ok, frame = self._cap.read()
        return frame if ok else None

    def close(self) -> None:
        self._cap.release()


class VideoFileSink:
    """Writes the screen to an MJPG .avi, atomically (temp file renamed on close)."""

    def __init__(self, path: str | Path, fps: float, size: tuple):
        self.path = Path(path)
        try:
            self._tmp = temp_path(self.path, ".avi")
        except OSError as exc:
            raise BoardError(f"cannot write video {self.path}: {exc.strerror or exc}") from None
        self._writer = cv2.VideoWriter(str(self._tmp), cv2.VideoWriter_fourcc(*"MJPG"), fps, size)
        if not self._writer.isOpened():
            self._tmp.unlink(missing_ok=True)
            raise BoardError(f"cannot write video {self.path}")

    def write(self, canvas: np.ndarray) -> None:
        self._writer.write(canvas)

    def close(self, keep: bool = True) -> None:
        self._writer.release()
        if keep:
            os.chmod(self._tmp, ARTIFACT_MODE)
            os.replace(self._tmp, self.path)
            log.info("board: wrote %s", self.path)
        else:
            self._tmp.unlink(missing_ok=True)


class WindowSink:
    """A desktop window (needs an OpenCV built with GUI support); keys are read while drawing."""

    def __init__(self, title: str = "few-shot demo"):
        self.title = title
        self.last_key = -1
        try:
            cv2.namedWindow(title)
        except cv2.error:
            raise BoardError("this OpenCV has no window support (opencv-python-headless); "
                             "use --display file or install opencv-python") from None

    def write(self, canvas: np.ndarray) -> None:
        cv2.imshow(self.title, canvas)
        self.last_key = cv2.waitKey(1)

    def close(self, keep: bool = True) -> None:
        cv2.destroyWindow(self.title)


def _instance(overlay, path: str):
    """The overlay's instance at a hierarchy path (`video/hdmi_out` -> `overlay.video.hdmi_out`), or None."""
    node = overlay
    for part in path.split("/"):
        node = getattr(node, part, None)
        if node is None:
            return None
    return node


class HdmiSink:
    """PYNQ HDMI out (the overlay's `instances.hdmi_out`, `video/hdmi_out` by default), 800x600
    BGR, the 800x480 screen on top."""

    def __init__(self, overlay, instances: Instances = Instances()):
        from pynq.lib.video import PIXEL_BGR, VideoMode

        self._out = _instance(overlay, instances.hdmi_out)
        if self._out is None:
            raise BoardError(f"the bitstream has no {instances.hdmi_out} (HDMI output)")
        if getattr(self._out, "_vdma", None) is None:
            # Output-only video hierarchy: PYNQ's HDMIWrapper does not bind, so VideoOut was built
            # without its VDMA and configure() would fail on None (PYNQ v3.0.1's video driver): hand it over.
            vdma = getattr(_instance(overlay, instances.video), "axi_vdma", None)
            if vdma is None:
                raise BoardError(f"the bitstream has no {instances.video}/axi_vdma feeding the HDMI output")
            self._out._vdma = vdma
        self._out.configure(VideoMode(800, 600, 24), PIXEL_BGR)
        self._out.start()

    def write(self, canvas: np.ndarray) -> None:
        frame = self._out.newframe()       # a fresh frame each time: never write a frame being shown
        frame[:canvas.shape[0], :canvas.shape[1]] = canvas
        frame[canvas.shape[0]:] = 0
        self._out.writeframe(frame)

    def close(self, keep: bool = True) -> None:
        self._out.close()
