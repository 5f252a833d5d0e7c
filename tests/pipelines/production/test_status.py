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


def test_status_adds_the_state_stores_counts_per_state_and_run(tmp_path: Path, monkeypatch) -> None:
    from catalog.state import STATE_URL_ENV, open_job_store

    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    storage = LocalStorage(tmp_path)
    assert folder_status(storage).store is None
    assert not (tmp_path / "state.sqlite").exists()  # status never creates a store
    key = "images/master/A/A__front__v0.png"
    with open_job_store(tmp_path / "state.sqlite") as store:
        store.record_produced("A/front/0", sku="A", image_hash="h", fingerprint="f", outputs=[key], seed=1)
        store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
        store.record_failed("B/front/0", sku="B", image_hash="h", fingerprint="f", reason="OOM", run_id="n1")
        store.record_produced(
            "C/front/0", sku="C", image_hash="h", fingerprint="f", outputs=[key], seed=1, run_id="n1"
        )
        store.record_run_finished("n1", counts={"produced": 1, "failed": 1}, status="failed")
        store.mark_seen(["A", "B", "C"], "n1")
        store.record_decision("C/front/0", "reject", reviewer="ana", reason="hem cut off")
    status = folder_status(storage)
    assert status.store is not None
    assert status.store.jobs == {"produced": 2, "failed": 1, "queued": 0}
    assert [(run.run_id, run.trigger, run.status, run.jobs["failed"]) for run in status.store.runs] == [
        ("n1", "nightly", "failed", 1),
        ("", "", "", 0),
    ]
    text = status.describe()
    assert text.startswith("no run report in this folder.\nstate store: ")
    assert (
        "jobs: 3 (failed 1, produced 2, queued 0); products: 3 (0 retired); reviews: approve 0, reject 1"
        in text
    )
    assert "n1  nightly failed  (failed 1, produced 1, queued 0)" in text
    assert "(before run ids were recorded)  no run record  (failed 0, produced 1, queued 0)" in text


def test_status_lists_retired_products_and_retired_job_files(tmp_path: Path, monkeypatch) -> None:
    from catalog.state import STATE_URL_ENV, open_job_store

    monkeypatch.delenv(STATE_URL_ENV, raising=False)
    storage = LocalStorage(tmp_path)
    with open_job_store(tmp_path / "state.sqlite") as store:
        store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
        store.mark_seen(["A", "B", "C"], "n1")
        store.record_run_started("n2", profile="demo", csv="catalog.csv", trigger="nightly")
        assert store.retire_missing(["A"], "n2") == ["B", "C"]
    storage.write_bytes("retired/n2/images/master/A/A__walking__v0.png", b"png")
    status = folder_status(storage)
    assert status.store is not None and status.store.retired == 2
    assert [key for key, _, _ in status.store.retired_products] == ["C", "B"]
    text = status.describe()
    assert "products: 3 (2 retired)" in text
    assert "retired products (no longer in the catalogue; their files are kept):" in text
    assert "    B  retired by run n2 at " in text
    assert "retired/: 1 files of jobs their products no longer plan (onmodel prune deletes them)" in text
