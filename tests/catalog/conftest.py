"""Shared fixtures for catalogue tests: a folder with tiny PNG files, and a CSV writer.

Helpers are fixtures (not imports) because other test folders have their own conftest/helpers modules.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
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


# State store backends ------------------------------------------------------------------------------------------
# Every state-store test runs on a SQLite file and, when ONMODEL_TEST_POSTGRES_URL names a PostgreSQL database
# (.ci/run starts one), on a fresh database of that server; without it the PostgreSQL case is skipped, saying so.
POSTGRES_URL_ENV = "ONMODEL_TEST_POSTGRES_URL"


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A URL for an empty state store: a SQLite file under tmp_path, or a new PostgreSQL database."""
    if request.param == "sqlite":
        (tmp_path / "out").mkdir(exist_ok=True)
        yield f"sqlite:///{tmp_path / 'out' / 'state.sqlite'}"
        return
    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL case: set {POSTGRES_URL_ENV} (bash .ci/postgres.sh start DIR prints it)")
    with fresh_postgres_database(admin_url) as url:
        yield url


@contextmanager
def fresh_postgres_database(admin_url: str) -> Iterator[str]:
    """A new, empty database on the server of admin_url, dropped afterwards (with any connections left)."""
    import psycopg
    from sqlalchemy.engine import make_url

    name = f"onmodel_test_{uuid.uuid4().hex[:12]}"
    url = make_url(admin_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
