"""The skirt panel: skirts and dress hems follow the legs (narrowed toward them, swung onto their centre line),
inverted in closed form, within their own stretch bound, every pixel still resampled from the source."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import pipelines.fit.garment_fit as garment_fit
from pipelines.fit import fit_garment
from pipelines.fit.body import floating_share
from pipelines.fit.skeleton import MAX_FORESHORTEN
from pipelines.fit.skirt import MAX_HEM_TAPER, MAX_SKIRT_STRETCH, SkirtWarp
from pipelines.poses import load_pose_library
from pipelines.testing.flatlays import GARMENT_CLASS_OF_KIND, FlatlaySpec, make_flatlay

CANVAS = (256, 384)
POSES = load_pose_library()
R_KNEE, L_KNEE, R_HIP, L_HIP = 9, 12, 8, 11


def _cutout(kind: str, seed: int = 1, pattern: str = "logo") -> np.ndarray:
    spec = FlatlaySpec(
        group="plain", kind=kind, width=360, height=480, pattern=pattern, seed=seed, noise_sigma=0
    )
    rgb, mask = make_flatlay(spec)
    return np.dstack([rgb, mask])


def _fit(kind: str, pose: str, monkeypatch: pytest.MonkeyPatch | None = None, skirt: bool = True):
    if not skirt and monkeypatch is not None:
        monkeypatch.setattr(garment_fit, "skirt_warp", lambda *args, **kwargs: None)
    keypoints = POSES[pose].keypoints_px(*CANVAS)
    return fit_garment(_cutout(kind), GARMENT_CLASS_OF_KIND[kind], keypoints, CANVAS, measure=True)


@settings(max_examples=40, deadline=None)
@given(
    taper=st.floats(1.0 - MAX_HEM_TAPER, 1.0),
    shift=st.floats(-30.0, 30.0),
    flare=st.floats(0.0, 1.5),
    angle=st.floats(-0.3, 0.3),
    points=st.lists(st.tuples(st.floats(-200, 200), st.floats(-100, 300)), min_size=1, max_size=20),
)
def test_the_skirt_deformation_inverts_exactly(
    taper: float, shift: float, flare: float, angle: float, points: list[tuple[float, float]]
) -> None:
    warp = SkirtWarp((100.0, 50.0), (float(np.sin(-angle)), float(np.cos(angle))), 180.0, taper, shift, flare)
    source = np.array(points, dtype=np.float64)
    moved = warp.forward(source)
    back_x, back_y = warp.inverse(moved[:, 0].astype(np.float32), moved[:, 1].astype(np.float32))
    np.testing.assert_allclose(np.column_stack([back_x, back_y]), source, atol=0.05)
    # Heights (along the garment's down direction) never change: only the across coordinate moves.
    down = np.array(warp.down)
    np.testing.assert_allclose(moved @ down, source @ down, atol=1e-6)


@pytest.mark.parametrize("kind", ["dress", "skirt", "halter"])
def test_a_flared_hem_floats_less_and_stays_within_its_stretch_bound(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    garment_class = GARMENT_CLASS_OF_KIND[kind]
    poses = [name for name, pose in POSES.items() if garment_class in pose.suits and name != "side_left"]
    with_skirt = [_fit(kind, pose) for pose in poses]
    for result in with_skirt:
        assert not result.fell_back
        assert result.params["skirt"] is not None
        assert result.torso_stretch <= MAX_FORESHORTEN + 0.01  # the bodice above the hips is untouched
        assert result.skirt_stretch <= MAX_SKIRT_STRETCH + 0.02, result.skirt_stretch
    monkeypatch.setattr(garment_fit, "skirt_warp", lambda *args, **kwargs: None)
    without = [_fit(kind, pose) for pose in poses]
    floating_with = np.mean([floating_share(r.placed_rgba[..., 3], r.keypoints) for r in with_skirt])
    floating_without = np.mean([floating_share(r.placed_rgba[..., 3], r.keypoints) for r in without])
    assert floating_with < 0.8 * floating_without, (floating_with, floating_without)


def test_the_hem_swings_with_the_legs_when_walking() -> None:
    """In walking the knees' midpoint lies off the hips' one: the hem's centre moves with it."""
    result = _fit("dress", "walking")
    keypoints = result.keypoints
    hips = (keypoints[R_HIP, 0] + keypoints[L_HIP, 0]) / 2.0
    knees = (keypoints[R_KNEE, 0] + keypoints[L_KNEE, 0]) / 2.0
    assert abs(knees - hips) > 3.0  # the pose does ask for a swing
    skirt = result.params["skirt"]
    assert np.sign(skirt["shift"] * skirt["down"][1]) == np.sign(knees - hips)  # across is image right
    alpha = result.placed_rgba[..., 3] >= 128
    rows = np.flatnonzero(alpha.any(axis=1))
    hem_cols = np.flatnonzero(alpha[rows[-3]])
    front = _fit("dress", "front")
    front_alpha = front.placed_rgba[..., 3] >= 128
    front_cols = np.flatnonzero(front_alpha[np.flatnonzero(front_alpha.any(axis=1))[-3]])
    # The walking hem's centre sits toward the knees compared with the front pose's (same garment, same hips).
    assert (hem_cols.mean() - front_cols.mean()) * np.sign(knees - hips) > 1.0


def test_a_one_colour_skirt_keeps_exactly_its_colour() -> None:
    cutout = _cutout("dress", pattern="solid")
    cutout[..., :3] = (200, 40, 90)
    result = fit_garment(cutout, "full_body", POSES["walking"].keypoints_px(*CANVAS), CANVAS)
    assert result.params["skirt"] is not None and result.params["skirt"]["taper"] < 1.0
    opaque = result.placed_rgba[..., 3] >= 128
    colours = result.placed_rgba[opaque][:, :3].astype(int)
    assert np.abs(colours - np.array((200, 40, 90))).max() <= 1


def test_trousers_get_no_skirt_panel() -> None:
    assert _fit("trousers", "walking").params["skirt"] is None


@pytest.mark.parametrize("kind", ["tee", "tank", "shirt"])
def test_a_top_narrows_to_the_waist_within_the_torso_bound(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """hands_on_hips takes the arms off the garment's sides: below the armpits it follows the torso's sides,
    unshifted, and the torso panel's stretch (the waist included) stays within its 10 % bound."""
    result = _fit(kind, "hands_on_hips")
    skirt = result.params["skirt"]
    assert skirt is not None and skirt["shift"] == 0.0 and 0.9 <= skirt["taper"] < 1.0
    assert result.torso_stretch <= MAX_FORESHORTEN + 0.01
    keypoints = result.keypoints
    shoulders_y, hips_y = keypoints[[2, 5], 1].mean(), keypoints[[R_HIP, L_HIP], 1].mean()
    assert shoulders_y < skirt["origin"][1] < (shoulders_y + hips_y) / 2.0  # from the armpits down
    monkeypatch.setattr(garment_fit, "skirt_warp", lambda *args, **kwargs: None)
    straight = _fit(kind, "hands_on_hips")
    assert floating_share(result.placed_rgba[..., 3], result.keypoints) < floating_share(
        straight.placed_rgba[..., 3], straight.keypoints
    )
