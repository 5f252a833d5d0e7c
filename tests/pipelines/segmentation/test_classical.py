"""The classical cutter: IoU floors per hard-case group on a fixed synthetic set, and image-step properties."""

from __future__ import annotations

import statistics
from collections import defaultdict

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.segmentation.classical import (
    ClassicalOptions,
    _along,
    _anchored,
    _enclosed_runs,
    segment_classical,
)
from pipelines.segmentation.metrics import iou
from pipelines.testing.flatlays import GROUPS, FlatlaySpec, make_flatlay, sample_specs

# Regression floors measured on this fixed set (seed 7, 60 images, 384-512 px) minus a small margin.
# They sit BELOW the targets (mean >= 0.97, each group >= 0.93, no image < 0.85): on this set of small
# images jpeg_rotated (0.881) and white_on_white (0.898) stay under 0.93 (striped 0.945), though every group
# reaches it on the 300-image benchmark at 512-2048 px (docs/SEGMENTATION.md).
MEAN_FLOOR = 0.945  # measured 0.949
GROUP_FLOORS = {
    "plain": 0.955,
    "white_on_white": 0.885,
    "pale_on_pale": 0.95,
    "black_on_dark": 0.965,
    "thin_straps": 0.96,
    "striped": 0.935,  # measured 0.945 (0.861 before the enclosed-stripe rule)
    "printed_logo": 0.93,
    "gradient_bg": 0.975,
    "shadow_vignette": 0.945,
    "jpeg_rotated": 0.885,  # measured 0.889 (0.881 before the shadow bridge / leak retry / texture 2.5)
}


@pytest.fixture(scope="module")
def group_ious() -> dict[str, list[float]]:
    """IoU of every image of the fixed set, by group."""
    scores: dict[str, list[float]] = defaultdict(list)
    for spec in sample_specs(60, seed=7, sizes=(384, 512)):
        image, truth = make_flatlay(spec)
        scores[spec.group].append(iou(segment_classical(image).mask, truth))
    return scores


@pytest.mark.parametrize("group", GROUPS)
def test_group_mean_iou_floor(group_ious: dict[str, list[float]], group: str) -> None:
    assert statistics.mean(group_ious[group]) >= GROUP_FLOORS[group], group_ious[group]


def test_overall_mean_iou_floor(group_ious: dict[str, list[float]]) -> None:
    everything = [v for values in group_ious.values() for v in values]
    assert statistics.mean(everything) >= MEAN_FLOOR
    assert min(everything) >= 0.7  # no catastrophic leak into the garment on this set (measured 0.744)


def test_white_on_white_and_black_on_dark_are_found() -> None:
    white = FlatlaySpec(
        group="white_on_white",
        kind="tee",
        width=384,
        height=512,
        garment_rgb=(238, 238, 236),
        background_rgb=(253, 253, 253),
        noise_sigma=1.0,
        seed=1,
    )
    black = FlatlaySpec(
        group="black_on_dark",
        kind="dress",
        width=384,
        height=512,
        garment_rgb=(16, 16, 18),
        background_rgb=(60, 60, 62),
        noise_sigma=1.0,
        seed=2,
    )
    for spec in (white, black):
        image, truth = make_flatlay(spec)
        assert iou(segment_classical(image).mask, truth) >= 0.93, spec.group


def test_thin_straps_are_kept() -> None:
    spec = FlatlaySpec(
        group="thin_straps",
        kind="tank",
        straps=True,
        strap_px=4,
        width=384,
        height=512,
        garment_rgb=(200, 30, 60),
        seed=3,
    )
    image, truth = make_flatlay(spec)
    mask = segment_classical(image).mask
    top = int(np.nonzero(truth.any(axis=1))[0][0])
    strap_rows = slice(top + 4, top + 40)  # above the body: only the straps are there
    assert (mask[strap_rows] > 0).sum() >= 0.7 * (truth[strap_rows] > 0).sum()


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10_000), side=st.sampled_from([96, 160, 257]))
def test_outputs_are_well_formed_and_input_untouched(seed: int, side: int) -> None:
    spec = sample_specs(1, seed=seed, sizes=(side,))[0]
    image, _ = make_flatlay(spec)
    before = image.copy()
    result = segment_classical(image)
    np.testing.assert_array_equal(image, before)
    assert result.cutout.shape == (*image.shape[:2], 4) and result.cutout.dtype == np.uint8
    np.testing.assert_array_equal(result.cutout[..., :3], image)  # only alpha is added
    assert set(np.unique(result.mask)) <= {0, 255}
    np.testing.assert_array_equal(result.mask > 0, result.cutout[..., 3] >= 128)
    x0, y0, x1, y1 = result.bbox
    if result.mask.any():
        assert result.mask[y0:y1, x0:x1].sum() == result.mask.sum()


