"""Finishing a rendered image: the preset, the encoding and the metadata it carries."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.finish import finish_image
from pipelines.metadata import ImageMetadata
from pipelines.presets import apply_preset, load_presets
from tests.pipelines.test_metadata import _meta

PRESETS = load_presets()


def _studio(seed: int = 3) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (96, 64, 3), dtype=np.uint8)


def test_lossless_master_keeps_every_pixel_and_records_its_format() -> None:
    rgb = _studio()
    finished = finish_image(rgb, PRESETS["master"], _meta())
    assert finished.extension == "png" and finished.metadata.format == "png"
    np.testing.assert_array_equal(finished.decoded(), rgb)


@pytest.mark.parametrize("name", ["amazon", "shopify", "zalando"])
def test_jpeg_presets_record_the_lossy_format_and_decode_deterministically(name: str) -> None:
    rgb = _studio()
    preset = PRESETS[name]
    first = finish_image(rgb, preset, _meta(preset=name))
    again = finish_image(rgb.copy(), preset, _meta(preset=name))
    assert first.extension == "jpg" and first.metadata.format == "jpeg"
    assert first.decoded().shape == (preset.height, preset.width, 3)
    # What reproduce relies on: the same render finishes to the same decoded pixels.
    np.testing.assert_array_equal(first.decoded(), again.decoded())
    exact = apply_preset(rgb, preset).astype(int)
    assert np.abs(first.decoded().astype(int) - exact).max() > 0  # lossy: comparing to the raw render differs


def test_metadata_must_name_the_preset_it_is_finished_with() -> None:
    with pytest.raises(ValueError, match="metadata names preset 'master'"):
        finish_image(_studio(), PRESETS["amazon"], _meta(preset="master"))


@settings(max_examples=20, deadline=None)
@given(st.integers(8, 80), st.integers(8, 80), st.integers(0, 2**16))
def test_finishing_never_mutates_the_render(width: int, height: int, seed: int) -> None:
    rgb = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    before = rgb.copy()
    finished = finish_image(rgb, PRESETS["master"], _meta())
    np.testing.assert_array_equal(rgb, before)
    assert ImageMetadata.from_dict(finished.metadata.to_dict()) == finished.metadata
