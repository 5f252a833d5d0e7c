"""`onmodel status`: the catalogue's states and every run, read from an output folder."""

from __future__ import annotations

from pathlib import Path

from pipelines.production.layout import LocalStorage
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RejectRecord
from pipelines.production.report import publish_report
from pipelines.production.status import folder_status
from tests.pipelines.production.reports import make_report


def _job(sku: str, state: str) -> JobOutcome:
    return JobOutcome(f"{sku}__front__v0", sku, "front", 0, 1, state)  # type: ignore[arg-type]


def test_status_counts_latest_states_and_lists_runs(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    assert folder_status(storage).describe() == "no onmodel run has written to this folder yet."
    first = make_report(
        [
            ProductOutcome("A", 2, "produced", jobs=[_job("A", "produced")]),
            ProductOutcome("B", 3, "failed", jobs=[_job("B", "failed")]),
        ],
        [RejectRecord(4, "C", "category", "unknown")],
        run_id="20261201T020000000000Z",
    )
    publish_report(first, storage)
    second = make_report(
        [ProductOutcome("B", 3, "produced", jobs=[_job("B", "produced")])],
        [],
        run_id="20261202T020000000000Z",
    )
    publish_report(second, storage)
    (tmp_path / "runs" / "20261130T000000000000Z").mkdir()
    (tmp_path / "runs" / "20261130T000000000000Z" / "summary.json").write_text('{"counts": {}}')  # old layout
    status = folder_status(storage)
    assert status.products == {"produced": 2} and status.jobs == {"produced": 2}
    assert [run.run_id for run in status.runs] == [
        "20261130T000000000000Z",
        "20261201T020000000000Z",
        "20261202T020000000000Z",
    ]
    text = status.describe()
    assert text.startswith("catalogue: 2 products (produced 2); 2 images (produced 2)")
    assert "products 2, produced 1, skipped 0, rejected 1, failed 1" in text
    assert "older onmodel" in text
