"""The pipeline overlaps the backbone with drawing, keeps file frames in order, drops stale live ones."""

import threading

import numpy as np

from board.backends import Backend
from board.pipeline import Pipeline
from board.preprocess import Preprocessing, Preprocessor

PREP = Preprocessor(Preprocessing(image_size=8, resize=8, mean=(0, 0, 0), std=(1, 1, 1)))


class Frames:
    def __init__(self, n):
        self.n, self.i = n, 0

    def read(self):
        if self.i == self.n:
            return None
        self.i += 1
        return np.full((8, 8, 3), self.i - 1, np.uint8)

    def close(self):
        pass


class Recording(Backend):
    name, feature_dim = "recording", 1

    def __init__(self):
        self.started = {}

    def features(self, batch):
        index = int(round(batch[0, 0, 0, 0] * 255))
        self.started.setdefault(index, threading.Event()).set()
        return np.array([index], np.float32)


def test_backbone_runs_on_the_next_frame_while_this_one_is_drawn():
    backend = Recording()
    pipe = Pipeline(Frames(5), PREP, backend, live=False)
    seen = []
    for result in pipe:
        seen.append(int(result.features[0]))
        if result.index + 1 < 5:
            # "drawing" frame i does not finish until the backbone has started on frame i+1
            nxt = backend.started.setdefault(result.index + 1, threading.Event())
            assert nxt.wait(timeout=10), f"frame {result.index + 1} waited for frame {result.index} to be drawn"
    pipe.close()
    assert seen == [0, 1, 2, 3, 4]


def test_live_sources_drop_stale_frames():
    gate = threading.Event()

    class Slow(Recording):
        def features(self, batch):
            out = super().features(batch)
            if out[0] > 0:                  # the backbone is busy on frame 1 while 2..49 arrive
                gate.wait(timeout=10)
            return out

    pipe = Pipeline(Frames(50), PREP, Slow(), live=True)
    results = iter(pipe)
    first = next(results)
    threading.Timer(0.2, gate.set).start()
    rest = [r.index for r in results]
    pipe.close()
    assert first.index == 0 and len(rest) < 49 and rest[-1] == 49
