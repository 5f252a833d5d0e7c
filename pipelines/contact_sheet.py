"""Contact sheets for reviewers: a titled grid of captioned thumbnails with quality flags in colour."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import cv2
import numpy as np
from PIL import Image, ImageDraw, ImageFont

MARGIN = 16
GAP = 12
TILE_ASPECT = 1.5  # thumbnails sit in 2:3 portrait boxes, the pose canvas shape
CHECKER_PX = 8
COLOURS = {
    "page": (255, 255, 255),
    "title": (20, 20, 20),
    "rule": (210, 210, 210),
    "box": (242, 242, 242),
    "caption": (45, 45, 45),
    "flag": (214, 110, 0),  # orange: something a reviewer should look at
    "failure": (198, 40, 40),  # red: the image failed or was rejected
}
FAILURE_WORDS = ("failed", "error", "rejected")


@dataclass
class Tile:
    """One thumbnail: RGB or RGBA uint8 image (a checkerboard shows behind alpha), caption lines and flags."""

    image: np.ndarray
    caption: list[str] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)


@lru_cache(maxsize=8)
def _font(size: int, bold: bool = False) -> ImageFont.FreeTypeFont | ImageFont.ImageFont:
    """DejaVu Sans when installed (covers accents in product titles), else Pillow's built-in font."""
    for name in ("DejaVuSans-Bold.ttf" if bold else "DejaVuSans.ttf", "DejaVuSans.ttf"):
        try:
            return ImageFont.truetype(name, size)
        except OSError:
            continue
    return ImageFont.load_default(size=size)


def check_inputs(title: str, tiles: Sequence[Tile], columns: int, tile_width: int) -> None:
    """Raise a ValueError naming the bad argument or tile."""
    if not isinstance(title, str):
        raise ValueError(f"title must be a string; got {type(title).__name__}.")
    if columns < 1:
        raise ValueError(f"columns must be at least 1; got {columns}.")
    if not 64 <= tile_width <= 2048:
        raise ValueError(f"tile_width must be 64..2048 pixels; got {tile_width}.")
    for index, tile in enumerate(tiles):
        image = tile.image
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8:
            raise ValueError(
                f"tile {index}: image must be a uint8 array; got {getattr(image, 'dtype', type(image))}."
            )
        if image.ndim != 3 or image.shape[2] not in (3, 4) or image.shape[0] == 0 or image.shape[1] == 0:
            raise ValueError(f"tile {index}: image must be RGB or RGBA (H, W, 3|4); got shape {image.shape}.")


