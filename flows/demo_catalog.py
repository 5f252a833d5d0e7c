"""A generated demo catalogue (synthetic flat-lays with an onmodel CSV), for machines without photos."""

from __future__ import annotations

import csv
from dataclasses import replace
from pathlib import Path

from pipelines.image_io import write_jpeg_atomic, write_png_atomic
from pipelines.testing.flatlays import make_flatlay, sample_specs

CATEGORY_BY_KIND = {
    "tee": ("t-shirt", "Cotton crew tee"),
    "shirt": ("shirt", "Oxford collar shirt"),
    "tank": ("tank top", "Ribbed strap tank"),
    "dress": ("dress", "Shift dress"),
    "trousers": ("trousers", "Straight-leg trousers"),
    "skirt": ("skirt", "A-line midi skirt"),
}


COLOUR_NAMES = {
    "white": (245, 245, 245),
    "cream": (240, 228, 200),
    "grey": (150, 150, 150),
    "black": (25, 25, 25),
    "red": (200, 40, 40),
    "orange": (230, 130, 30),
    "yellow": (230, 210, 40),
    "green": (40, 160, 70),
    "blue": (40, 80, 200),
    "purple": (130, 50, 170),
    "pink": (230, 120, 170),
    "brown": (120, 75, 40),
}


def colour_name(rgb: tuple[int, int, int]) -> str:
    """The nearest everyday colour word (for captions and prompts)."""
    return min(
        COLOUR_NAMES, key=lambda name: sum((a - b) ** 2 for a, b in zip(COLOUR_NAMES[name], rgb, strict=True))
    )


def write_flatlays(
    folder: Path,
    count: int,
    *,
    seed: int = 7,
    width: int = 576,
    height: int = 768,
    sku_format: str = "DEMO-{:03d}",
    file_format: str = "demo_{:03d}.png",
    jpeg_quality: int | None = None,
) -> list[dict[str, str]]:
    """Write `count` generated flat-lay PNGs into `folder`; returns onmodel CSV rows naming them."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, spec in enumerate(sample_specs(count, seed=seed, sizes=(max(width, height),))):
        spec = replace(spec, width=width, height=height)
        if jpeg_quality is not None:
            spec = replace(spec, jpeg_quality=jpeg_quality)
        image, _mask = make_flatlay(spec)
        category, title = CATEGORY_BY_KIND[spec.kind]
        name = file_format.format(index)
        if name.endswith((".jpg", ".jpeg")):
            write_jpeg_atomic(folder / name, image, quality=92)
        else:
            write_png_atomic(folder / name, image, compress_level=1)
        rows.append(
            {
                "sku": sku_format.format(index),
                "image": name,
                "category": category,
                "title": f"{title} ({spec.group.replace('_', ' ')})",
                "color": colour_name(spec.garment_rgb),
            }
        )
    return rows


def write_catalog_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    """An onmodel-columns CSV of `rows`."""
    columns = columns or ["sku", "image", "category", "title", "color"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def write_demo_catalog(folder: Path, products: int = 12, seed: int = 7) -> Path:
    """Write `products` generated flat-lays and a products.csv naming them; returns the CSV path."""
    rows = write_flatlays(folder, products, seed=seed)
    return write_catalog_csv(folder / "products.csv", rows)
