"""Generated catalogues and small profiles for flow tests."""

from __future__ import annotations

import csv
import dataclasses
from pathlib import Path

import yaml

from flows.profile import CONFIG_DIR
from pipelines.image_io import write_png_atomic
from pipelines.synthetic import make_flatlay, sample_specs

KIND_CATEGORY = {
    "tee": "t-shirt",
    "shirt": "shirt",
    "tank": "tank top",
    "dress": "dress",
    "trousers": "trousers",
    "skirt": "skirt",
}


def write_flatlays(folder: Path, count: int, seed: int = 3, size: int = 384) -> list[dict[str, str]]:
    """Generated flat-lay PNGs in `folder`; returns onmodel CSV rows for them (sku, image, category, title)."""
    folder.mkdir(parents=True, exist_ok=True)
    rows = []
    for index, spec in enumerate(sample_specs(count, seed=seed, sizes=(size,))):
        spec = dataclasses.replace(spec, width=size * 3 // 4, height=size)
        image, _ = make_flatlay(spec)
        name = f"g{index:02d}.png"
        write_png_atomic(folder / name, image)
        rows.append(
            {
                "sku": f"SKU-{index:02d}",
                "image": name,
                "category": KIND_CATEGORY[spec.kind],
                "title": f"Generated {spec.kind}",
            }
        )
    return rows


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    columns = columns or ["sku", "image", "category", "title"]
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=columns, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
    return path


def small_profile(folder: Path, **overrides: object) -> Path:
    """The demo profile at a small canvas with fewer jobs, so flow tests stay fast."""
    data = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())
    data["canvas"] = {"width": 192, "height": 288}
    data["variants"] = 2
    data["poses"] = {
        "upper_body": ["front", "three_quarter_left"],
        "lower_body": ["front", "walking"],
        "full_body": ["front", "walking"],
    }
    data["renderer"]["batch_size"] = 3
    data.update(overrides)
    path = folder / "profile.yaml"
    path.write_text(yaml.safe_dump(data))
    return path
