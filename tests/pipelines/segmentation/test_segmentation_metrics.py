"""IoU and boundary F-score on masks with known answers."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.segmentation.metrics import boundary_f, iou


def square(offset: int = 0) -> np.ndarray:
    mask = np.zeros((100, 100), np.uint8)
    mask[20 + offset : 60 + offset, 20:60] = 255
    return mask


def test_identical_masks_score_one() -> None:
    assert iou(square(), square()) == 1.0
    assert boundary_f(square(), square()) == 1.0


def test_shifted_masks() -> None:
    assert iou(square(), square(10)) == pytest.approx(30 * 40 / (50 * 40))
    assert boundary_f(square(), square(1), tolerance_px=1.5) == 1.0
    assert boundary_f(square(), square(10), tolerance_px=1.5) < 0.6


def test_empty_masks() -> None:
    empty = np.zeros((100, 100), np.uint8)
    assert iou(empty, empty) == 1.0 and boundary_f(empty, empty) == 1.0
    assert iou(square(), empty) == 0.0 and boundary_f(square(), empty) == 0.0
    with pytest.raises(ValueError, match="same shape"):
        iou(square(), empty[:50])
