"""Image loading (every mode, orientation, bad input) and atomic writers with metadata."""

from __future__ import annotations

import io
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from pipelines.image_io import (
    ImageLoadError,
    load_image,
    load_image_bytes,
    read_jpeg_comment,
    read_jpeg_text,
    read_png_text,
    write_jpeg_atomic,
    write_png_atomic,
)


def _encode(image: Image.Image, fmt: str, **options: object) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def _blocks(width: int = 40, height: int = 30) -> np.ndarray:
    """Four flat colour quadrants: survives JPEG and makes orientation visible."""
    rgb = np.zeros((height, width, 3), dtype=np.uint8)
    rgb[: height // 2, : width // 2] = (220, 30, 30)
    rgb[: height // 2, width // 2 :] = (30, 200, 30)
    rgb[height // 2 :, : width // 2] = (30, 30, 220)
    rgb[height // 2 :, width // 2 :] = (230, 230, 40)
    return rgb


def _png_chunk(kind: bytes, payload: bytes) -> bytes:
    return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))


def test_rgb_png_loads_exactly(tmp_path: Path) -> None:
    rgb = _blocks()
    path = tmp_path / "a.png"
    path.write_bytes(_encode(Image.fromarray(rgb), "PNG"))
    loaded = load_image(path)
    assert loaded.dtype == np.uint8 and loaded.shape == rgb.shape
    np.testing.assert_array_equal(loaded, rgb)
    assert loaded.flags.writeable


def test_real_alpha_is_kept_and_constant_alpha_dropped() -> None:
    rgba = np.dstack([_blocks(), np.full((30, 40), 255, np.uint8)])
    assert load_image_bytes(_encode(Image.fromarray(rgba), "PNG")).shape == (30, 40, 3)
    rgba[:5, :5, 3] = 0
    loaded = load_image_bytes(_encode(Image.fromarray(rgba), "PNG"))
    assert loaded.shape == (30, 40, 4)
    np.testing.assert_array_equal(loaded, rgba)


def test_fully_transparent_image_is_rejected() -> None:
    rgba = np.zeros((10, 10, 4), np.uint8)
    with pytest.raises(ImageLoadError, match="fully transparent"):
        load_image_bytes(_encode(Image.fromarray(rgba), "PNG"), name="ghost.png")


@pytest.mark.parametrize(
    ("orientation", "top_left_colour"),
    [(1, (220, 30, 30)), (3, (230, 230, 40)), (6, (30, 30, 220)), (8, (30, 200, 30))],
)
def test_exif_orientation_is_applied(orientation: int, top_left_colour: tuple[int, int, int]) -> None:
    image = Image.fromarray(_blocks(40, 30))
    exif = image.getexif()
    exif[0x0112] = orientation
    loaded = load_image_bytes(_encode(image, "JPEG", quality=95, exif=exif.tobytes()))
    expected_shape = (40, 30, 3) if orientation in (6, 8) else (30, 40, 3)
    assert loaded.shape == expected_shape
    assert np.abs(loaded[3, 3].astype(int) - top_left_colour).max() < 20


def test_adobe_cmyk_jpeg_becomes_rgb() -> None:
    rgb = _blocks()
    data = _encode(Image.fromarray(rgb).convert("CMYK"), "JPEG", quality=95)
    assert Image.open(io.BytesIO(data)).info.get("adobe") is not None  # Pillow writes Adobe (inverted) CMYK
    loaded = load_image_bytes(data)
    assert loaded.shape == rgb.shape
    assert np.abs(loaded[7, 10].astype(int) - rgb[7, 10]).max() < 16


def test_cmyk_tiff_becomes_rgb() -> None:
    rgb = _blocks()
    loaded = load_image_bytes(_encode(Image.fromarray(rgb).convert("CMYK"), "TIFF"))
    assert np.abs(loaded.astype(int) - rgb).max() <= 2


def test_palette_with_transparency_becomes_rgba_and_without_rgb() -> None:
    palette_image = Image.fromarray(_blocks()).quantize(colors=4)
    assert load_image_bytes(_encode(palette_image, "PNG")).shape == (30, 40, 3)
    index_top_left = palette_image.getpixel((0, 0))
    loaded = load_image_bytes(_encode(palette_image, "PNG", transparency=index_top_left))
    assert loaded.shape == (30, 40, 4)
    assert loaded[0, 0, 3] == 0 and loaded[-1, -1, 3] == 255


def test_grey_and_grey_alpha() -> None:
    grey = np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))
    loaded = load_image_bytes(_encode(Image.fromarray(grey), "PNG"))
    assert loaded.shape == (30, 40, 3)
    np.testing.assert_array_equal(loaded[..., 1], grey)
    la = Image.merge(
        "LA", [Image.fromarray(grey), Image.fromarray(np.where(grey > 100, 255, 0).astype(np.uint8))]
    )
    loaded = load_image_bytes(_encode(la, "PNG"))
    assert loaded.shape == (30, 40, 4)
    np.testing.assert_array_equal(loaded[..., 3], np.where(grey > 100, 255, 0))


