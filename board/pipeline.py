"""Capture, preprocessing + backbone, and drawing overlapped in three threads.

    capture thread --frames--> inference thread --(frame, features)--> caller (NCM + drawing)

The accelerator therefore runs on frame i+1 while the caller draws frame i. Live sources drop
stale frames (the newest frame wins); files and generated videos are processed frame by frame so
scripted events and ground truth line up with frame numbers. A failure in a worker ends the
stream with a `Result` carrying the error instead of a hang.
"""

from __future__ import annotations

import queue
import threading
import time
from dataclasses import dataclass

import numpy as np

from board.backends import Backend
from board.errors import BoardError
from board.preprocess import Preprocessor

_END = object()


@dataclass
class Result:
    index: int
    frame: np.ndarray | None
    features: np.ndarray | None
    captured_at: float
    backbone_s: float = 0.0
    preprocess_s: float = 0.0
    error: str | None = None


class Pipeline:
    """Iterate over `Result`s; `close()` stops the threads (also on error or early exit)."""

    def __init__(self, source, preprocessor: Preprocessor, backend: Backend, live: bool, depth: int = 2):
        self._source, self._pre, self._backend, self._live = source, preprocessor, backend, live
        self._frames: queue.Queue = queue.Queue(maxsize=1 if live else depth)
        self._results: queue.Queue = queue.Queue(maxsize=depth)
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._capture, name="capture", daemon=True),
                         threading.Thread(target=self._infer, name="inference", daemon=True)]
        for t in self._threads:
            t.start()

    def _put(self, q: queue.Queue, item, drop_oldest: bool = False) -> bool:
        while not self._stop.is_set():
            try:
                q.put(item, timeout=0.05)
                return True
            except queue.Full:
                if drop_oldest:
                    try:
                        q.get_nowait()
                    except queue.Empty:
                        pass
        return False

    def _capture(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                frame = self._source.read()
                if frame is None:
                    break
                if not self._put(self._frames, Result(index, frame, None, time.perf_counter()), self._live):
                    return
                index += 1
        except BoardError as exc:
            self._put(self._frames, Result(index, None, None, time.perf_counter(), error=str(exc)))
        except Exception as exc:  # noqa: BLE001 - a dead worker must end the stream, not hang it
            self._put(self._frames, Result(index, None, None, time.perf_counter(),
                                           error=f"frame capture failed: {type(exc).__name__}: {exc}"))
        self._put(self._frames, _END)

    def _infer(self) -> None:
        while not self._stop.is_set():
            try:
                item = self._frames.get(timeout=0.05)
            except queue.Empty:
                continue
            if item is _END or item.error:
                self._put(self._results, item)
                if item is not _END:
                    self._put(self._results, _END)
                return
            try:
                t0 = time.perf_counter()
                batch = self._pre(item.frame)
                t1 = time.perf_counter()
                item.features = self._backend.features(batch)
                item.preprocess_s, item.backbone_s = t1 - t0, time.perf_counter() - t1
            except Exception as exc:  # noqa: BLE001 - report, never hang the display loop
                item.error = str(exc) if isinstance(exc, BoardError) else \
                    f"{self._backend.name} backend failed: {type(exc).__name__}: {exc}"
                self._put(self._results, item)
                self._put(self._results, _END)
                return
            self._put(self._results, item)

    def __iter__(self):
        while True:
            try:
                item = self._results.get(timeout=0.1)
            except queue.Empty:
                if not any(t.is_alive() for t in self._threads) and self._results.empty():
                    return
                continue
            if item is _END:
                return
            yield item

    def close(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=5)
