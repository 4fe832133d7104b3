"""The synthetic few-shot dataset: deterministic, disjoint splits, any resolution."""

import numpy as np

from train.synthetic import SyntheticConfig, class_names, render_split

SMALL = SyntheticConfig(base_classes=4, val_classes=2, novel_classes=3, base_images=3, base_test_images=2, val_images=2, novel_images=2)


def test_render_is_deterministic_and_shaped():
    a, la, names = render_split(SMALL, "novel", 24)
    b, lb, _ = render_split(SMALL, "novel", 24)
    assert a.shape == (6, 3, 24, 24) and a.dtype == np.uint8
    assert np.array_equal(a, b) and np.array_equal(la, lb)
    assert la.tolist() == [0, 0, 1, 1, 2, 2] and len(names) == 3


def test_splits_are_disjoint_and_base_test_differs():
    names = {s: render_split(SMALL, s, 16)[2] for s in ("base", "val", "novel")}
    assert len(set(sum(names.values(), []))) == SMALL.total_classes == len(class_names(SMALL))
    base, _, _ = render_split(SMALL, "base", 16)
    test, _, bt_names = render_split(SMALL, "base_test", 16)
    assert bt_names == names["base"] and not np.array_equal(base[:2], test[:2])


def test_any_resolution():
    assert render_split(SMALL, "val", 96)[0].shape == (4, 3, 96, 96)