def test_sixteen_bit_grey_and_rgb_are_scaled_to_eight_bits() -> None:
    grey16 = np.array([[0, 257 * 128, 65535]], dtype=np.uint16).repeat(4, axis=0)
    loaded = load_image_bytes(cv2.imencode(".png", grey16)[1].tobytes())
    np.testing.assert_array_equal(loaded[0, :, 0], [0, 128, 255])
    rgb16 = (_blocks().astype(np.uint16) * 257)[..., ::-1]  # OpenCV writes BGR
    loaded = load_image_bytes(cv2.imencode(".png", np.ascontiguousarray(rgb16))[1].tobytes())
    assert loaded.dtype == np.uint8
    np.testing.assert_array_equal(loaded, _blocks())


def test_float_tiffs_grey_by_pillow_and_rgb_by_opencv_fallback() -> None:
    ramp = np.tile(np.linspace(0.0, 1.0, 40, dtype=np.float32), (30, 1))
    loaded = load_image_bytes(_encode(Image.fromarray(ramp), "TIFF"))
    assert loaded.shape == (30, 40, 3) and loaded[0, 0, 0] == 0 and loaded[0, -1, 0] == 255
    rgb = _blocks().astype(np.float32) / 255.0
    data = cv2.imencode(".tiff", np.ascontiguousarray(rgb[..., ::-1]))[1].tobytes()
    loaded = load_image_bytes(data, name="float.tif")
    np.testing.assert_array_equal(loaded, _blocks())


def test_pixel_cap_is_checked_before_decoding() -> None:
    # A 30000 x 30000 PNG header with no real pixel data: decoding it would need 2.7 GB.
    header = _png_chunk(b"IHDR", struct.pack(">IIBBBBB", 30000, 30000, 8, 2, 0, 0, 0))
    data = (
        b"\x89PNG\r\n\x1a\n"
        + header
        + _png_chunk(b"IDAT", zlib.compress(b"\x00" * 100))
        + _png_chunk(b"IEND", b"")
    )
    with pytest.raises(ImageLoadError, match=r"30000 x 30000 = 900 MP, over the 40 MP limit"):
        load_image_bytes(data, name="bomb.png")
    small = _encode(Image.fromarray(_blocks(100, 100)), "PNG")
    with pytest.raises(ImageLoadError, match=r"100 x 100 = 0.01 MP, over the 0.005 MP limit"):
        load_image_bytes(small, max_pixels=5000)
    assert load_image_bytes(small, max_pixels=10_000).shape == (100, 100, 3)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG"])
