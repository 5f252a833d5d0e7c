"""Failure isolation and retries: transient faults retry, bad input never does, one bad job sinks nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flows import caches
from flows.produce import run_catalog
from pipelines.renderers.draft import DraftRenderer
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture()
def catalogue(tmp_path: Path) -> tuple[Path, Path]:
    rows = write_flatlays(tmp_path / "in", 2, seed=5)
    profile = small_profile(tmp_path, variants=1)
    return write_csv(tmp_path / "in" / "products.csv", rows), profile


@pytest.fixture(autouse=True)
def fresh_renderers() -> None:
    caches._renderer.cache_clear()


def test_a_job_that_keeps_failing_is_isolated_and_recorded(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, profile = catalogue
    original = DraftRenderer.__call__
    calls: list[int] = []

    def broken_for_one_sku(self: DraftRenderer, jobs: list) -> list:
        calls.append(len(jobs))
        if any(job.sku == "SKU-01" for job in jobs):
            raise RuntimeError("renderer exploded on SKU-01")
        return original(self, jobs)

    monkeypatch.setattr(DraftRenderer, "__call__", broken_for_one_sku)
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    assert summary.counts["produced"] == 2 and summary.counts["failed"] == 2
    assert summary.exit_code == 1
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    states = {(r["kind"], r["sku"]): r["state"] for r in manifest if r["kind"] == "product"}
    assert states == {("product", "SKU-00"): "produced", ("product", "SKU-01"): "failed"}
    failed_jobs = [r for r in manifest if r["kind"] == "job" and r["state"] == "failed"]
    assert all("renderer exploded on SKU-01" in r["reason"] for r in failed_jobs)
    assert "renderer exploded" in (tmp_path / "out" / "index.html").read_text()
    # Not transient: no Prefect retry, only the one-by-one isolation pass.
    assert len(calls) <= 1 + 4


def test_transient_fault_is_retried_then_produced(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, profile = catalogue
    original = DraftRenderer.__call__
    failures = {"left": 1}

    def flaky(self: DraftRenderer, jobs: list) -> list:
        if failures["left"]:
            failures["left"] -= 1
            raise TimeoutError("device did not answer")
        return original(self, jobs)

    monkeypatch.setattr(DraftRenderer, "__call__", flaky)
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    assert summary.counts["failed"] == 0 and summary.counts["produced"] == 4
    assert failures["left"] == 0


def test_failed_jobs_are_retried_by_the_next_run(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, profile = catalogue
    original = DraftRenderer.__call__

    def broken(self: DraftRenderer, jobs: list) -> list:
        raise RuntimeError("no")

    monkeypatch.setattr(DraftRenderer, "__call__", broken)
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    assert first.counts["failed"] == 4
    monkeypatch.setattr(DraftRenderer, "__call__", original)
    second = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    assert second.counts["produced"] == 4 and second.counts["failed"] == 0
