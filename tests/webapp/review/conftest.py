"""A produced output folder to review (a real run of the demo profile), and the app over it."""

from __future__ import annotations

import argparse
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from prefect.testing.utilities import prefect_test_harness

from tests.flows.helpers import small_profile, write_csv, write_flatlays

HOSTILE_TITLE = '<script>alert("x")</script><img src=x onerror=alert(1)> & "quotes"'


@pytest.fixture(scope="session", autouse=True)
def prefect_api() -> Iterator[None]:
    with prefect_test_harness(server_startup_timeout=120):
        yield


def produce(folder: Path, products: int = 2) -> tuple[Path, Path, Path]:
    """Run a small catalogue into folder/out; (csv, profile, out)."""
    from flows.produce import run_catalog

    rows = write_flatlays(folder / "in", products)
    rows[0]["title"] = HOSTILE_TITLE
    csv_path = write_csv(folder / "in" / "products.csv", rows)
    profile = small_profile(folder, variants=1)
    run_catalog(str(csv_path), str(profile), str(folder / "out"))
    return csv_path, profile, folder / "out"


def review_args(out: Path, **overrides: object) -> argparse.Namespace:
    values: dict[str, object] = {
        "out": str(out), "host": "127.0.0.1", "port": 0, "reviewer": "ana", "token_env": None, "users": None,
        "state_url": None, "hash_password": False,
    }  # fmt: skip
    values.update(overrides)
    return argparse.Namespace(**values)


@pytest.fixture
def produced(tmp_path: Path) -> tuple[Path, Path, Path]:
    return produce(tmp_path)


@pytest.fixture
def client(produced: tuple[Path, Path, Path]) -> TestClient:
    from webapp.review.command import build

    return TestClient(build(review_args(produced[2])), base_url="http://127.0.0.1:8600")
