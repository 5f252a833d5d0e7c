"""Preparing a product: photo bytes in, the cutout cropped to the garment, a thumbnail and flags out."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.errors import InputError
from pipelines.image_io import encode_jpeg, encode_png
from pipelines.prepare import (
    NO_GARMENT,
    THUMB_LONG_SIDE,
    cut_out_garment,
    image_hash,
    prepare_cutout,
    thumbnail,
)
from pipelines.segmentation import get_segmenter
from pipelines.testing.flatlays import FlatlaySpec, make_flatlay

CLASSICAL = get_segmenter("classical")


def test_a_packshot_is_cut_out_and_cropped_to_its_garment() -> None:
    photo, mask = make_flatlay(FlatlaySpec(group="plain", width=300, height=400, seed=4))
    cutout = prepare_cutout(encode_png(photo), CLASSICAL)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    height, width = rows[-1] - rows[0] + 1, cols[-1] - cols[0] + 1
    assert abs(cutout.rgba.shape[0] - height) <= 6 and abs(cutout.rgba.shape[1] - width) <= 6
    assert cutout.rgba[..., 3].any(axis=0).all() and cutout.rgba[..., 3].any(axis=1).all()  # cropped tight
    assert cutout.thumbnail.shape == (400, 300, 3)  # below the thumbnail size: a copy
    assert "supplied_alpha" not in cutout.flags


def test_a_supplied_alpha_channel_is_the_mask_and_is_flagged() -> None:
    rgba = np.zeros((60, 40, 4), np.uint8)
    rgba[10:50, 5:30] = (200, 30, 30, 255)
    cutout = prepare_cutout(encode_png(rgba), CLASSICAL)
    assert cutout.rgba.shape == (40, 25, 4) and "supplied_alpha" in cutout.flags
    assert (cutout.rgba[..., :3] == (200, 30, 30)).all()


def test_an_empty_cutout_and_a_broken_file_are_input_errors() -> None:
    with pytest.raises(InputError, match="no garment"):
        cut_out_garment(np.zeros((20, 20, 4), np.uint8), CLASSICAL)
    assert "plain-background packshot" in NO_GARMENT
    with pytest.raises(InputError, match="PDF"):
        prepare_cutout(b"%PDF-1.4", CLASSICAL)
    with pytest.raises(ValueError, match="max_pixels"):
        prepare_cutout(encode_jpeg(np.zeros((8, 8, 3), np.uint8)), CLASSICAL, max_pixels=0)


def test_image_hash_is_the_sha256_of_the_bytes() -> None:
    assert image_hash(b"abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


@settings(max_examples=30, deadline=None)
@given(st.integers(1, 1200), st.integers(1, 1200))
def test_thumbnail_fits_keeps_aspect_and_never_mutates(width: int, height: int) -> None:
    rgb = np.full((height, width, 3), 7, np.uint8)
    small = thumbnail(rgb)
    scale = min(1.0, THUMB_LONG_SIDE / max(width, height))
    assert (
        abs(small.shape[1] - max(1, width * scale)) <= 1 and abs(small.shape[0] - max(1, height * scale)) <= 1
    )
    assert max(small.shape[:2]) <= THUMB_LONG_SIDE and small.dtype == np.uint8
    small[...] = 0
    assert (rgb == 7).all()
