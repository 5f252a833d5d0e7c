"""Pose library files, keypoint scaling and the OpenPose control image (golden)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.image_io import load_image
from pipelines.poses import LIMB_PAIRS, OPENPOSE_COLORS, load_pose_library, render_openpose
from tests.pipelines.golden_scenes import CANVAS, openpose_front

GOLDEN = Path(__file__).parent / "golden"
NECK, R_HIP, L_HIP, R_ANKLE, L_ANKLE, NOSE = 1, 8, 11, 10, 13, 0


def test_library_has_the_required_poses_and_sane_figures() -> None:
    library = load_pose_library()
    assert {"front", "three_quarter_left", "three_quarter_right", "walking", "hands_on_hips", "back"} <= set(
        library
    )
    assert len(library) >= 8
    for pose in library.values():
        points = pose.keypoints
        assert points.shape == (18, 3) and pose.suits and pose.description
        visible = points[:, 2] > 0
        assert ((points[visible, :2] >= 0) & (points[visible, :2] <= 1)).all()
        # Standing full-body figure: head near the top, ankles near the bottom, neck above hips above ankles.
        assert points[NECK, 1] < points[R_HIP, 1] < points[R_ANKLE, 1]
        assert points[visible, 1].min() < 0.12 and points[[R_ANKLE, L_ANKLE], 1].min() > 0.85
    assert library["back"].keypoints[NOSE, 2] == 0  # the face is hidden from behind
    assert "upper_body" not in library["arms_crossed"].suits


def test_three_quarter_poses_mirror_each_other() -> None:
    library = load_pose_library()
    left, right = library["three_quarter_left"].keypoints, library["three_quarter_right"].keypoints
    swap = [0, 1, 5, 6, 7, 2, 3, 4, 11, 12, 13, 8, 9, 10, 15, 14, 17, 16]
    mirrored = right[swap].copy()
    mirrored[:, 0] = np.where(mirrored[:, 2] > 0, 1.0 - mirrored[:, 0], 0.0)
    np.testing.assert_allclose(mirrored, left, atol=2e-3)


def test_keypoints_px_scales_and_leaves_pose_untouched() -> None:
    pose = load_pose_library()["front"]
    before = pose.keypoints.copy()
    pixels = pose.keypoints_px(512, 768)
    assert pixels.dtype == np.float32
    np.testing.assert_allclose(pixels[:, 0], before[:, 0] * 512, rtol=1e-6)
    np.testing.assert_allclose(pixels[:, 1], before[:, 1] * 768, rtol=1e-6)
    np.testing.assert_array_equal(pixels[:, 2], before[:, 2])
    np.testing.assert_array_equal(pose.keypoints, before)
    with pytest.raises(ValueError, match="positive"):
        pose.keypoints_px(0, 768)


def _write_pose(folder: Path, name: str, **changes: object) -> Path:
    document = json.loads((Path("configs/poses/front.json")).read_text())
    document["name"] = name
    document.update(changes)
    path = folder / f"{name}.json"
    path.write_text(json.dumps(document))
    return path


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"keypoints": [[0.5, 0.5, 1.0]] * 17}, "18 .x, y, confidence. triples"),
        ({"suits": ["tops"]}, "'suits' must be"),
        ({"keypoints": [[1.5, 0.5, 1.0]] + [[0.5, 0.5, 1.0]] * 17}, "normalised to 0..1"),
        ({"keypoints": [[0.5, 0.5, 2.0]] + [[0.5, 0.5, 1.0]] * 17}, "confidence must be 0..1"),
    ],
)
def test_bad_pose_files_get_teaching_errors(tmp_path: Path, changes: dict, message: str) -> None:
    _write_pose(tmp_path, "odd", **changes)
    with pytest.raises(ValueError, match=message) as caught:
        load_pose_library(tmp_path)
    assert "odd.json" in str(caught.value)


def test_pose_folder_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="does not exist"):
        load_pose_library(tmp_path / "missing")
    with pytest.raises(ValueError, match="no .json pose files"):
        load_pose_library(tmp_path)
    (tmp_path / "broken.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        load_pose_library(tmp_path)
    (tmp_path / "broken.json").unlink()
    _write_pose(tmp_path, "front").rename(tmp_path / "renamed.json")
    with pytest.raises(ValueError, match="make them match"):
        load_pose_library(tmp_path)


def test_render_openpose_matches_golden() -> None:
    golden = load_image(GOLDEN / "openpose_front.png")
    rendered = openpose_front()
    assert rendered.shape == golden.shape == (CANVAS[1], CANVAS[0], 3)
    difference = np.abs(rendered.astype(int) - golden.astype(int))
    assert (difference > 8).mean() < 0.002, (
        "control image drifted; rerun tests/pipelines/golden/make_golden.py if intended"
    )


def test_render_openpose_uses_the_openpose_palette() -> None:
    pose = load_pose_library()["front"]
    image = render_openpose(pose.keypoints_px(512, 768), 512, 768)
    x, y = pose.keypoints_px(512, 768)[NECK, :2]
    assert tuple(image[round(y), round(x)]) == OPENPOSE_COLORS[NECK]  # joints at full colour
    (a, b) = LIMB_PAIRS[7]  # right hip -> right knee, dimmed to 60 %
    middle = (pose.keypoints_px(512, 768)[a, :2] + pose.keypoints_px(512, 768)[b, :2]) / 2
    assert tuple(image[round(middle[1]), round(middle[0])]) == tuple(int(c * 0.6) for c in OPENPOSE_COLORS[7])


def test_absent_keypoints_draw_nothing_and_limbs_touching_them_are_skipped() -> None:
    keypoints = np.zeros((18, 3), np.float32)
    assert not render_openpose(keypoints, 64, 96).any()
    keypoints[NECK] = (32, 20, 1)
    keypoints[R_HIP] = (28, 60, 0)  # hidden: the neck-hip limb must not appear
    image = render_openpose(keypoints, 64, 96)
    assert image[20, 32].any() and not image[40:, :].any()


@settings(max_examples=25, deadline=None)
@given(st.integers(32, 400), st.integers(32, 400), st.integers(0, 2**31 - 1))
def test_render_openpose_shape_dtype_and_input_untouched(width: int, height: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    keypoints = np.column_stack(
        [rng.uniform(-10, width + 10, 18), rng.uniform(-10, height + 10, 18), rng.integers(0, 2, 18)]
    ).astype(np.float32)
    before = keypoints.copy()
    image = render_openpose(keypoints, width, height)
    assert image.shape == (height, width, 3) and image.dtype == np.uint8
    np.testing.assert_array_equal(keypoints, before)


def test_render_openpose_rejects_bad_shapes() -> None:
    with pytest.raises(ValueError, match=r"\(18, 3\)"):
        render_openpose(np.zeros((17, 3)), 64, 64)
    with pytest.raises(ValueError, match="positive"):
        render_openpose(np.zeros((18, 3)), 0, 64)
