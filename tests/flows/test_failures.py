"""Failure isolation and retries: transient faults retry, bad input never does, one bad job sinks nothing."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from flows import caches
from flows.produce import DEFAULT_MAX_WORKERS, produce_catalog, run_catalog
from pipelines.errors import DeviceLostError, RenderError
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
            raise RenderError("renderer exploded on SKU-01")
        return original(self, jobs)

    monkeypatch.setattr(DraftRenderer, "__call__", broken_for_one_sku)
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert summary.counts["produced"] == 2 and summary.counts["failed"] == 2
    assert summary.exit_code() == 1
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    states = {(r["kind"], r["sku"]): r["state"] for r in manifest if r["kind"] == "product"}
    assert states == {("product", "SKU-00"): "produced", ("product", "SKU-01"): "failed"}
    failed_jobs = [r for r in manifest if r["kind"] == "job" and r["state"] == "failed"]
    assert all("renderer exploded on SKU-01" in r["reason"] for r in failed_jobs)
    assert "renderer exploded" in (tmp_path / "out" / "index.html").read_text()
    # 4 jobs in batches of 3 + 1. Whichever product comes first, the 3-batch holds an SKU-01 job and is
    # retried one by one (1 + 3 calls); the 1-batch is rendered once. A Prefect retry would add calls.
    assert sorted(calls) == [1, 1, 1, 1, 3]


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
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert summary.counts["failed"] == 0 and summary.counts["produced"] == 4
    assert failures["left"] == 0


def test_failed_jobs_are_retried_by_the_next_run(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, profile = catalogue
    original = DraftRenderer.__call__

    def broken(self: DraftRenderer, jobs: list) -> list:
        raise RenderError("no")

    monkeypatch.setattr(DraftRenderer, "__call__", broken)
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert first.counts["failed"] == 4
    monkeypatch.setattr(DraftRenderer, "__call__", original)
    second = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert second.counts["produced"] == 4 and second.counts["failed"] == 0


def test_a_transient_fault_that_persists_fails_the_jobs_after_the_retries(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path, _profile = catalogue
    profile = small_profile(
        tmp_path, variants=1, run={"max_workers": 2, "task_retries": 2, "retry_delay_s": 0}
    )
    calls: list[int] = []

    def lost(self: DraftRenderer, jobs: list) -> list:
        calls.append(len(jobs))
        raise DeviceLostError("cuda:0 fell off the bus")

    monkeypatch.setattr(DraftRenderer, "__call__", lost)
    report = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert report.counts["failed"] == 4 and report.counts["produced"] == 0
    # Retried as batches (never the one-by-one pass: transient, not the job) until the device had failed 5 times
    # in a row (run.device_failures): then it was taken out and the jobs still waiting failed at once.
    assert len(calls) == 5
    reasons = {job.reason for product in report.products for job in product.jobs}
    assert reasons <= {
        "render failed after 2 retries: DeviceLostError: cuda:0 fell off the bus",
        "no device left (cpu: 5 errors in a row (last: DeviceLostError: cuda:0 fell off the bus))",
    }
    assert "no device left" in " ".join(reasons)
    (device,) = report.devices
    assert device.state == "taken out" and device.errors == 5 and device.batches == 0


def test_a_bug_fails_the_run_loudly(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Only domain errors become failed jobs; anything else is a bug and must not be filed as a job failure."""
    csv_path, profile = catalogue

    def buggy(self: DraftRenderer, jobs: list) -> list:
        raise KeyError("a bug, not a bad job")

    monkeypatch.setattr(DraftRenderer, "__call__", buggy)
    with pytest.raises(KeyError, match="a bug"):
        run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))


def test_failed_jobs_end_the_flow_run_failed_after_the_report_is_written(
    catalogue: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Started as a deployment or serve would start it: the flow itself, not run_catalog."""
    csv_path, profile = catalogue

    def broken(self: DraftRenderer, jobs: list) -> list:
        raise RenderError("no")

    monkeypatch.setattr(DraftRenderer, "__call__", broken)
    state = produce_catalog(str(csv_path), str(profile), str(tmp_path / "out"), return_state=True)
    assert state.is_failed() and "4 job(s) failed" in (state.message or "")
    report = state.result(raise_on_failure=False)
    assert report.counts["failed"] == 4
    assert (tmp_path / "out" / "manifest.csv").is_file() and (tmp_path / "out" / "index.html").is_file()
    assert (tmp_path / "out" / "runs" / report.run_id / "summary.json").is_file()
    monkeypatch.undo()
    caches._renderer.cache_clear()
    state = produce_catalog(str(csv_path), str(profile), str(tmp_path / "out"), return_state=True)
    assert state.is_completed() and state.result().counts["produced"] == 4


def test_the_flow_never_runs_on_an_unbounded_thread_pool() -> None:
    """Prefect's default ThreadPoolTaskRunner has no max_workers; ours always has one, however it is started."""
    # No public accessor in Prefect 3.8; its default would be sys.maxsize.
    assert produce_catalog.task_runner._max_workers == DEFAULT_MAX_WORKERS <= 4
