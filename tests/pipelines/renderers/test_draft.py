"""The draft renderer: deterministic, fast, garment exact, golden image."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pytest

from pipelines.image_io import load_image
from pipelines.renderers.draft import SKIN_TONES, DraftRenderer
from tests.pipelines.golden_scenes import CANVAS, draft_job, draft_scene

GOLDEN = Path(__file__).parents[1] / "golden"


def test_matches_golden_image() -> None:
    golden = load_image(GOLDEN / "draft_front.png")
    rendered = draft_scene()
    assert rendered.shape == golden.shape == (CANVAS[1], CANVAS[0], 3)
    difference = np.abs(rendered.astype(int) - golden.astype(int))
    assert (difference > 6).mean() < 0.002, (
        "draft image drifted; rerun tests/pipelines/golden/make_golden.py if intended"
    )


def test_garment_core_is_the_source_pixels_and_inputs_are_untouched() -> None:
    job = draft_job()
    before = {
        f.name: np.copy(getattr(job, f.name))
        for f in dataclasses.fields(job)
        if isinstance(getattr(job, f.name), np.ndarray)
    }
    rendered = DraftRenderer()([job])[0]
    core = job.keep_mask == 1.0
    assert core.sum() > 1000
    np.testing.assert_array_equal(rendered.image[core], job.placed_rgba[..., :3][core])
    for name, array in before.items():
        np.testing.assert_array_equal(getattr(job, name), array)
    assert rendered.image.dtype == np.uint8 and rendered.image.shape == (CANVAS[1], CANVAS[0], 3)
    assert rendered.job_id == job.job_id and rendered.seed == job.seed


def test_deterministic_and_variant_changes_skin_and_backdrop() -> None:
    renderer = DraftRenderer()
    first, again = renderer([draft_job(variant=0)])[0], DraftRenderer()([draft_job(variant=0)])[0]
    np.testing.assert_array_equal(first.image, again.image)
    other = renderer([draft_job(variant=1)])[0]
    assert first.params["skin_tone"] != other.params["skin_tone"]
    assert first.params["backdrop"] != other.params["backdrop"]
    assert first.params["skin_tone"] == SKIN_TONES[0] and first.params["renderer"] == "draft"
    corner = (slice(0, 20), slice(0, 20))
    assert not np.array_equal(first.image[corner], other.image[corner])


def test_draws_a_figure_on_a_light_backdrop() -> None:
    job = draft_job()
    job = dataclasses.replace(job, keep_mask=np.zeros_like(job.keep_mask))  # no garment: see the mannequin
    image = DraftRenderer(garment_shadow=False)([job])[0].image.astype(int)
    skin = np.array([int(SKIN_TONES[0][i : i + 2], 16) for i in (1, 3, 5)])
    hips = (job.keypoints[8, :2] + job.keypoints[11, :2]) / 2
    assert np.abs(image[round(hips[1]), round(hips[0])] - skin).max() < 40  # the body is skin-coloured
    assert image[5, 5].min() > 200  # light studio backdrop in the corner
    x, y = job.keypoints[10, :2]  # below the right ankle: the floor shadow is darker than the wall above
    assert image[round(y) + 20, 10].mean() > image[round(y) + 20, round(x) + 20].mean()


def test_every_library_pose_renders() -> None:
    renderer = DraftRenderer()
    for pose in ("front", "back", "side_left", "arms_crossed", "walking"):
        rendered = renderer([draft_job(pose_name=pose)])[0]
        assert rendered.image.shape == (CANVAS[1], CANVAS[0], 3) and rendered.flags == []


def test_describe_options_and_errors() -> None:
    renderer = DraftRenderer.from_options({"skin_tones": ["#112233"], "floor_shadow": False}, "cuda:0")
    description = renderer.describe()
    assert description["renderer"] == "draft" and description["version"] == 1
    assert description["skin_tones"] == ["#112233"] and description["floor_shadow"] is False
    assert renderer([draft_job(variant=3)])[0].params["skin_tone"] == "#112233"
    with pytest.raises(ValueError, match="unknown draft renderer option"):
        DraftRenderer.from_options({"steps": 20}, "cpu")
    with pytest.raises(ValueError, match="#RRGGBB"):
        DraftRenderer.from_options({"backdrops": ["white"]}, "cpu")