def make_contact_sheet(
    title: str, tiles: Sequence[Tile], columns: int = 4, tile_width: int = 256
) -> np.ndarray:
    """A uint8 RGB sheet: title header, then rows of thumbnails with captions and flags under each."""
    check_inputs(title, tiles, columns, tile_width)
    # 1. Measure: page width from the columns, each row as tall as its tallest caption block.
    tile_height = round(tile_width * TILE_ASPECT)
    title_font, text_font = _font(max(14, tile_width // 11), bold=True), _font(max(10, tile_width // 20))
    line_height = _line_height(text_font)
    header_height = _line_height(title_font) + 2 * MARGIN
    blocks = [_text_block(tile, text_font, tile_width) for tile in tiles]
    rows = [list(range(start, min(start + columns, len(tiles)))) for start in range(0, len(tiles), columns)]
    row_heights = [
        tile_height + 6 + line_height * max((len(blocks[i]) for i in row), default=0) for row in rows
    ]
    width = 2 * MARGIN + columns * tile_width + (columns - 1) * GAP
    height = (
        header_height
        + sum(row_heights)
        + GAP * max(0, len(rows) - 1)
        + MARGIN
        + (line_height if not tiles else 0)
    )
    page = Image.new("RGB", (width, height), COLOURS["page"])
    draw = ImageDraw.Draw(page)
    # 2. Header: the title (shortened to fit) over a thin rule.
    draw.text(
        (MARGIN, MARGIN), _fit(title, title_font, width - 2 * MARGIN), font=title_font, fill=COLOURS["title"]
    )
    draw.line(
        [(MARGIN, header_height - MARGIN // 2), (width - MARGIN, header_height - MARGIN // 2)],
        COLOURS["rule"],
    )
    if not tiles:
        draw.text((MARGIN, header_height), "(no images)", font=text_font, fill=COLOURS["caption"])
    # 3. Tiles: thumbnail fitted in its box, then caption lines and flags.
    top = header_height
    for row, row_height in zip(rows, row_heights, strict=True):
        for column, index in enumerate(row):
            left = MARGIN + column * (tile_width + GAP)
            page.paste(Image.fromarray(_thumbnail(tiles[index].image, tile_width, tile_height)), (left, top))
            y = top + tile_height + 4
            for text, colour in blocks[index]:
                draw.text((left, y), text, font=text_font, fill=colour)
                y += line_height
        top += row_height + GAP
    return np.asarray(page).copy()


def _line_height(font: ImageFont.FreeTypeFont | ImageFont.ImageFont) -> int:
    """Pixel height of one text line including spacing."""
    left, top, right, bottom = font.getbbox("Ag|")
    return int(bottom - min(top, 0)) + 4


def _fit(text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int) -> str:
    """text shortened with an ellipsis until it fits width pixels."""
    if font.getlength(text) <= width:
        return text
    while text and font.getlength(text + "…") > width:
        text = text[:-1]
    return text + "…"


def _wrap(
    text: str, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int, max_lines: int
) -> list[str]:
    """Greedy word wrap to width pixels, at most max_lines (the last one ellipsised)."""
    lines: list[str] = []
    current = ""
    for word in text.split():
        candidate = f"{current} {word}".strip()
        if font.getlength(candidate) <= width or not current:
            current = candidate
        else:
            lines.append(current)
            current = word
    lines.append(current)
    if len(lines) > max_lines:
        lines = lines[: max_lines - 1] + [" ".join(lines[max_lines - 1 :])]
    return [_fit(line, font, width) for line in lines]


def _text_block(
    tile: Tile, font: ImageFont.FreeTypeFont | ImageFont.ImageFont, width: int
) -> list[tuple[str, tuple[int, int, int]]]:
    """(line, colour) pairs: caption lines, then each flag wrapped to at most three lines."""
    block = [(_fit(str(line), font, width), COLOURS["caption"]) for line in tile.caption]
    for flag in tile.flags:
        text = str(flag)
        colour = COLOURS["failure"] if any(w in text.lower() for w in FAILURE_WORDS) else COLOURS["flag"]
        block.extend((line, colour) for line in _wrap("! " + text, font, width, max_lines=3))
    return block


def _thumbnail(image: np.ndarray, box_width: int, box_height: int) -> np.ndarray:
    """The image fitted (area resampling) and centred in a grey box; alpha shown over a checkerboard."""
    height, width = image.shape[:2]
    scale = min(box_width / width, box_height / height)
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_CUBIC
    small = cv2.resize(image, size, interpolation=interpolation).reshape(size[1], size[0], image.shape[2])
    if small.shape[2] == 4:
        yy, xx = np.indices(small.shape[:2])
        checker = np.where(((yy // CHECKER_PX + xx // CHECKER_PX) % 2 == 0)[..., None], 255, 217).astype(
            np.float32
        )
        alpha = small[..., 3:4].astype(np.float32) / 255.0
        small = np.round(small[..., :3] * alpha + checker * (1.0 - alpha)).astype(np.uint8)
    box = np.empty((box_height, box_width, 3), dtype=np.uint8)
    box[...] = COLOURS["box"]
    top, left = (box_height - size[1]) // 2, (box_width - size[0]) // 2
    box[top : top + size[1], left : left + size[0]] = small
    return box
