"""Contact sheets: layout, thumbnails, captions and flags."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.contact_sheet import COLOURS, MARGIN, Tile, make_contact_sheet


def _has_colour(image: np.ndarray, colour: tuple[int, int, int], tolerance: int = 40) -> bool:
    return bool((np.abs(image.astype(int) - colour).max(axis=2) < tolerance).any())


def test_grid_layout_and_thumbnails() -> None:
    red = np.zeros((300, 200, 3), np.uint8)
    red[...] = (220, 0, 0)
    tiles = [Tile(red, ["front · v0", "seed 1"]) for _ in range(5)]
    sheet = make_contact_sheet("SKU-1 · Tee", tiles, columns=4, tile_width=128)
    assert sheet.dtype == np.uint8 and sheet.ndim == 3 and sheet.shape[2] == 3
    assert sheet.shape[1] == 2 * MARGIN + 4 * 128 + 3 * 12
    # Two rows of 2:3 boxes: the red thumbnails fill a 128 x 192 box each.
    reds = (sheet[..., 0] > 200) & (sheet[..., 1] < 30)
    assert reds.sum() == pytest.approx(5 * 128 * 192, rel=0.02)


def test_flags_are_coloured_and_alpha_shows_a_checkerboard() -> None:
    rgba = np.zeros((90, 60, 4), np.uint8)  # fully transparent: only the checkerboard shows
    tiles = [
        Tile(rgba, ["cutout"], ["touches_border"]),
        Tile(np.full((90, 60, 3), 235, np.uint8), ["walking · v1"], ["FAILED: CUDA out of memory " * 4]),
    ]
    sheet = make_contact_sheet("flags", tiles, columns=2, tile_width=128)
    assert _has_colour(sheet, COLOURS["flag"], 30) and _has_colour(sheet, COLOURS["failure"], 30)
    box = sheet[MARGIN + 60 : MARGIN + 60 + 150, MARGIN : MARGIN + 128]
    assert {255, 217} <= set(np.unique(box[..., 0]))


def test_empty_sheet_still_has_a_header() -> None:
    sheet = make_contact_sheet("nothing produced", [], columns=3, tile_width=100)
    assert sheet.shape[0] > 40 and _has_colour(sheet, COLOURS["title"], 60)


@pytest.mark.parametrize(
    ("tiles", "kwargs", "message"),
    [
        ([], {"columns": 0}, "columns"),
        ([], {"tile_width": 10}, "tile_width"),
        ([Tile(np.zeros((4, 4), np.uint8))], {}, "RGB or RGBA"),
        ([Tile(np.zeros((4, 4, 3), np.float32))], {}, "uint8"),
    ],
)
def test_bad_inputs(tiles: list[Tile], kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        make_contact_sheet("t", tiles, **kwargs)


@settings(max_examples=15, deadline=None)
@given(
    st.lists(st.tuples(st.integers(1, 300), st.integers(1, 300), st.booleans()), max_size=6),
    st.integers(1, 4),
)
def test_any_tiles_render_and_are_not_mutated(sizes: list[tuple[int, int, bool]], columns: int) -> None:
    tiles = [
        Tile(np.full((h, w, 4 if alpha else 3), 120, np.uint8), ["a very long caption " * 5], ["flag " * 20])
        for h, w, alpha in sizes
    ]
    before = [t.image.copy() for t in tiles]
    sheet = make_contact_sheet("T" * 200, tiles, columns=columns, tile_width=96)
    assert sheet.shape[1] == 2 * MARGIN + columns * 96 + (columns - 1) * 12
    for tile, original in zip(tiles, before, strict=True):
        np.testing.assert_array_equal(tile.image, original)
