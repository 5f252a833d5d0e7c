"""Shared fixtures for catalogue tests: a folder with tiny PNG files, and a CSV writer.

Helpers are fixtures (not imports) because other test folders have their own conftest/helpers modules.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from PIL import Image

IMAGE_NAMES = ("img1.png", "img2.png", "img3.png", "img4.png")


def _write_png(path: Path, size: tuple[int, int] = (4, 4)) -> Path:
    """Write a tiny RGB PNG (the catalogue only checks that the file exists)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, (200, 30, 30)).save(path)
    return path


def _write_csv(
    folder: Path, content: str | bytes, encoding: str = "utf-8", name: str = "products.csv"
) -> Path:
    """Write CSV text (encoded) or raw bytes; newlines are written exactly as given."""
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


@pytest.fixture
def write_png() -> Callable[..., Path]:
    """The tiny-PNG writer."""
    return _write_png


@pytest.fixture
def write_csv() -> Callable[..., Path]:
    """The CSV writer: write_csv(folder, text_or_bytes, encoding='utf-8', name='products.csv')."""
    return _write_csv


@pytest.fixture
def catalog_dir(tmp_path: Path) -> Path:
    """A folder with img1.png .. img4.png, where test CSVs are written."""
    for name in IMAGE_NAMES:
        _write_png(tmp_path / name)
    return tmp_path
