"""Quality flags on crafted masks: each flag trips on its case and stays quiet on a clean packshot."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipelines.segmentation.quality import (
    FLAG_NAMES,
    assess_quality,
    mask_bbox,
    shrink_area,
    smooth_surface_fit,
)


def packshot(
    garment: tuple[int, int, int] = (30, 60, 160), background: int = 250
) -> tuple[np.ndarray, np.ndarray]:
    """A centred rectangle 'garment' on a flat background, and its mask."""
    image = np.full((200, 160, 3), background, np.uint8)
    mask = np.zeros((200, 160), np.uint8)
    mask[50:150, 40:120] = 255
    image[mask > 0] = garment
    return image, mask


def test_clean_packshot_has_no_flags() -> None:
    image, mask = packshot()
    flags, details = assess_quality(image, mask)
    assert flags == ()
    assert details["area_fraction"] == pytest.approx(0.25)


def test_garment_cut_off_at_the_border() -> None:
    image, mask = packshot()
    mask[:, 40:120] = 255
    image[mask > 0] = (30, 60, 160)
    assert "touches_border" in assess_quality(image, mask)[0]


def test_several_large_components() -> None:
    image, mask = packshot()
    mask[:] = 0
    mask[40:160, 10:70] = 255
    mask[40:160, 90:150] = 255
    image[:] = 250
    image[mask > 0] = (30, 60, 160)
    assert "multiple_components" in assess_quality(image, mask)[0]


def test_small_and_large_masks() -> None:
    image, mask = packshot()
    tiny = np.zeros_like(mask)
    tiny[95:100, 75:80] = 255
    assert "mask_too_small" in assess_quality(image, tiny)[0]
    huge = np.zeros_like(mask)
    huge[2:198, 2:158] = 255
    assert "mask_too_large" in assess_quality(image, huge)[0]


def test_low_contrast() -> None:
    image, mask = packshot(garment=(247, 247, 247), background=250)
    assert "low_contrast" in assess_quality(image, mask)[0]


def test_background_not_uniform() -> None:
    image, mask = packshot()
    rng = np.random.default_rng(0)
    clutter = rng.integers(0, 255, (20, 16, 3), dtype=np.uint8)
    clutter = cv2.resize(clutter, (160, 200), interpolation=cv2.INTER_NEAREST)
    image = np.where(mask[..., None] > 0, image, clutter)
    assert "background_not_uniform" in assess_quality(image, mask)[0]


def test_gradient_background_is_still_uniform() -> None:
    image, mask = packshot()
    ramp = np.linspace(200, 250, 200, dtype=np.float32)[:, None, None]
    image = np.where(mask[..., None] > 0, image, np.broadcast_to(ramp, image.shape).astype(np.uint8))
    assert "background_not_uniform" not in assess_quality(image, mask)[0]


def test_flags_use_only_known_names_and_inputs_are_untouched() -> None:
    image, mask = packshot()
    before, mask_before = image.copy(), mask.copy()
    flags, _ = assess_quality(image, np.zeros_like(mask))
    assert set(flags) <= set(FLAG_NAMES)
    np.testing.assert_array_equal(image, before)
    np.testing.assert_array_equal(mask, mask_before)


def test_bbox() -> None:
    _, mask = packshot()
    assert mask_bbox(mask) == (40, 50, 120, 150)
    assert mask_bbox(np.zeros_like(mask)) == (0, 0, 0, 0)


def test_mismatched_mask_is_a_clear_error() -> None:
    image, mask = packshot()
    with pytest.raises(ValueError, match="matching the image"):
        assess_quality(image, mask[:10])


def test_mask_that_lost_most_of_the_garment_is_flagged() -> None:
    # A white dress with a coloured band: a cutout keeping only the band is big enough by area but has lost
    # the rest of the garment (the band's outer contour spans the dress); it must never pass silently.
    image = np.full((300, 200, 3), 252, np.uint8)
    dress = np.zeros((300, 200), np.uint8)
    dress[30:270, 40:160] = 255
    image[dress > 0] = (222, 222, 218)
    band = np.zeros_like(dress)
    band[120:170, 40:160] = 255
    image[30:45, 40:160] = (200, 40, 60)  # a coloured collar too: the lost part lies between the two
    image[band > 0] = (40, 160, 90)
    flags, details = assess_quality(image, band)
    assert "mask_too_small" in flags
    assert details["garment_coverage"] < 0.8
    full_flags, full_details = assess_quality(image, dress)
    assert "mask_too_small" not in full_flags and full_details["garment_coverage"] > 0.95


def test_shrink_area_matches_a_direct_area_resize_and_says_what_it_covers() -> None:
    rng = np.random.default_rng(3)
    image = cv2.GaussianBlur(rng.integers(0, 256, (1335, 1001, 3), dtype=np.uint8), (0, 0), 6)
    small, covered = shrink_area(image, (384, 512))
    assert small.shape == (512, 384, 3) and covered == (1334, 1000)  # whole factor 2: one row, one column off
    direct = cv2.resize(image, (384, 512), interpolation=cv2.INTER_AREA)
    assert np.abs(small.astype(int) - direct.astype(int)).max() <= 3


def test_surface_fit_recovers_a_quadratic_through_outliers() -> None:
    h, w = 120, 90
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    u, v = xx / (w - 1) * 2 - 1, yy / (h - 1) * 2 - 1
    truth = np.stack([80 + 6 * u - 4 * v + 3 * u * v, 2 + u * u, -3 + v * v], axis=-1)
    ys, xs = np.nonzero(np.ones((h, w), bool))
    values = truth[ys, xs].copy()
    values[::7] += 40.0  # a garment reaching the samples
    surface, residual, inlier = smooth_surface_fit(values, ys, xs, (h, w))
    assert surface.shape == (h, w, 3) and surface.dtype == np.float32
    np.testing.assert_allclose(surface, truth, atol=1e-3)
    assert not inlier[::7].any() and inlier.mean() > 0.8
    assert residual.shape == values.shape
