"""The synthetic flat-lay generator: masks match what was drawn, output is deterministic and well formed."""

from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.testing.flatlays import GARMENT_KINDS, GROUPS, FlatlaySpec, make_flatlay, sample_specs


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
