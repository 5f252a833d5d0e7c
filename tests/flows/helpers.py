"""Generated catalogues and small profiles for flow tests."""

from __future__ import annotations

from pathlib import Path

import yaml

from configs import config_root
from flows.demo_catalog import write_catalog_csv
from flows.demo_catalog import write_flatlays as write_generated


def write_flatlays(folder: Path, count: int, seed: int = 3, size: int = 384) -> list[dict[str, str]]:
    """Generated flat-lays g00.png, g01.png ... with SKUs SKU-00, SKU-01 ...; returns their CSV rows."""
    return write_generated(
        folder,
        count,
        seed=seed,
        width=size * 3 // 4,
        height=size,
        sku_format="SKU-{:02d}",
        file_format="g{:02d}.png",
    )


def write_csv(path: Path, rows: list[dict[str, str]], columns: list[str] | None = None) -> Path:
    return write_catalog_csv(path, rows, columns)


def small_profile(folder: Path, **overrides: object) -> Path:
    """The demo profile at a small canvas with fewer jobs, so flow tests stay fast."""
    data = yaml.safe_load((config_root() / "demo.yaml").read_text())
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
