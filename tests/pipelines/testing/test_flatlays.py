"""The synthetic flat-lay generator: masks match what was drawn, output is deterministic and well formed."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.testing.flatlays import (
    GARMENT_KINDS,
    GROUPS,
    FlatlaySpec,
    flatlay_landmarks,
    make_flatlay,
    sample_specs,
)


def test_sample_specs_cover_every_group_evenly_and_are_reproducible() -> None:
    specs = sample_specs(40, seed=3, sizes=(256,))
    assert [s.group for s in specs[: len(GROUPS)]] == list(GROUPS)
    assert {g: sum(s.group == g for s in specs) for g in GROUPS} == {g: 4 for g in GROUPS}
    assert specs == sample_specs(40, seed=3, sizes=(256,))
    assert specs != sample_specs(40, seed=4, sizes=(256,))


def test_make_flatlay_is_deterministic_and_shaped() -> None:
    spec = sample_specs(1, seed=5, sizes=(300,))[0]
    image, mask = make_flatlay(spec)
    again, mask_again = make_flatlay(spec)
    assert image.shape == (spec.height, spec.width, 3) and image.dtype == np.uint8
    assert mask.shape == (spec.height, spec.width) and mask.dtype == np.uint8
    assert set(np.unique(mask)) == {0, 255}
    np.testing.assert_array_equal(image, again)
    np.testing.assert_array_equal(mask, mask_again)


@settings(max_examples=12, deadline=None)
@given(
    kind=st.sampled_from(GARMENT_KINDS),
    garment=st.tuples(*[st.integers(0, 120)] * 3),
    shadow=st.floats(0.0, 0.2),
)
def test_mask_matches_the_drawn_garment(kind: str, garment: tuple[int, int, int], shadow: float) -> None:
    # A dark garment on white without noise or JPEG: the pixels tell exactly where the garment was drawn.
    spec = FlatlaySpec(
        group="plain",
        kind=kind,
        width=200,
        height=240,
        garment_rgb=garment,
        background_rgb=(255, 255, 255),
        noise_sigma=0.0,
        shadow=shadow,
        straps=kind == "tank",
    )
    image, mask = make_flatlay(spec)
    drawn = image.astype(int).sum(axis=2) < 3 * 185  # far darker than the lightest shadow (1 - 0.2) * 255
    core = cv2.erode(mask, np.ones((3, 3), np.uint8)) > 0  # one-pixel anti-aliased rim may go either way
    outside = cv2.dilate(mask, np.ones((3, 3), np.uint8)) == 0
    assert drawn[core].all()
    assert not drawn[outside].any()
    assert 0.05 < (mask > 0).mean() < 0.9


def test_straps_are_in_the_mask() -> None:
    with_straps = FlatlaySpec(
        group="thin_straps", kind="tank", straps=True, strap_px=4, width=300, height=400
    )
    without = dataclasses.replace(with_straps, straps=False)
    assert (make_flatlay(with_straps)[1] > 0).sum() > (make_flatlay(without)[1] > 0).sum()


def test_bad_spec_gets_a_clear_error() -> None:
    with pytest.raises(ValueError, match="kind"):
        make_flatlay(FlatlaySpec(group="plain", kind="hat"))
    with pytest.raises(ValueError, match="width and height"):
        make_flatlay(FlatlaySpec(group="plain", width=8))
    with pytest.raises(ValueError, match="n must be"):
        sample_specs(-1, seed=0)


def _outline_distance(mask: np.ndarray, point: tuple[float, float]) -> float:
    """Distance from a point to the mask's outer outline (its boundary pixels' centres)."""
    contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    outline = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    return float(np.hypot(*(outline - np.array(point)).T).min())


@pytest.mark.parametrize("kind", GARMENT_KINDS)
def test_ground_truth_landmarks_lie_on_the_drawn_outline(kind: str) -> None:
    for seed, straps in ((0, False), (1, True), (2, False)):
        spec = FlatlaySpec(
            group="plain", kind=kind, width=360, height=480, straps=straps, strap_px=6, seed=seed,
            rotation_deg=4.0 * seed - 4.0, offset=(0.03, -0.02),
        )  # fmt: skip
        mask = make_flatlay(spec)[1]
        height = float(np.ptp(np.flatnonzero(mask.any(axis=1))))
        for name, point in flatlay_landmarks(spec).items():
            if name.endswith("shoulder") and straps and kind in ("tank", "dress"):
                limit = spec.strap_px / 2 + 1.5  # the strap's end, inside its round cap
            elif name.endswith("armpit") and kind == "shirt":
                limit = 0.03 * height  # the tip of a slit the mask closes where it is under a pixel wide
            elif name.endswith("armpit"):
                limit = 2.5  # a sharp inner corner: the nearest boundary pixel centres sit back from it
            else:
                limit = 1.5
            assert _outline_distance(mask, point) <= limit, f"{kind} {name}"


def test_ground_truth_landmarks_turn_and_move_with_the_garment() -> None:
    upright = FlatlaySpec(group="plain", kind="tee", width=400, height=500, seed=3)
    turned = dataclasses.replace(upright, rotation_deg=8.0, offset=(0.05, -0.03))
    angle = np.deg2rad(8.0)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    centre, moved_centre = np.array([200.0, 250.0]), np.array([220.0, 235.0])
    before, after = flatlay_landmarks(upright), flatlay_landmarks(turned)
    assert before.keys() == after.keys()
    for name, point in before.items():
        expected = rotation @ (np.array(point) - centre) + moved_centre
        np.testing.assert_allclose(after[name], expected, atol=1e-9)


def test_ground_truth_names_follow_the_wearer_and_the_kind() -> None:
    names = {}
    for kind in GARMENT_KINDS:
        spec = FlatlaySpec(group="plain", kind=kind, width=300, height=400)
        landmarks = flatlay_landmarks(spec)
        names[kind] = set(landmarks)
        for name, (x, _) in landmarks.items():
            if name.startswith("r_"):  # the wearer's right is on the image left of a front view
                assert x < landmarks["l_" + name[2:]][0]
    assert {"r_cuff", "l_cuff"} <= names["tee"] & names["shirt"]
    assert not {"r_cuff", "l_cuff"} & (names["tank"] | names["dress"] | names["skirt"])
    assert "crotch" in names["trousers"] and "crotch" not in names["skirt"]
    assert {"neck", "r_waist", "l_waist"} <= names["dress"]
    with pytest.raises(ValueError, match="kind"):
        flatlay_landmarks(FlatlaySpec(group="plain", kind="hat"))


def test_ground_truth_shoulders_are_the_strap_tops_when_straps_are_drawn() -> None:
    spec = FlatlaySpec(group="thin_straps", kind="tank", straps=True, width=300, height=400)
    with_straps = flatlay_landmarks(spec)
    without = flatlay_landmarks(dataclasses.replace(spec, straps=False))
    assert with_straps["r_shoulder"][1] < without["r_shoulder"][1]  # higher up
    assert {k: v for k, v in with_straps.items() if "shoulder" not in k} == {
        k: v for k, v in without.items() if "shoulder" not in k
    }
