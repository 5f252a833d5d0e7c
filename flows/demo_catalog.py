"""A generated demo catalogue (synthetic flat-lays with an onmodel CSV), for machines without photos."""

from __future__ import annotations

import csv
from pathlib import Path

from pipelines.image_io import write_png_atomic
from pipelines.synthetic import make_flatlay, sample_specs

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


def write_demo_catalog(folder: Path, products: int = 12, seed: int = 7, size: int = 768) -> Path:
    """Write `products` generated flat-lays and a products.csv naming them; returns the CSV path."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, spec in enumerate(sample_specs(products, seed=seed, sizes=(size,))):
        image, _mask = make_flatlay(spec)
        category, title = CATEGORY_BY_KIND.get(spec.kind, ("t-shirt", "Garment"))
        name = f"demo_{index:03d}.png"
        write_png_atomic(folder / name, image, compress_level=1)
        rows.append(
            {
                "sku": f"DEMO-{index:03d}",
                "image": name,
                "category": category,
                "title": f"{title} ({spec.group.replace('_', ' ')})",
                "color": colour_name(spec.garment_rgb),
            }
        )
    csv_path = folder / "products.csv"
    with csv_path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["sku", "image", "category", "title", "color"])
        writer.writeheader()
        writer.writerows(rows)
    return csv_path
