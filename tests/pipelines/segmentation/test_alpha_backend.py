"""The 'alpha' backend uses a supplier's cut-out PNG alpha as is."""

from __future__ import annotations

import numpy as np
import pytest

from pipelines.segmentation import get_segmenter


def test_alpha_channel_is_used_as_is() -> None:
    rgba = np.zeros((100, 80, 4), np.uint8)
    rgba[..., :3] = 120
    rgba[20:80, 20:60, 3] = 255
    rgba[19, 20:60, 3] = 100  # soft edge stays soft in the cutout, outside the hard mask
    before = rgba.copy()
    result = get_segmenter("alpha")(rgba)
    np.testing.assert_array_equal(result.cutout, rgba)
    np.testing.assert_array_equal(rgba, before)
    assert result.bbox == (20, 20, 60, 80)
    assert set(np.unique(result.mask)) == {0, 255}


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((10, 10, 3), np.uint8), "transparency"),
        (np.full((10, 10, 4), 255, np.uint8), "fully opaque"),
    ],
)
def test_images_without_a_cutout_are_refused_clearly(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        get_segmenter("alpha")(image)
