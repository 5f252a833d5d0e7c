"""composite_garment: the garment core is the source pixels bit for bit; the rest blends by keep_mask."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.compositing import composite_garment
from pipelines.masks import build_masks


@settings(max_examples=60, deadline=None)
@given(
    st.integers(2, 64), st.integers(2, 64), st.integers(0, 2**31 - 1), st.integers(0, 4), st.integers(0, 4)
)
def test_core_is_exact_and_outside_is_generated(
    height: int, width: int, seed: int, erode: int, feather: int
) -> None:
    rng = np.random.default_rng(seed)
    generated = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    placed = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    placed[..., 3] = np.where(rng.random((height, width)) < 0.6, 255, rng.integers(0, 256, (height, width)))
    keep = build_masks(placed[..., 3], erode_px=erode, feather_px=feather).keep_mask
    before = (generated.copy(), placed.copy(), keep.copy())
    out = composite_garment(generated, placed, keep)
    for array, original in zip((generated, placed, keep), before, strict=True):
        np.testing.assert_array_equal(array, original)  # inputs never mutated
    assert out.shape == generated.shape and out.dtype == np.uint8
    core = keep == 1.0
    np.testing.assert_array_equal(out[core], placed[..., :3][core])
    np.testing.assert_array_equal(out[keep == 0.0], generated[keep == 0.0])
    band = (keep > 0) & (keep < 1)
    expected = keep[band, None] * placed[..., :3][band] + (1 - keep[band, None]) * generated[band]
    assert (np.abs(out[band].astype(float) - expected) <= 0.5 + 1e-4).all()


def test_exactness_survives_float_rounding_edge_cases() -> None:
    generated = np.full((1, 3, 3), 255, np.uint8)
    placed = np.array([[[1, 2, 3, 255], [254, 0, 127, 255], [9, 9, 9, 0]]], np.uint8)
    keep = np.array([[1.0, 1.0, 0.0]], np.float32)
    out = composite_garment(generated, placed, keep)
    np.testing.assert_array_equal(out[0, :2], placed[0, :2, :3])
    np.testing.assert_array_equal(out[0, 2], (255, 255, 255))


@pytest.mark.parametrize(
    ("generated", "placed", "keep", "message"),
    [
        (
            np.zeros((4, 4, 4), np.uint8),
            np.zeros((4, 4, 4), np.uint8),
            np.zeros((4, 4), np.float32),
            "generated",
        ),
        (
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((4, 4), np.float32),
            "placed_rgba",
        ),
        (
            np.zeros((4, 4, 3), np.uint8),
            np.zeros((4, 5, 4), np.uint8),
            np.zeros((4, 4), np.float32),
            "canvas size",
        ),
    ],
)
def test_bad_inputs(generated: np.ndarray, placed: np.ndarray, keep: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        composite_garment(generated, placed, keep)
