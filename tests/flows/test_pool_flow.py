"""The flow on a pool of fake devices: chunked task runs, exact per-product outcomes, utilisation in every report."""

from __future__ import annotations

import asyncio
import csv
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prefect.client.orchestration import get_client
from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

from flows import caches
from flows.produce import produce_catalog, run_catalog
from pipelines.errors import RenderError
from pipelines.renderers.draft import DraftRenderer
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture(autouse=True)
def fresh_renderers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    caches._renderer.cache_clear()
    monkeypatch.setenv("ONMODEL_LOCK_DIR", str(tmp_path / "locks"))


def catalogue(tmp_path: Path, products: int) -> Path:
    rows = write_flatlays(tmp_path / "in", products, size=256)
    return write_csv(tmp_path / "in" / "products.csv", rows)


def task_run_names(flow_run_id: Any) -> list[str]:
    async def read() -> list[str]:
        async with get_client() as client:
            runs = await client.read_task_runs(
                flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id]))
            )
            return sorted(run.name for run in runs)

    return asyncio.run(read())


def test_a_two_device_run_is_a_task_run_per_chunk_and_reports_each_device(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path = catalogue(tmp_path, 5)
    profile = small_profile(tmp_path, run={"max_workers": 2, "chunk_size": 2, "devices": "cpu:0,cpu:1"})
    loads: Counter[str] = Counter()
    original = caches.create_renderer

    def counting(name: str, options: Any, device: str) -> Any:
        loads[device] += 1
        return original(name, options, device)

    monkeypatch.setattr(caches, "create_renderer", counting)
    state = produce_catalog(str(csv_path), str(profile), str(tmp_path / "out"), return_state=True)
    report = state.result()
    assert report.counts["produced"] == 5 * 4 and report.counts["failed"] == 0
    assert loads == Counter({"cpu:0": 1, "cpu:1": 1})  # one resident renderer per device for the whole run
    # 5 products in chunks of 2: three task runs, not 5 prepare + 7 render + 5 sheet task runs.
    assert task_run_names(state.state_details.flow_run_id) == ["chunk-SKU-00", "chunk-SKU-02", "chunk-SKU-04"]
    devices = {usage.device: usage for usage in report.devices}
    assert set(devices) == {"cpu:0", "cpu:1"}
    assert sum(u.jobs for u in devices.values()) == 20 and all(u.state == "active" for u in devices.values())
    assert all(u.wall_s == report.seconds and 0 < u.utilisation < 1 for u in devices.values())
    summary = json.loads((tmp_path / "out" / "runs" / report.run_id / "summary.json").read_text())
    assert {d["device"] for d in summary["devices"]} == {"cpu:0", "cpu:1"}
    assert all(0 < d["utilisation"] < 1 for d in summary["devices"])
    index = (tmp_path / "out" / "index.html").read_text()
    assert "device cpu:0" in index and "% busy" in index


def test_per_product_outcomes_stay_exact_across_chunks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    csv_path = catalogue(tmp_path, 6)
    (tmp_path / "in" / "g01.png").write_bytes(b"%PDF-1.4 not a photo")
    profile = small_profile(
        tmp_path, run={"chunk_size": 2, "devices": ["cpu:0", "cpu:1"], "retry_delay_s": 0}
    )
    original = DraftRenderer.__call__

    def refuses_sku_03(self: DraftRenderer, jobs: list) -> list:
        if any(job.sku == "SKU-03" for job in jobs):
            raise RenderError("SKU-03 cannot be drawn")
        return original(self, jobs)

    monkeypatch.setattr(DraftRenderer, "__call__", refuses_sku_03)
    report = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    states = {product.sku: product.state for product in report.products}
    assert states == {
        "SKU-00": "produced",
        "SKU-01": "rejected",
        "SKU-02": "produced",
        "SKU-03": "failed",
        "SKU-04": "produced",
        "SKU-05": "produced",
    }
    assert report.counts == {**report.counts, "produced": 16, "failed": 4, "rejected": 1, "jobs": 20}
    assert [reject.sku for reject in report.rejects] == ["SKU-01"]
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    jobs = [row for row in manifest if row["kind"] == "job"]
    assert len(jobs) == len({row["job_id"] for row in jobs}) == 20
    assert {row["state"] for row in jobs if row["sku"] == "SKU-03"} == {"failed"}
    assert all("SKU-03 cannot be drawn" in row["reason"] for row in jobs if row["sku"] == "SKU-03")
    # The next run: done jobs are skipped and reported, the failed ones are tried again.
    monkeypatch.setattr(DraftRenderer, "__call__", original)
    again = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), devices=["cpu:1"])
    assert again.counts["skipped"] == 16 and again.counts["produced"] == 4 and again.counts["failed"] == 0
    assert [usage.device for usage in again.devices] == ["cpu:1"]


def test_device_on_the_command_line_is_a_one_device_pool(tmp_path: Path) -> None:
    csv_path = catalogue(tmp_path, 1)
    profile = small_profile(tmp_path, run={"devices": "cpu:0,cpu:1"})
    report = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), device="cpu:1")
    assert [usage.device for usage in report.devices] == ["cpu:1"] and report.counts["produced"] == 4