def test_truncated_files_say_truncated(fmt: str) -> None:
    noise = np.random.default_rng(0).integers(0, 255, (120, 160, 3), dtype=np.uint8)
    data = _encode(Image.fromarray(noise), fmt)
    with pytest.raises(ImageLoadError, match=f"truncated {fmt}"):
        load_image_bytes(data[: len(data) // 2], name="cut")


def test_corrupt_png_data_is_rejected() -> None:
    data = bytearray(
        _encode(Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), np.uint8)), "PNG")
    )
    data[200:260] = b"\x00" * 60
    with pytest.raises(ImageLoadError, match="corrupt PNG|truncated PNG"):
        load_image_bytes(bytes(data))


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "empty"),
        (b"sku,title\nA1,Tee\n", "text file"),
        (b"<!DOCTYPE html><html><body>Not found</body></html>", "web page"),
        (b"%PDF-1.7\n%\xe2\xe3\xcf\xd3\n", "PDF"),
        (b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00", "HEIC"),
        (bytes(range(256)) * 4, "not an image file"),
    ],
)
def test_non_images_get_a_reason(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "photo.jpg"
    path.write_bytes(content)
    with pytest.raises(ImageLoadError, match=reason) as caught:
        load_image(path)
    assert "photo.jpg" in str(caught.value)


def test_missing_file_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageLoadError, match="file not found"):
        load_image(tmp_path / "nope.jpg")
    with pytest.raises(ImageLoadError, match="folder"):
        load_image(tmp_path)


@settings(max_examples=60, deadline=None)
@given(st.binary(max_size=400))
def test_arbitrary_bytes_never_raise_anything_but_image_load_error(data: bytes) -> None:
    try:
        image = load_image_bytes(data)
    except ImageLoadError:
        return
    assert image.dtype == np.uint8 and image.ndim == 3


@settings(max_examples=40, deadline=None)
@given(st.sampled_from(["PNG", "JPEG", "GIF", "BMP", "TIFF", "WEBP"]), st.floats(0.0, 0.99))
def test_cut_real_files_load_or_fail_cleanly(fmt: str, keep: float) -> None:
    data = _encode(Image.fromarray(_blocks(24, 16)), fmt)
    try:
        image = load_image_bytes(data[: int(len(data) * keep)])
    except ImageLoadError:
        return
    assert image.shape[:2] == (16, 24)


def test_png_writer_round_trips_pixels_and_text(tmp_path: Path) -> None:
    rgba = np.dstack([_blocks(), np.tile(np.arange(40, dtype=np.uint8) * 6, (30, 1))])
    before = rgba.copy()
    path = tmp_path / "out" / "image.png"
    text = {"onmodel": '{"seed": 7}', "title": "Café tee — 東京"}
    write_png_atomic(path, rgba, text=text)
    np.testing.assert_array_equal(rgba, before)
    np.testing.assert_array_equal(load_image(path), rgba)
    assert read_png_text(path) == text
    assert [p.name for p in path.parent.iterdir()] == ["image.png"]  # no temporary file left behind


def test_png_writer_replaces_atomically_and_cleans_up_on_failure(tmp_path: Path) -> None:
    path = tmp_path / "image.png"
    write_png_atomic(path, _blocks())
    with pytest.raises(ValueError, match="uint8"):
        write_png_atomic(path, _blocks().astype(np.float32))
    with pytest.raises(ValueError, match="compress_level"):
        write_png_atomic(path, _blocks(), compress_level=12)
    np.testing.assert_array_equal(load_image(path), _blocks())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["image.png"]


def test_jpeg_writer_text_and_comment(tmp_path: Path) -> None:
    rgb = _blocks()
    write_jpeg_atomic(tmp_path / "a.jpg", rgb, quality=95, text={"onmodel": '{"seed": 3}', "pose": "front"})
    assert read_jpeg_text(tmp_path / "a.jpg") == {"onmodel": '{"seed": 3}', "pose": "front"}
    write_jpeg_atomic(tmp_path / "b.jpg", rgb, comment='{"seed": 4}')
    assert read_jpeg_comment(tmp_path / "b.jpg") == '{"seed": 4}'
    assert np.abs(load_image(tmp_path / "b.jpg").astype(int) - rgb).max() < 40
    with pytest.raises(ValueError, match="RGB|C in"):
        write_jpeg_atomic(tmp_path / "c.jpg", np.dstack([rgb, rgb[..., :1]]))
    with pytest.raises(ValueError, match="either text"):
        write_jpeg_atomic(tmp_path / "c.jpg", rgb, text={"a": "b"}, comment="c")
    assert not (tmp_path / "c.jpg").exists()
