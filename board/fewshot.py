"""Few-shot classification in numpy: EASY's ME features, nearest class mean, smoothing, unknown.

ME: subtract the base-class mean shipped with the backbone, then L2-normalise (EASY 1.8). A shot
is the mean raw feature of the frames captured for it (augmented-sample style), then ME'd; a
class prototype is the mean of its ME'd shots (EASY does not re-normalise it). Scores are
softmax(-temperature * distance) smoothed by an exponential moving average across frames.
"""

from __future__ import annotations

import json
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from board.errors import ClassStoreError
from safeio import atomic_path

UNKNOWN = -1


@dataclass
class NcmConfig:
    """Constants of the classifier (PEFSL hard-coded them; here they are flags)."""

    temperature: float = 20.0
    smoothing: float = 0.7           # weight of the previous scores in the EMA (PEFSL: 0.85, a 4-frame lag)
    unknown_distance: float = 0.0    # > 0: answer "unknown" when the nearest mean is farther
    max_classes: int = 16


def me_normalize(features: np.ndarray, base_mean: np.ndarray | None) -> np.ndarray:
    """EASY's ME processing on the last axis: centre on the base mean, then unit L2 norm."""
    centred = features - base_mean if base_mean is not None else features
    norm = np.linalg.norm(centred, axis=-1, keepdims=True)
    return centred / np.maximum(norm, 1e-12)


@dataclass
class TaughtClass:
    name: str
    shots: list = field(default_factory=list)     # raw (D,) float32 features, one per shot
    thumbnail: np.ndarray | None = None           # small BGR picture of the first shot


@dataclass
class Prediction:
    label: int                 # class index, or UNKNOWN
    scores: np.ndarray         # smoothed probabilities, one per class
    distances: np.ndarray      # distance of the query to each class mean


class FewShotClassifier:
    """The taught classes and the nearest-class-mean decision over them."""

    def __init__(self, feature_dim: int, base_mean: np.ndarray | None, config: NcmConfig):
        if base_mean is not None and np.shape(base_mean) != (feature_dim,):
            raise ClassStoreError(f"base mean has shape {np.shape(base_mean)}, expected ({feature_dim},)")
        self.feature_dim = feature_dim
        self.base_mean = None if base_mean is None else np.asarray(base_mean, dtype=np.float32)
        self.config = config
        self.classes: list[TaughtClass] = []
        self._history: list[int] = []               # class index of each shot, for undo
        self._prototypes: np.ndarray | None = None
        self._smoothed: np.ndarray | None = None

    # ----- editing -----------------------------------------------------------------------------
    def add_class(self, name: str | None = None) -> int:
        if len(self.classes) >= self.config.max_classes:
            raise ClassStoreError(f"maximum number of classes ({self.config.max_classes}) reached")
        self.classes.append(TaughtClass(name or f"class {len(self.classes)}"))
        self._changed()
        return len(self.classes) - 1

    def add_shot(self, index: int, frame_features: np.ndarray, thumbnail: np.ndarray | None = None) -> None:
        """Add one shot to class `index` from the (F, D) features of its frames."""
        frame_features = np.asarray(frame_features, dtype=np.float32).reshape(-1, self.feature_dim)
        taught = self.classes[index]
        taught.shots.append(frame_features.mean(axis=0))
        if taught.thumbnail is None and thumbnail is not None:
            taught.thumbnail = thumbnail
        self._history.append(index)
        self._changed()

    def undo_shot(self) -> int | None:
        """Remove the most recent shot; returns its class index (None when there was none)."""
        while self._history:
            index = self._history.pop()
            if index < len(self.classes) and self.classes[index].shots:
                self.classes[index].shots.pop()
                self._changed()
                return index
        return None

    def delete_class(self, index: int) -> None:
        if not 0 <= index < len(self.classes):
            raise ClassStoreError(f"no class {index} to delete")
        del self.classes[index]
        self._history = [i - (i > index) for i in self._history if i != index]
        self._changed()

    def clear(self) -> None:
        self.classes.clear()
        self._history.clear()
        self._changed()

    def ready(self) -> bool:
        """True when at least one class has a shot and no class is empty."""
        return bool(self.classes) and all(c.shots for c in self.classes)

    def _changed(self) -> None:
        self._prototypes = None
        self._smoothed = None

    # ----- inference ---------------------------------------------------------------------------
    def prototypes(self) -> np.ndarray:
        if self._prototypes is None:
            if not self.ready():
                empty = [c.name for c in self.classes if not c.shots]
                raise ClassStoreError(f"no shots yet for {', '.join(empty) or 'any class'}")
            self._prototypes = np.stack(
                [me_normalize(np.stack(c.shots), self.base_mean).mean(axis=0) for c in self.classes])
        return self._prototypes

    def predict(self, features: np.ndarray) -> Prediction:
        """Classify one (D,) feature vector; scores are smoothed over successive calls."""
        query = me_normalize(np.asarray(features, dtype=np.float32).reshape(self.feature_dim), self.base_mean)
        distances = np.linalg.norm(self.prototypes() - query, axis=1)
        logits = -self.config.temperature * distances
        probs = np.exp(logits - logits.max())
        probs /= probs.sum()
        alpha = self.config.smoothing
        self._smoothed = probs if self._smoothed is None else alpha * self._smoothed + (1 - alpha) * probs
        label = int(np.argmax(self._smoothed))
        if self.config.unknown_distance > 0 and distances[label] > self.config.unknown_distance:
            label = UNKNOWN
        return Prediction(label, self._smoothed.copy(), distances)

    # ----- persistence -------------------------------------------------------------------------
    def save(self, path: str | Path, model_name: str) -> None:
        """Write the taught classes atomically (json header + arrays in one .npz)."""
        path = Path(path)
        header = {"model": model_name, "feature_dim": self.feature_dim,
                  "names": [c.name for c in self.classes], "history": self._history}
        arrays = {"header": np.frombuffer(json.dumps(header).encode(), dtype=np.uint8)}
        for i, c in enumerate(self.classes):
            arrays[f"shots_{i}"] = np.asarray(c.shots, dtype=np.float32).reshape(-1, self.feature_dim)
            if c.thumbnail is not None:
                arrays[f"thumb_{i}"] = c.thumbnail
        with atomic_path(path) as tmp, open(tmp, "wb") as f:   # 0644, stale temps of killed runs removed
            np.savez(f, **arrays)

    def restore(self, path: str | Path, model_name: str) -> None:
        """Replace the taught classes by those saved in `path` for the same model."""
        try:
            with np.load(path) as data:
                header = json.loads(bytes(data["header"]).decode())
                if header["model"] != model_name or header["feature_dim"] != self.feature_dim:
                    raise ClassStoreError(f"{path} was saved for model {header['model']!r}, not {model_name!r}")
                classes = [TaughtClass(name, list(data[f"shots_{i}"]),
                                       data[f"thumb_{i}"] if f"thumb_{i}" in data else None)
                           for i, name in enumerate(header["names"])]
        except (OSError, KeyError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise ClassStoreError(f"cannot restore taught classes from {path}: {exc}") from None
        self.classes = classes
        self._history = [int(i) for i in header["history"]]
        self._changed()
