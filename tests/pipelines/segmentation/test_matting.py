"""Guided-filter alpha matting: only the edge band changes, inputs are never mutated."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.segmentation.matting import refine_alpha


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 1000), radius=st.integers(1, 6))
def test_core_and_far_background_stay(seed: int, radius: int) -> None:
    rng = np.random.default_rng(seed)
    image = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
    alpha = np.zeros((64, 64), np.uint8)
    alpha[16:48, 16:48] = 255
    before_image, before_alpha = image.copy(), alpha.copy()
    out = refine_alpha(image, alpha, radius=radius)
    np.testing.assert_array_equal(image, before_image)
    np.testing.assert_array_equal(alpha, before_alpha)
    assert out.dtype == np.uint8 and out.shape == alpha.shape
    far = np.ones_like(alpha, dtype=bool)
    far[16 - radius - 1 : 48 + radius + 1, 16 - radius - 1 : 48 + radius + 1] = False
    assert (out[far] == 0).all()
    assert (out[16 + radius + 1 : 48 - radius - 1, 16 + radius + 1 : 48 - radius - 1] == 255).all()


def test_bad_arguments() -> None:
    with pytest.raises(ValueError, match="matching the image"):
        refine_alpha(np.zeros((8, 8, 3), np.uint8), np.zeros((4, 4), np.uint8))
