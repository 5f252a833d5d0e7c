"""The fit's scale: no regression against rigid placement (a sleeveless vest by its shoulder seams, not its
armholes), and the guard that places rigidly, with the reason, when the fitted scale is far from rigid's."""

from __future__ import annotations

import functools

import numpy as np
import pytest

from pipelines.fit import fit_garment, skeleton
from pipelines.fit.body import L_HIP, L_SHOULDER, R_HIP, R_SHOULDER
from pipelines.poses import load_pose_library
from pipelines.testing.flatlays import GARMENT_CLASS_OF_KIND, FlatlaySpec, make_flatlay

CANVAS = (256, 384)
POSES = load_pose_library()


@functools.lru_cache(maxsize=16)
def _cutout(kind: str, seed: int = 1, straps: bool = False) -> np.ndarray:
    rgb, mask = make_flatlay(
        FlatlaySpec(
            group="plain", kind=kind, width=360, height=480, seed=seed, straps=straps, noise_sigma=0.0
        )
    )
    cutout = np.dstack([rgb, mask])
    cutout.setflags(write=False)
    return cutout


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("pose", ["front", "back", "walking"])
def test_a_vest_covers_the_shoulders_and_reaches_the_hips(seed: int, pose: str) -> None:
    """A vest's shoulder seams end on the shoulders (not inside them, like a crop top) and its hem reaches
    down to the hips; scaled by its armholes (as wide as its body) it came out a size too small."""
    keypoints = POSES[pose].keypoints_px(*CANVAS)
    result = fit_garment(_cutout("vest", seed), "upper_body", keypoints, CANVAS)
    assert not result.fell_back, result.params.get("fallback_reason")
    garment = result.placed_rgba[..., 3] >= 128
    shoulders_y = (keypoints[R_SHOULDER, 1] + keypoints[L_SHOULDER, 1]) / 2.0
    hips_y = (keypoints[R_HIP, 1] + keypoints[L_HIP, 1]) / 2.0
    row = garment[round(shoulders_y + 0.03 * (hips_y - shoulders_y))]
    columns = np.flatnonzero(row)
    assert columns.min() <= keypoints[R_SHOULDER, 0] and columns.max() >= keypoints[L_SHOULDER, 0]
    hem_y = np.flatnonzero(garment.any(axis=1)).max()
    assert hem_y >= shoulders_y + 0.85 * (hips_y - shoulders_y)


def test_straps_still_scale_a_tank_by_its_armholes() -> None:
    """A tank's straps are no shoulder seams: its chest, not its straps, sets its size."""
    keypoints = POSES["front"].keypoints_px(*CANVAS)
    for straps in (True, False):
        cutout = _cutout("tank", 2, straps)
        alpha = cutout[..., 3]
        result = fit_garment(cutout, "upper_body", keypoints, CANVAS)
        points = {name: tuple(xy[:2]) for name, xy in result.params["landmarks"].items()}
        tilt = np.radians(0.0)
        share = skeleton.shoulder_seam_share(alpha, points, (-np.sin(tilt), np.cos(tilt)), 400.0)
        assert share < skeleton.MIN_SEAM_SHARE
        chest = result.params["landmarks"]["l_armpit"][0] - result.params["landmarks"]["r_armpit"][0]
        shoulders = keypoints[L_SHOULDER, 0] - keypoints[R_SHOULDER, 0]
        fitted_chest = chest * result.params["scale"]
        assert fitted_chest == pytest.approx(shoulders * skeleton.CHEST_PER_SHOULDER, rel=0.03)


@pytest.mark.parametrize(
    "kind",
    ["tee", "shirt", "tank", "vest", "dress", "trousers", "skirt", "cardigan", "halter", "one_shoulder"],
)
def test_every_kind_fits_within_the_sane_bound_of_rigid(kind: str) -> None:
    garment_class = GARMENT_CLASS_OF_KIND[kind]
    for pose in ("front", "walking"):
        result = fit_garment(_cutout(kind), garment_class, POSES[pose].keypoints_px(*CANVAS), CANVAS)
        assert not result.fell_back, result.params.get("fallback_reason")
        ratio = result.params["scale_vs_rigid"]
        assert 0.6 <= ratio <= 1.5, (kind, pose, ratio)


def test_a_scale_far_from_rigid_falls_back_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    """Landmarks that would make the garment a third of its rigid size are not trusted."""
    keypoints = POSES["front"].keypoints_px(*CANVAS)
    monkeypatch.setattr(skeleton, "CHEST_PER_SHOULDER", 0.3)
    result = fit_garment(_cutout("tee"), "upper_body", keypoints, CANVAS)
    assert result.fell_back and "fit_fallback" in result.flags
    assert result.params["fallback_reason"].startswith("scale: ")
    monkeypatch.setattr(skeleton, "CHEST_PER_SHOULDER", 1.0)
    assert not fit_garment(_cutout("tee"), "upper_body", keypoints, CANVAS).fell_back


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("kind", ["dress", "halter"])
def test_a_dress_hangs_no_lower_than_rigid_placement(kind: str, seed: int) -> None:
    """Fitted by its chest alone a dress came out a size larger and longer than the rigid placement's
    collar-to-knee reach (the polo dresses' hems between the calves); its length bounds its scale."""
    from pipelines.placement import place_garment

    keypoints = POSES["front"].keypoints_px(*CANVAS)
    cutout = _cutout(kind, seed, straps=kind == "halter")
    fitted = fit_garment(cutout, "full_body", keypoints, CANVAS)
    rigid = place_garment(cutout, "full_body", keypoints, CANVAS)
    assert not fitted.fell_back, fitted.params.get("fallback_reason")
    assert fitted.params["scale_vs_rigid"] <= 1.0

    def hem_row(rgba: np.ndarray) -> int:
        return int(np.flatnonzero((rgba[..., 3] >= 128).any(axis=1)).max())

    assert hem_row(fitted.placed_rgba) <= hem_row(rigid.placed_rgba) + 1
