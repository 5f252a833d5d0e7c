"""Output presets: loading, fitting without cropping, padding, encoding."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.image_io import read_jpeg_text, read_png_text, write_bytes_atomic
from pipelines.presets import Preset, apply_preset, encode_for_preset, load_presets


def _studio(width: int = 64, height: int = 96) -> np.ndarray:
    """A vertical grey gradient backdrop with a red 'garment' in the middle."""
    image = np.repeat(np.linspace(230, 190, height, dtype=np.uint8)[:, None, None], width, axis=1).repeat(
        3, axis=2
    )
    image[height // 3 : 2 * height // 3, width // 4 : 3 * width // 4] = (200, 20, 20)
    return image


def test_repository_presets() -> None:
    presets = load_presets()
    assert {"master", "amazon", "shopify", "zalando"} <= set(presets)
    amazon, zalando, shopify = presets["amazon"], presets["zalando"], presets["shopify"]
    assert max(amazon.width, amazon.height) >= 1600 and abs(amazon.width / amazon.height - 0.75) < 0.01
    assert amazon.background == zalando.background == "#FFFFFF"
    assert (zalando.width, zalando.height, zalando.format) == (1801, 2600, "jpeg")
    assert (shopify.width, shopify.height) == (2048, 2048)
    assert presets["master"].format == "png" and presets["master"].width is None


def test_master_is_an_unchanged_copy() -> None:
    image = _studio()
    out = apply_preset(image, Preset("master"))
    np.testing.assert_array_equal(out, image)
    assert out is not image


def test_white_padding_keeps_the_whole_image() -> None:
    image = _studio(64, 64)
    out = apply_preset(image, Preset("wide", width=200, height=100, background="#FFFFFF"))
    assert out.shape == (100, 200, 3)
    assert (out[:, :40] == 255).all() and (out[:, -40:] == 255).all()
    red = (out[..., 0] > 150) & (out[..., 1] < 80)
    assert red[:, 50:150].sum() > 0.9 * red.sum() > 0  # the garment is intact in the centre


def test_padding_without_colour_continues_the_backdrop() -> None:
    image = _studio(64, 96)
    out = apply_preset(image, Preset("square", width=192, height=192))
    assert out.shape == (192, 192, 3)
    # The side padding follows the vertical gradient: light at the top, darker at the bottom.
    assert out[2, 5, 0] > out[-3, 5, 0] + 20
    assert abs(int(out[96, 5, 0]) - int(out[96, 40, 0])) < 6


def test_bad_presets_get_teaching_errors(tmp_path: Path) -> None:
    cases = {
        "width: 10": "16..10000",
        "background: white": "#RRGGBB",
        "format: webp": "format must be one of",
        "jpeg_quality: 0": "jpeg_quality",
        "colour: red": "unknown field",
    }
    for body, message in cases.items():
        path = tmp_path / "presets.yaml"
        path.write_text(f"shop:\n  {body}\n")
        with pytest.raises(ValueError, match=message):
            load_presets(path)
    with pytest.raises(ValueError, match="not found"):
        load_presets(tmp_path / "missing.yaml")


@pytest.mark.parametrize(
    "body", ["shop:\n  width: 100\n", "master:\n  width: 800\n", "master:\n  format: jpeg\n"]
)
def test_presets_need_a_native_png_master_to_derive_from(tmp_path: Path, body: str) -> None:
    path = tmp_path / "presets.yaml"
    path.write_text(body)
    with pytest.raises(
        ValueError, match="needs a preset 'master' with width: null, height: null, format: png"
    ):
        load_presets(path)


def test_encode_carries_metadata_in_the_preset_format(tmp_path: Path) -> None:
    image = _studio()
    presets = load_presets()
    data, extension = encode_for_preset(image, presets["zalando"], {"onmodel": "{}"})
    assert extension == "jpg" and Image.open(io.BytesIO(data)).format == "JPEG"
    data, extension = encode_for_preset(image, presets["master"], {"onmodel": '{"seed": 1}'})
    write_bytes_atomic(tmp_path / "a.png", data)
    assert extension == "png" and read_png_text(tmp_path / "a.png") == {"onmodel": '{"seed": 1}'}
    data, extension = encode_for_preset(
        apply_preset(image, presets["amazon"]), presets["amazon"], {"pose": "front"}
    )
    write_bytes_atomic(tmp_path / "b.jpg", data)
    assert extension == "jpg" and read_jpeg_text(tmp_path / "b.jpg") == {"pose": "front"}
    assert Image.open(tmp_path / "b.jpg").size == (1600, 2134)


@settings(max_examples=30, deadline=None)
@given(st.integers(8, 120), st.integers(8, 120), st.integers(16, 160), st.integers(16, 160), st.booleans())
def test_output_size_and_input_untouched(
    width: int, height: int, target_w: int, target_h: int, white: bool
) -> None:
    image = np.random.default_rng(width * height).integers(0, 256, (height, width, 3), dtype=np.uint8)
    before = image.copy()
    out = apply_preset(
        image, Preset("p", width=target_w, height=target_h, background="#FFFFFF" if white else None)
    )
    np.testing.assert_array_equal(image, before)
    assert out.shape == (target_h, target_w, 3) and out.dtype == np.uint8


def test_rejects_non_rgb() -> None:
    with pytest.raises(ValueError, match="uint8 RGB"):
        apply_preset(np.zeros((4, 4, 4), np.uint8), Preset("master"))
