"""The run book: batches across products, products complete once all their jobs are in, nothing lost."""

from __future__ import annotations

import gc
import json
import os
import pickle
import time
import weakref
from pathlib import Path
from unittest.mock import patch

import pytest

from catalog.schema import GarmentClass, ImageRef, ProductRecord
from pipelines.production.book import ProgressEvent, RunBook
from pipelines.production.fsspec_storage import FsspecStorage, spool_file, spool_files
from pipelines.production.layout import LocalStorage, OutputLayout
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RejectRecord, summary_counts
from pipelines.production.plan import JobPlan, job_id_for
from pipelines.production.spool import SPOOL_KEEP_S, OutcomeSpool, SpooledOutcomes, remove_stale_spools
from pipelines.production.stages import BatchItem, PreparedProduct

POSES = ("front", "walking")


def _record(sku: str, row: int) -> ProductRecord:
    return ProductRecord(
        sku, ImageRef(raw=f"{sku}.png", path=Path(f"{sku}.png")), "t-shirt", GarmentClass.UPPER, row
    )


def _prepared(sku: str, row: int, todo: int, skipped: int = 0) -> PreparedProduct:
    plans = [
        JobPlan(job_id_for(sku, POSES[i % 2], i // 2), sku, POSES[i % 2], i // 2, i)
        for i in range(todo + skipped)
    ]
    done = [JobOutcome(p.job_id, sku, p.pose, p.variant, p.seed, "skipped") for p in plans[todo:]]
    return PreparedProduct(
        _record(sku, row), image_hash="h", flags=["touches_border"], todo=plans[:todo], skipped=done
    )


def _book(
    records: list[ProductRecord], batch_size: int = 3, events: list[ProgressEvent] | None = None
) -> RunBook:
    return RunBook(
        records,
        batch_size=batch_size,
        default_poses=lambda garment_class: POSES,
        on_progress=events.append if events is not None else None,
    )


def _produced(batch: list[BatchItem]) -> list[JobOutcome]:
    return [
        JobOutcome(i.plan.job_id, i.plan.sku, i.plan.pose, i.plan.variant, i.plan.seed, "produced")
        for i in batch
    ]


def test_batches_fill_across_products_and_the_rest_is_flushed() -> None:
    book = _book([_record("A", 2), _record("B", 3)])
    assert book.product_prepared(_prepared("A", 2, todo=2)) == []
    [batch] = book.product_prepared(_prepared("B", 3, todo=2))
    assert [(i.plan.sku, i.plan.job_id) for i in batch] == [
        ("A", "A__front__v0"),
        ("A", "A__walking__v0"),
        ("B", "B__front__v0"),
    ]
    [rest] = book.remaining_batches()
    assert [i.plan.job_id for i in rest] == ["B__walking__v0"]
    assert book.remaining_batches() == []


def test_a_product_completes_once_its_last_job_is_in_with_jobs_in_pose_order() -> None:
    book = _book([_record("A", 2)], batch_size=2)
    batches = book.product_prepared(_prepared("A", 2, todo=4))
    assert len(batches) == 2
    book.batch_done(list(reversed(_produced(batches[1]))))
    assert book.take_complete() == [] and not book.finished
    book.batch_done(_produced(batches[0]))
    [(product, prepared)] = book.take_complete()
    assert product.state == "produced" and product.flags == ["touches_border"] and prepared.record.sku == "A"
    assert [(j.pose, j.variant) for j in product.jobs] == [
        ("front", 0),
        ("front", 1),
        ("walking", 0),
        ("walking", 1),
    ]
    assert book.take_complete() == [] and book.finished


def test_a_product_with_nothing_to_do_is_complete_at_once_as_skipped() -> None:
    book = _book([_record("A", 2)])
    assert book.product_prepared(_prepared("A", 2, todo=0, skipped=2)) == []
    [(product, _prepared_product)] = book.take_complete()
    assert product.state == "skipped" and len(product.jobs) == 2
    book.sheet_done("A", "sheets/A.jpg")
    assert book.products()[0].sheet == "sheets/A.jpg"


def test_failed_job_fails_the_product_with_its_reason() -> None:
    book = _book([_record("A", 2)], batch_size=2)
    [batch] = book.product_prepared(_prepared("A", 2, todo=2))
    outcomes = _produced(batch)
    outcomes[1].state, outcomes[1].reason = "failed", "render failed: black image"
    book.batch_done(outcomes)
    [(product, _p)] = book.take_complete()
    assert product.state == "failed" and product.reason == "render failed: black image"


def test_rejected_and_failed_products_are_recorded_and_ordered_by_row() -> None:
    csv_reject = RejectRecord(5, "C", "category", "unknown")
    book = RunBook(
        [_record("B", 3), _record("A", 2)], batch_size=2, default_poses=lambda c: POSES, rejects=[csv_reject]
    )
    rejected = _prepared("B", 3, todo=0)
    rejected.rejected = RejectRecord(3, "B", "image", "not an image", product_level=True)
    book.product_prepared(rejected)
    book.product_failed(_record("A", 2), "preparation failed after 2 retries: TimeoutError")
    products = book.products()
    assert [(p.sku, p.state, p.column) for p in products] == [("A", "failed", ""), ("B", "rejected", "image")]
    assert book.rejects == [csv_reject, rejected.rejected]
    assert book.take_complete() == []  # neither gets a contact sheet


def test_nothing_is_lost_an_unfinished_book_refuses_to_report() -> None:
    book = _book([_record("A", 2), _record("B", 3)], batch_size=8)
    book.product_prepared(_prepared("A", 2, todo=1))
    with pytest.raises(RuntimeError, match="not finished"):
        book.products()


def test_a_job_that_was_never_planned_is_refused() -> None:
    book = _book([_record("A", 2)], batch_size=1)
    [batch] = book.product_prepared(_prepared("A", 2, todo=1))
    book.batch_done(_produced(batch))
    with pytest.raises(ValueError, match="expects no more jobs"):
        book.batch_done(_produced(batch))


def test_progress_events_count_products_and_jobs() -> None:
    events: list[ProgressEvent] = []
    book = _book([_record("A", 2), _record("B", 3)], batch_size=4, events=events)
    book.product_prepared(_prepared("A", 2, todo=1, skipped=1))
    book.product_prepared(_prepared("B", 3, todo=2))
    [batch] = book.remaining_batches()
    book.batch_done(_produced(batch))
    prepare = [(e.done, e.total) for e in events if e.stage == "prepare"]
    render = [(e.done, e.total) for e in events if e.stage == "render"]
    assert prepare == [(1, 2), (2, 2)]
    assert render[0] == (1, 2) and render[-1] == (4, 4)


def test_batch_size_must_be_positive() -> None:
    with pytest.raises(ValueError, match="batch_size"):
        _book([], batch_size=0)


def test_a_failed_contact_sheet_is_a_flag_on_the_product_not_a_lost_product() -> None:
    book = _book([_record("A", 2)])
    book.product_prepared(_prepared("A", 2, todo=0, skipped=1))
    book.take_complete()
    book.sheet_failed("A", "sources/A.jpg: the file is empty")
    [product] = book.products()
    assert (
        product.state == "skipped"
        and product.flags[-1] == "contact sheet failed: sources/A.jpg: the file is empty"
    )


def _spooled_book(records: list[ProductRecord], path: Path) -> RunBook:
    return RunBook(records, batch_size=8, default_poses=lambda c: POSES, spool=OutcomeSpool(path))


def test_a_spooled_book_writes_each_product_once_final_and_reads_them_back_in_row_order(
    tmp_path: Path,
) -> None:
    spool_path = tmp_path / "runs" / "r" / "outcomes.jsonl"
    records = [_record("B", 3), _record("A", 2), _record("C", 4)]
    book, plain = _spooled_book(records, spool_path), _book(records, batch_size=8)
    for each in (book, plain):
        each.product_failed(records[2], "preparation failed after 2 retries: TimeoutError")
        each.product_prepared(_prepared("B", 3, todo=1, skipped=1))
        each.product_prepared(_prepared("A", 2, todo=0, skipped=2))
        [batch] = each.remaining_batches()
        each.batch_done(_produced(batch))
    assert len(spool_path.read_bytes().splitlines()) == 1  # A and B wait for their sheets: not final yet
    for each in (book, plain):
        complete = {product.sku: product for product, _prepared in each.take_complete()}
        assert set(complete) == {"A", "B"}
        each.sheet_done("B", "sheets/B.jpg")
        each.sheet_failed("A", "unreadable")
    lines = [json.loads(line) for line in spool_path.read_bytes().splitlines()]
    assert [line["sku"] for line in lines] == ["C", "B", "A"]  # in the order they became final
    products = book.products()
    assert isinstance(products, SpooledOutcomes) and not isinstance(plain.products(), SpooledOutcomes)
    assert list(products) == plain.products() and products == plain.products()
    assert [p.sku for p in products] == ["A", "B", "C"] and products[1].sheet == "sheets/B.jpg"
    assert products[-1].state == "failed" and products[0].flags[-1] == "contact sheet failed: unreadable"
    assert products[0:2] == plain.products()[0:2]
    with pytest.raises(IndexError):
        products[3]
    assert summary_counts(products, []) == summary_counts(plain.products(), [])


def test_a_spooled_report_counts_from_the_index_and_survives_a_pickle(tmp_path: Path) -> None:
    book = _spooled_book([_record("A", 2), _record("B", 3)], tmp_path / "outcomes.jsonl")
    book.product_prepared(_prepared("A", 2, todo=2))
    [batch] = book.remaining_batches()
    outcomes = _produced(batch)
    outcomes[1].state, outcomes[1].reason, outcomes[0].derived = "failed", "black image", ["amazon"]
    book.batch_done(outcomes)
    book.product_done(ProductOutcome("B", 3, "skipped", jobs=[JobOutcome("B__front__v0", "B", "front", 0, 1,
                                                                         "skipped")]))  # fmt: skip
    products = book.products()  # A is final now, without a sheet
    again = pickle.loads(pickle.dumps(products))
    assert again == products and len(pickle.dumps(products)) < 2000
    assert summary_counts(products, []) == summary_counts(list(products), []) == {
        "products": 2, "rejected": 0, "produced": 1, "skipped": 1, "failed": 1, "jobs": 3, "derived": 1,
        "covered": 0,
    }  # fmt: skip
    with patch.object(ProductOutcome, "from_dict", side_effect=AssertionError("decoded")):
        summary_counts(products, [])  # nothing decoded: the index has the counts
        assert [products.sku(i) for i in range(len(products))] == ["A", "B"]


def test_a_product_s_preparation_is_dropped_once_it_is_final(tmp_path: Path) -> None:
    book = _spooled_book([_record("A", 2)], tmp_path / "outcomes.jsonl")
    prepared = _prepared("A", 2, todo=0, skipped=1)
    book.product_prepared(prepared)
    [(_product, taken)] = book.take_complete()
    reference = weakref.ref(prepared)
    del prepared, taken
    gc.collect()
    assert reference() is not None  # its contact sheet still needs it
    book.sheet_done("A", "sheets/A.jpg")
    gc.collect()
    assert reference() is None


def test_a_spooled_book_without_products_reports_none(tmp_path: Path) -> None:
    csv_reject = RejectRecord(2, "A", "image", "missing")
    book = RunBook([], batch_size=2, default_poses=lambda c: POSES, rejects=[csv_reject],
                   spool=OutcomeSpool(tmp_path / "runs" / "r" / "outcomes.jsonl"))  # fmt: skip
    products = book.products()
    assert (
        list(products) == []
        and len(products) == 0
        and summary_counts(products, book.rejects)["rejected"] == 1
    )


def test_spools_of_runs_that_ended_days_ago_are_removed_and_running_ones_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    layout = OutputLayout()
    for storage in (LocalStorage(tmp_path / "out"), FsspecStorage("memory://spools-test")):
        paths = {run_id: spool_file(storage, layout.run_outcomes(run_id)) for run_id in ("r1", "r2", "r3")}
        for path in paths.values():
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(b"{}\n")
        now = time.time()
        os.utime(paths["r1"], (now - SPOOL_KEEP_S - 60, now - SPOOL_KEEP_S - 60))  # ended days ago
        os.utime(paths["r2"], (now - SPOOL_KEEP_S + 60, now - SPOOL_KEEP_S + 60))  # just inside
        found = spool_files(storage, layout.run_outcomes("*"))
        assert found == sorted(paths.values())
        assert remove_stale_spools(found, now=now) == [paths["r1"]]
        assert [path.exists() for path in paths.values()] == [False, True, True]
        assert remove_stale_spools([paths["r1"]], now=now) == []  # already gone (another run): no error
