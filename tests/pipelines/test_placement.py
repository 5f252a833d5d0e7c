"""Garment placement by class on pose keypoints."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.placement import place_garment
from pipelines.poses import load_pose_library
from tests.pipelines.golden_scenes import synthetic_tee

CANVAS = (512, 768)
R_SHOULDER, L_SHOULDER, R_HIP, L_HIP, R_KNEE, L_KNEE, R_ANKLE, L_ANKLE = 2, 5, 8, 11, 9, 12, 10, 13


def _keypoints(pose: str = "front") -> np.ndarray:
    return load_pose_library()[pose].keypoints_px(*CANVAS)


def _rect_cutout(
    width: int, height: int, margin: int = 10, colour: tuple[int, int, int] = (200, 40, 40)
) -> np.ndarray:
    """A solid rectangle garment with transparent margins (and junk colour under the transparent part)."""
    cutout = np.zeros((height + 2 * margin, width + 2 * margin, 4), np.uint8)
    cutout[..., :3] = (0, 255, 0)  # must never bleed into the placed edge
    cutout[margin:-margin, margin:-margin] = (*colour, 255)
    return cutout


def _bbox(alpha: np.ndarray) -> tuple[int, int, int, int]:
    rows, cols = np.flatnonzero(alpha.any(axis=1)), np.flatnonzero(alpha.any(axis=0))
    return int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1


def test_upper_body_spans_shoulders_to_hips_with_sleeve_room() -> None:
    keypoints = _keypoints()
    placement = place_garment(synthetic_tee(), "upper_body", keypoints, CANVAS)
    assert placement.placed_rgba.shape == (768, 512, 4) and placement.placed_rgba.dtype == np.uint8
    x0, y0, x1, y1 = _bbox(placement.placed_rgba[..., 3])
    shoulder_width = keypoints[L_SHOULDER, 0] - keypoints[R_SHOULDER, 0]
    assert 1.5 <= (x1 - x0) / shoulder_width <= 1.85
    assert abs((x0 + x1) / 2 - keypoints[1, 0]) < 3  # centred on the body
    assert y0 <= keypoints[R_SHOULDER, 1] <= y0 + 0.15 * (y1 - y0)  # top at the shoulder line
    assert abs(placement.angle_deg) < 1 and placement.flags == ()


def test_lower_body_long_reaches_ankles_and_short_stops_near_knees() -> None:
    keypoints = _keypoints()
    trousers = place_garment(_rect_cutout(120, 330), "lower_body", keypoints, CANVAS)
    shorts = place_garment(_rect_cutout(150, 140), "lower_body", keypoints, CANVAS)
    assert (trousers.length, shorts.length) == ("long", "short")
    _, top, _, bottom = _bbox(trousers.placed_rgba[..., 3])
    assert top < keypoints[R_HIP, 1] and abs(bottom - keypoints[R_ANKLE, 1]) < 6
    _, top, _, bottom = _bbox(shorts.placed_rgba[..., 3])
    assert top < keypoints[R_HIP, 1] < bottom < keypoints[R_KNEE, 1] + 2


def test_full_body_dress_by_aspect() -> None:
    keypoints = _keypoints()
    knee = place_garment(_rect_cutout(200, 320), "full_body", keypoints, CANVAS)
    maxi = place_garment(_rect_cutout(150, 420), "full_body", keypoints, CANVAS)
    assert (knee.length, maxi.length) == ("short", "long")
    assert abs(_bbox(knee.placed_rgba[..., 3])[3] - keypoints[R_KNEE, 1]) < 6
    assert abs(_bbox(maxi.placed_rgba[..., 3])[3] - keypoints[R_ANKLE, 1]) < 6


def test_uniform_scale_keeps_aspect_and_matrix_maps_the_cutout() -> None:
    cutout = _rect_cutout(100, 300, margin=20)
    placement = place_garment(cutout, "lower_body", _keypoints(), CANVAS)
    x0, y0, x1, y1 = _bbox(placement.placed_rgba[..., 3] >= 128)
    assert abs((y1 - y0) / (x1 - x0) - 3.0) < 0.1
    corner = placement.matrix @ np.array([20.0, 20.0, 1.0])  # the garment's top-left corner in the cutout
    assert np.abs(corner - (x0, y0)).max() < 2.5
    np.testing.assert_allclose(abs(np.linalg.det(placement.matrix[:, :2])), placement.scale**2, rtol=1e-6)


def test_edges_carry_no_colour_from_transparent_pixels() -> None:
    placement = place_garment(_rect_cutout(60, 200), "lower_body", _keypoints(), CANVAS)
    visible = placement.placed_rgba[..., 3] > 0
    assert placement.scale > 1  # enlarged: Lanczos over premultiplied pixels
    green = placement.placed_rgba[..., 1].astype(int) - placement.placed_rgba[..., 0].astype(int)
    assert (green[visible] < 20).all()  # no green fringe from the transparent margin
    assert (placement.placed_rgba[~visible, :3] == 0).all()


def test_turned_pose_rotates_with_the_torso() -> None:
    keypoints = _keypoints()
    keypoints[[1, 2, 5], 0] += 40  # shoulders shifted right: the torso leans
    placement = place_garment(synthetic_tee(), "upper_body", keypoints, CANVAS)
    assert placement.angle_deg > 3


def test_clipping_and_upscaling_are_flagged() -> None:
    keypoints = _keypoints()
    keypoints[:, 0] += 230  # the body is pushed off the right edge
    placement = place_garment(_rect_cutout(20, 60), "lower_body", keypoints, CANVAS)
    assert set(placement.flags) == {"garment_clipped_by_canvas", "garment_upscaled"}


@pytest.mark.parametrize(
    ("cutout", "garment_class", "hidden", "message"),
    [
        (np.zeros((10, 10, 4), np.uint8), "upper_body", (), "fully transparent"),
        (np.zeros((10, 10, 3), np.uint8), "upper_body", (), r"RGBA \(H, W, 4\)"),
        (None, "hats", (), "unknown garment class 'hats'"),
        (None, "upper_body", (L_SHOULDER,), "lacks l_shoulder"),
        (None, "lower_body", (R_KNEE, L_KNEE), "lacks r_knee, l_knee"),
    ],
)
def test_bad_inputs_get_teaching_errors(
    cutout, garment_class: str, hidden: tuple[int, ...], message: str
) -> None:
    keypoints = _keypoints()
    keypoints[list(hidden), 2] = 0
    with pytest.raises(ValueError, match=message):
        place_garment(_rect_cutout(50, 50) if cutout is None else cutout, garment_class, keypoints, CANVAS)


@settings(max_examples=30, deadline=None)
@given(
    st.integers(8, 300),
    st.integers(8, 300),
    st.sampled_from(["upper_body", "lower_body", "full_body"]),
    st.sampled_from(["front", "three_quarter_left", "walking", "contrapposto", "back"]),
    st.integers(0, 2**31 - 1),
)
def test_never_mutates_and_alpha_stays_within_the_garment(
    width: int, height: int, garment_class: str, pose: str, seed: int
) -> None:
    rng = np.random.default_rng(seed)
    cutout = rng.integers(0, 256, (height, width, 4), dtype=np.uint8)
    cutout[..., 3] = np.where(rng.random((height, width)) < 0.7, 255, 0)
    cutout[height // 2, width // 2, 3] = 255
    keypoints = _keypoints(pose)
    before, keypoints_before = cutout.copy(), keypoints.copy()
    placement = place_garment(cutout, garment_class, keypoints, (256, 384))
    np.testing.assert_array_equal(cutout, before)
    np.testing.assert_array_equal(keypoints, keypoints_before)
    assert placement.placed_rgba.shape == (384, 256, 4) and placement.placed_rgba.dtype == np.uint8
    assert placement.matrix.shape == (2, 3)
    colour_max = placement.placed_rgba[..., :3].max(axis=2)
    assert (colour_max[placement.placed_rgba[..., 3] == 0] == 0).all()