def test_alpha_matting_option_changes_only_the_edge_band() -> None:
    image, _ = make_flatlay(sample_specs(1, seed=4, sizes=(256,))[0])
    plain = segment_classical(image)
    matted = segment_classical(image, ClassicalOptions(alpha_matting=True))
    changed = plain.cutout[..., 3] != matted.cutout[..., 3]
    assert changed.any()
    interior = (plain.cutout[..., 3] == 255) & (matted.cutout[..., 3] == 255)
    assert interior.sum() > 0.5 * (plain.mask > 0).sum()


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((64, 64, 4), np.uint8), "RGB array"),
        (np.zeros((64, 64, 3), np.float32), "uint8"),
        (np.zeros((8, 8, 3), np.uint8), "at least 16 px"),
    ],
)
def test_bad_input_gets_a_clear_error(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        segment_classical(image)


def test_no_background_halo_around_a_dark_garment() -> None:
    # A black tee on white: the alpha edge sits on the garment side, so no light rim shows on a new backdrop.
    spec = FlatlaySpec(group="plain", kind="tee", width=768, height=1024, garment_rgb=(18, 18, 20), seed=5)
    image, truth = make_flatlay(spec)
    alpha = segment_classical(image).cutout[..., 3]
    outside = cv2.distanceTransform((truth == 0).astype(np.uint8), cv2.DIST_L2, 3)
    rim = (outside >= 2) & (outside < 3)
    assert alpha[rim].mean() < 16  # 2 px out: (almost) transparent
    assert (alpha[outside >= 3] > 0).mean() < 0.002


def test_large_odd_sized_photo_is_cut_whole_to_its_last_row() -> None:
    # 1537 px: the fast whole-factor shrink leaves out the last row / column, which must still be covered.
    spec = sample_specs(1, seed=11, sizes=(1537,))[0]
    image, truth = make_flatlay(spec)
    result = segment_classical(image)
    assert result.mask.shape == truth.shape
    assert iou(result.mask, truth) >= 0.9
    np.testing.assert_array_equal(result.mask[-1] > 0, result.mask[-2] > 0)
    np.testing.assert_array_equal(result.mask[:, -1] > 0, result.mask[:, -2] > 0)


@pytest.mark.parametrize(
    "options", [{"shadow_depth": 0.0}, {"directional_ringing": False}, {"rescue_anchored": False}]
)
def test_each_pass_turned_off_keeps_plain_garments_whole(options: dict[str, object]) -> None:
    for seed, group in ((21, "plain"), (22, "shadow_vignette")):
        spec = next(s for s in sample_specs(40, seed=seed, sizes=(384,)) if s.group == group)
        image, truth = make_flatlay(spec)
        assert iou(segment_classical(image, ClassicalOptions(**options)).mask, truth) >= 0.9, (options, group)


def test_rescue_keeps_a_faint_rim_running_into_a_strong_edge_but_not_ringing_beside_it() -> None:
    loose = np.zeros((20, 20), bool)
    barrier = np.zeros((20, 20), bool)
    free = np.ones((20, 20), bool)
    free[10:] = False  # rows 10+ lie beside a strong edge (row 18), where the ringing floor drops evidence
    barrier[:10, 5] = True  # a faint rim found away from strong edges ...
    loose[:15, 5] = True  # ... that runs on into the strong edge's zone, where only the loose test sees it
    barrier[18] = True  # the strong edge
    loose[17, 10:15] = True  # ringing beside it: hangs on the strong edge alone
    rescued = _anchored(loose, barrier, free)
    assert rescued.dtype == np.float32
    np.testing.assert_array_equal(np.nonzero(rescued), (np.arange(10, 15), np.full(5, 5)))


def test_enclosed_runs_takes_light_stripes_between_dark_ones_not_background_gaps() -> None:
    # Two striped patches, dark stripes at rows 10-13, 20-23, 30-33: in the left one (columns 10-39) the light
    # stripes are off the background's colour, in the right one (columns 45-74) the gaps show the background.
    fg = np.zeros((50, 80), dtype=bool)
    colour = np.zeros((50, 80), dtype=np.float32)
    for top in (10, 20, 30):
        fg[top : top + 4, 10:40] = fg[top : top + 4, 45:75] = True
        colour[top : top + 4, 10:40] = colour[top : top + 4, 45:75] = 10.0
    colour[14:20, 10:40] = colour[24:30, 10:40] = 1.5
    fg_before, colour_before = fg.copy(), colour.copy()
    taken = _enclosed_runs(fg, colour, length=10)
    assert taken[14:20, 10:40].all() and taken[24:30, 10:40].all()
    assert not taken[:, 40:].any()
    assert not (taken & fg).any()
    assert (fg == fg_before).all() and (colour == colour_before).all()
    # Gaps taller than the length are not closed.
    assert not _enclosed_runs(fg, colour, length=6).any()


def _shadow_band(line_px: int) -> tuple[np.ndarray, np.ndarray]:
    """Background (columns 0-9) and a freed shadow band beside it (columns 10-25, rows 5-34), crossed by a
    contour line line_px thick at column 15: only the part left of the line touches the background."""
    region = np.zeros((40, 40), bool)
    region[:, :10] = True
    freed = np.zeros((40, 40), bool)
    freed[5:35, 10:15] = True
    freed[5:35, 15 + line_px : 26] = True
    return region, freed


def _shadow_kept(freed: np.ndarray, region: np.ndarray, texture: float, bridge_px: int) -> np.ndarray:
    """_along with the default contact / darkness / texture limits on a uniformly dark, uniformly rough map."""
    options = ClassicalOptions()
    darkening = np.full(freed.shape, 2 * options.shadow_min, np.float32)
    roughness = np.full(freed.shape, texture, np.float32)
    return _along(
        freed,
        region,
        options.shadow_contact,
        darkening,
        options.shadow_min,
        roughness,
        options.shadow_texture,
        min_pixels=20,
        bridge_px=bridge_px,
    )


@pytest.mark.parametrize("line_px", [1, 2])
def test_shadow_parts_split_by_a_thin_contour_line_are_judged_as_one(line_px: int) -> None:
    region, freed = _shadow_band(line_px)
    far = np.zeros_like(freed)
    far[5:35, 15 + line_px : 26] = True  # the part behind the line: alone it never touches the background
    bridged = _shadow_kept(freed, region, 0.0, bridge_px=1)
    np.testing.assert_array_equal(bridged, freed)  # both parts, and only their own pixels (not the line)
    alone = _shadow_kept(freed, region, 0.0, bridge_px=0)
    np.testing.assert_array_equal(alone, freed & ~far)
    # A line thicker than about twice bridge_px is a real boundary: the far part stays out.
    region, freed = _shadow_band(3)
    np.testing.assert_array_equal(_shadow_kept(freed, region, 0.0, bridge_px=1)[:, 15:], False)


def test_shadow_texture_default_forgives_jpeg_roughness_but_not_knit() -> None:
    region, freed = _shadow_band(0)
    assert (_shadow_kept(freed, region, 2.0, bridge_px=0) == freed).all()  # JPEG-blocked paper in shadow
    assert not _shadow_kept(freed, region, 3.0, bridge_px=0).any()  # rougher: a garment's knit


@pytest.mark.parametrize(("kind", "seed"), [("dress", 0), ("tee", 0)])
def test_leaked_shadow_flood_is_retried_and_keeps_a_soft_rimmed_grey_garment(kind: str, seed: int) -> None:
    # A light grey garment of the background's chroma, 10% darker than it, with a drop shadow softening its
    # rim: the deep flood forgives its darkening and runs through the rim into the whole garment.
    spec = FlatlaySpec(
        group="shadow_vignette",
        kind=kind,
        width=288,
        height=384,
        garment_rgb=(200, 200, 200),
        background="light_grey",
        background_rgb=(223, 223, 222),
        background_rgb2=(223, 223, 222),
        shadow=0.18,
        vignette=0.1,
        noise_sigma=0.6,
        fill=0.7,
        seed=seed,
    )
    image, truth = make_flatlay(spec)
    garment = truth > 0

    def kept(options: ClassicalOptions) -> float:
        return float(((segment_classical(image, options).mask > 0) & garment).sum() / garment.sum())

    assert kept(ClassicalOptions()) >= 0.98  # the leak is seen and the flood retried with stronger edges
    assert kept(ClassicalOptions(shadow_leak_share=1.0)) < 0.2  # no retry: taken as shadow
    assert kept(ClassicalOptions(shadow_retry_gain=1.0)) < 0.2  # a retry at the same strength leaks again
