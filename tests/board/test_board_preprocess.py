"""Camera frame -> model input against a torch reference (crop, BGR->RGB, normalisation)."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from contracts import ContractError
from board.preprocess import Preprocessing, Preprocessor

PREP = Preprocessing(image_size=32, resize=36, mean=(0.485, 0.456, 0.406), std=(0.229, 0.224, 0.225))


def torch_reference(frame_bgr: np.ndarray, prep: Preprocessing, factor: int) -> np.ndarray:
    """Area downscale by an integer factor (= average pooling, rounded), centre crop, RGB, (x/255-m)/s."""
    x = torch.tensor(frame_bgr[:, :, ::-1].copy(), dtype=torch.float64).permute(2, 0, 1)[None]
    if factor > 1:
        x = torch.floor(F.avg_pool2d(x, factor) + 0.5)      # OpenCV resizes uint8 to uint8, rounding
    _, _, h, w = x.shape
    top, left = (h - prep.image_size) // 2, (w - prep.image_size) // 2
    x = x[:, :, top:top + prep.image_size, left:left + prep.image_size] / 255.0
    mean = torch.tensor(prep.mean, dtype=torch.float64).view(1, 3, 1, 1)
    std = torch.tensor(prep.std, dtype=torch.float64).view(1, 3, 1, 1)
    return ((x - mean) / std).numpy()


@pytest.mark.parametrize("factor", [1, 2, 4])
def test_matches_torch_reference_on_4_3_frames(factor):
    rng = np.random.default_rng(factor)
    frame = rng.integers(0, 256, size=(36 * factor, 48 * factor, 3), dtype=np.uint8)
    ours = Preprocessor(PREP)(frame)
    assert ours.shape == (1, 3, 32, 32) and ours.dtype == np.float32
    ref = torch_reference(frame, PREP, factor)
    # OpenCV resamples uint8 to uint8: its rounding may differ from floor(x + 0.5) by one grey level
    one_level = 1.0 / 255 / min(PREP.std) + 1e-5
    np.testing.assert_allclose(ours, ref, atol=one_level if factor > 1 else 2e-5)
    assert np.mean(np.abs(ours - ref)) < 0.1 * one_level


def test_pure_colours_land_in_the_right_channel():
    frame = np.zeros((36, 36, 3), np.uint8)
    frame[..., 2] = 255                                   # pure red in BGR
    x = Preprocessor(PREP)(frame)[0]
    np.testing.assert_allclose(x[0], (1 - 0.485) / 0.229, rtol=1e-5)      # R channel first
    np.testing.assert_allclose(x[2], (0 - 0.406) / 0.225, rtol=1e-5)


@pytest.mark.parametrize("record", [
    {"image_size": 32, "mean": [0.5] * 3},                                             # no std
    {"image_size": 32, "resize": 28, "mean": [0.5] * 3, "std": [0.2] * 3},             # resize below the crop
    {"image_size": 32, "mean": [0.5] * 2, "std": [0.2] * 3},                           # two channels
    {"image_size": 32, "mean": [0.5] * 3, "std": [0.2] * 3, "channel_order": "GRB"},
])
def test_bad_preprocessing_is_refused(record):
    with pytest.raises(ContractError, match="preprocessing"):
        Preprocessing.from_dict(record)


def test_the_board_reads_the_schema_train_writes():
    """One schema: what train's checkpoint records is what the board's Preprocessor reads."""
    from train.checkpoint import Preprocessing as TrainPreprocessing

    assert TrainPreprocessing is Preprocessing
    assert Preprocessing.from_dict({"image_size": 32, "mean": [0.5] * 3, "std": [0.2] * 3}).resize == 32
