"""NCM with ME features against a torch reference; editing and persistence of taught classes."""

import numpy as np
import pytest
import torch

from board.errors import ClassStoreError
from board.fewshot import UNKNOWN, FewShotClassifier, NcmConfig, me_normalize


def torch_ncm(shots: list, query: np.ndarray, base_mean: np.ndarray, temperature: float) -> np.ndarray:
    """EASY's inductive NCM: ME each shot, class mean, L2 distance, softmax(-T d)."""
    base = torch.tensor(base_mean, dtype=torch.float64)

    def me(x):
        x = torch.tensor(np.asarray(x), dtype=torch.float64) - base
        return x / x.norm(dim=-1, keepdim=True)

    protos = torch.stack([me(s).mean(0) for s in shots])
    d = torch.cdist(me(query)[None], protos)[0]
    return torch.softmax(-temperature * d, dim=0).numpy()


def test_ncm_matches_torch_reference():
    rng = np.random.default_rng(0)
    dim, base = 40, rng.normal(size=40).astype(np.float32)
    clf = FewShotClassifier(dim, base, NcmConfig(temperature=10.0, smoothing=0.0))
    shots = []
    for k in range(4):
        clf.add_class()
        class_shots = []
        for _ in range(3):
            frames = rng.normal(loc=k, size=(5, dim)).astype(np.float32)
            clf.add_shot(k, frames)
            class_shots.append(frames.mean(0))
        shots.append(np.stack(class_shots))
    for _ in range(5):
        query = rng.normal(loc=2, size=dim).astype(np.float32)
        pred = clf.predict(query)
        ref = torch_ncm(shots, query, base, 10.0)
        np.testing.assert_allclose(pred.scores, ref, rtol=1e-4, atol=1e-6)
        assert pred.label == int(np.argmax(ref))


def test_smoothing_is_an_exponential_moving_average():
    clf = FewShotClassifier(2, None, NcmConfig(temperature=1.0, smoothing=0.5))
    for k, v in enumerate(([1, 0], [0, 1])):
        clf.add_class()
        clf.add_shot(k, np.array([v], dtype=np.float32))
    a = clf.predict(np.array([1, 0], dtype=np.float32)).scores
    b = clf.predict(np.array([0, 1], dtype=np.float32)).scores
    np.testing.assert_allclose(b, 0.5 * a + 0.5 * a[::-1], rtol=1e-6)


def test_unknown_when_nearest_mean_too_far():
    clf = FewShotClassifier(3, None, NcmConfig(smoothing=0.0, unknown_distance=0.5))
    clf.add_class()
    clf.add_shot(0, np.array([[1, 0, 0]], dtype=np.float32))
    assert clf.predict(np.array([1, 0.1, 0], dtype=np.float32)).label == 0
    assert clf.predict(np.array([0, 0, 1], dtype=np.float32)).label == UNKNOWN


def test_ten_classes_undo_delete_save_restore(tmp_path):
    rng = np.random.default_rng(1)
    clf = FewShotClassifier(8, np.zeros(8, np.float32), NcmConfig(max_classes=12))
    for k in range(10):
        clf.add_class(f"c{k}")
        clf.add_shot(k, rng.normal(size=(2, 8)), thumbnail=np.full((4, 4, 3), k, np.uint8))
    clf.add_shot(3, rng.normal(size=(2, 8)))
    assert clf.undo_shot() == 3 and len(clf.classes[3].shots) == 1
    clf.delete_class(0)
    assert [c.name for c in clf.classes][:2] == ["c1", "c2"]
    clf.save(tmp_path / "classes.npz", "model-a")
    other = FewShotClassifier(8, np.zeros(8, np.float32), NcmConfig())
    other.restore(tmp_path / "classes.npz", "model-a")
    assert [c.name for c in other.classes] == [c.name for c in clf.classes]
    np.testing.assert_array_equal(other.prototypes(), clf.prototypes())
    assert other.undo_shot() == 8          # history survives the round trip (c9 is now index 8)
    with pytest.raises(ClassStoreError, match="saved for model"):
        other.restore(tmp_path / "classes.npz", "model-b")


def test_me_normalize_unit_norm_and_empty_class_refused():
    x = me_normalize(np.array([[3.0, 4.0]]), np.array([0.0, 0.0]))
    np.testing.assert_allclose(x, [[0.6, 0.8]])
    clf = FewShotClassifier(2, None, NcmConfig(max_classes=1))
    clf.add_class("empty")
    with pytest.raises(ClassStoreError, match="empty"):
        clf.predict(np.ones(2))
    with pytest.raises(ClassStoreError, match="maximum"):
        clf.add_class()
