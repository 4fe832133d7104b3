"""NCM with ME features against train/fewshot.py (the training side's NCM, an independent reference in
torch); editing and persistence of taught classes."""

import numpy as np
import pytest
import torch

from board.errors import ClassStoreError
from board.fewshot import UNKNOWN, FewShotClassifier, NcmConfig, me_normalize
from train.fewshot import me_process, ncm_accuracy, sample_episodes


def test_ncm_matches_train_reference():
    """Distances and scores against train/fewshot.py's ME (`me_process`): prototype = mean of the
    ME'd shots, L2 distance, softmax(-T d)."""
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
    base_t = torch.as_tensor(base)
    protos = torch.stack([me_process(torch.as_tensor(s), base_t).mean(0) for s in shots])
    for _ in range(5):
        query = rng.normal(loc=2, size=dim).astype(np.float32)
        pred = clf.predict(query)
        d = torch.cdist(me_process(torch.as_tensor(query)[None], base_t), protos)[0]
        np.testing.assert_allclose(pred.distances, d.numpy(), rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(pred.scores, torch.softmax(-10.0 * d, dim=0).numpy(), rtol=1e-4, atol=1e-6)


def test_ncm_decides_as_train_fewshot_on_the_same_episodes():
    """Per-episode accuracy of the board's classifier equals train/fewshot.py's `ncm_accuracy` on
    `me_process`'d features of the same seeded episodes (one frame per shot)."""
    rng = np.random.default_rng(3)
    dim, classes, per_class, shots = 24, 10, 12, 3
    labels = np.repeat(np.arange(classes), per_class)
    feats = (0.45 * rng.normal(size=(classes, dim))[labels] + rng.normal(size=(len(labels), dim))).astype(np.float32)
    base = (feats.mean(0) + 0.1 * rng.normal(size=dim)).astype(np.float32)
    episodes = sample_episodes(torch.as_tensor(labels), 5, shots + 4, 40, torch.Generator().manual_seed(0))
    reference = ncm_accuracy(me_process(torch.as_tensor(feats), torch.as_tensor(base)), episodes, shots).numpy()
    ours = []
    for episode in episodes.numpy():
        clf = FewShotClassifier(dim, base, NcmConfig(smoothing=0.0))
        for k, members in enumerate(episode):
            clf.add_class()
            for i in members[:shots]:
                clf.add_shot(k, feats[i][None])
        ours.append(np.mean([clf.predict(feats[i]).label == k for k, members in enumerate(episode)
                             for i in members[shots:]]))
    np.testing.assert_allclose(ours, reference, atol=1e-6)
    assert 0.3 < reference.mean() < 0.95 and reference.std() > 0   # neither trivial nor hopeless: it can disagree


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
