"""build_masks: binary garment mask, exact eroded core, feather band, complementary inpaint mask."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.masks import build_masks


@st.composite
def alphas(draw: st.DrawFn) -> np.ndarray:
    """A soft-edged blob alpha (anti-aliased edges like a real cutout), sometimes empty or full."""
    height, width = draw(st.integers(4, 80)), draw(st.integers(4, 80))
    rng = np.random.default_rng(draw(st.integers(0, 2**31 - 1)))
    kind = draw(st.sampled_from(["blob", "noise", "empty", "full"]))
    if kind == "empty":
        return np.zeros((height, width), np.uint8)
    if kind == "full":
        return np.full((height, width), 255, np.uint8)
    if kind == "noise":
        return rng.integers(0, 256, (height, width), dtype=np.uint8)
    alpha = np.zeros((height, width), np.uint8)
    centre = (int(rng.integers(0, width)), int(rng.integers(0, height)))
    axes = (int(rng.integers(1, width)), int(rng.integers(1, height)))
    cv2.ellipse(alpha, centre, axes, float(rng.uniform(0, 180)), 0, 360, 255, -1, cv2.LINE_AA)
    return alpha


@settings(max_examples=80, deadline=None)
@given(alphas(), st.integers(0, 5), st.integers(0, 5))
def test_mask_properties(alpha: np.ndarray, erode_px: int, feather_px: int) -> None:
    before = alpha.copy()
    masks = build_masks(alpha, erode_px=erode_px, feather_px=feather_px)
    np.testing.assert_array_equal(alpha, before)  # never mutated
    for mask in (masks.garment_mask, masks.inpaint_mask, masks.keep_mask):
        assert mask.shape == alpha.shape
    assert masks.garment_mask.dtype == np.uint8 and masks.inpaint_mask.dtype == np.uint8
    assert masks.keep_mask.dtype == np.float32
    assert set(np.unique(masks.garment_mask)) <= {0, 255}
    np.testing.assert_array_equal(masks.garment_mask == 255, alpha >= 128)
    assert masks.keep_mask.min() >= 0.0 and masks.keep_mask.max() <= 1.0
    # keep == 1 exactly on the eroded garment, and nowhere the cutout is transparent.
    garment = (alpha >= 128).astype(np.uint8)
    if erode_px:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        core = cv2.erode(garment, kernel, borderValue=0).astype(bool)
    else:
        core = garment.astype(bool)
    assert (masks.keep_mask[core] == 1.0).all()
    assert (masks.keep_mask[alpha == 0] == 0.0).all()
    assert (masks.keep_mask[~core] <= alpha[~core] / 255.0 + 1e-6).all()
    np.testing.assert_array_equal(masks.inpaint_mask, np.round(255 - masks.keep_mask * 255).astype(np.uint8))


def test_feather_band_is_soft_and_outside_the_core() -> None:
    alpha = np.zeros((40, 40), np.uint8)
    alpha[10:30, 10:30] = 255
    masks = build_masks(alpha, erode_px=2, feather_px=3)
    assert masks.keep_mask[20, 20] == 1.0 and masks.inpaint_mask[20, 20] == 0
    assert 0.0 < masks.keep_mask[20, 10] < 1.0  # the rim (eroded away) blends
    assert masks.keep_mask[20, 5] == 0.0 and masks.inpaint_mask[20, 5] == 255


@pytest.mark.parametrize(
    ("alpha", "kwargs", "message"),
    [
        (np.zeros((4, 4, 1), np.uint8), {}, "2-D"),
        (np.zeros((4, 4), np.float32), {}, "uint8"),
        (np.zeros((4, 4), np.uint8), {"erode_px": -1}, ">= 0"),
    ],
)
def test_bad_inputs(alpha: np.ndarray, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        build_masks(alpha, **kwargs)
