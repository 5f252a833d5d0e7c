"""The run report: files written once per run, the index rendered from the Jinja2 template, escaped."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from pipelines.production.catalogue import CatalogueVersionError
from pipelines.production.layout import LocalStorage, read_json
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RejectRecord, RunReport
from pipelines.production.report import publish_report, render_index
from tests.pipelines.production.reports import make_report


def _report() -> RunReport:
    failed = JobOutcome("A__front__v0", "A<b>", "front", 0, 7, "failed", reason="boom <i>")
    return make_report(
        [
            ProductOutcome("A<b>", 2, "failed", title="Tee & co", sheet="sheets/A.jpg", jobs=[failed]),
            ProductOutcome("P-2", 3, "failed", reason="preparation failed after 2 retries"),
        ],
        [RejectRecord(4, "X", "image", "<script>alert(1)</script>")],
        run_id="r1",
    )


def test_index_escapes_and_lists_everything() -> None:
    page = render_index(_report())
    assert "<script>" not in page and "&lt;script&gt;" in page
    assert "A&lt;b&gt;" in page and "<b>A<b>" not in page
    assert 'href="../../sheets/A.jpg"' in page  # the run's page lives in runs/<id>/
    assert "Tee &amp; co" in page and "boom &lt;i&gt;" in page
    assert "Failures (2)" in page and "preparation failed after 2 retries" in page
    assert 'href="summary.json"' in page
    view = render_index(_report(), runs={"A<b>": "r1", "P-2": "r0"})
    assert 'href="sheets/A.jpg"' in view and 'href="runs/r1/summary.json"' in view
    assert "catalogue of this folder (2 products)" in view and 'href="runs/r1/index.html"' in view
    assert "run r0" in view


def test_publish_writes_run_folder_and_top_level_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    report = _report()
    view = publish_report(report, storage)
    for name in ("manifest.csv", "rejects.csv", "summary.json", "index.html"):
        assert (tmp_path / "runs" / "r1" / name).is_file(), name
    assert RunReport.from_dict(read_json(storage, "runs/r1/summary.json")) == report
    assert (tmp_path / "runs" / "r1" / "index.html").read_text() == render_index(report)
    assert "alert(1)" in (tmp_path / "rejects.csv").read_text()
    assert view.products == report.products  # a new folder: the catalogue is this run
    assert (tmp_path / "index.html").read_text() == render_index(view, runs={"A<b>": "r1", "P-2": "r1"})
    assert read_json(storage, "catalogue.json")["version"] == 1


def test_the_catalogue_keeps_every_product_with_its_latest_state(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    first = make_report(
        [ProductOutcome("A", 2, "produced"), ProductOutcome("B", 3, "failed", reason="boom")], [], run_id="r1"
    )
    publish_report(first, storage)
    second = make_report([ProductOutcome("B", 3, "produced")], [], run_id="r2")  # e.g. `--only B`
    view = publish_report(second, storage)
    assert [(p.sku, p.state) for p in view.products] == [("A", "produced"), ("B", "produced")]
    manifest = list(csv.DictReader((tmp_path / "manifest.csv").open()))
    assert {(r["sku"], r["run_id"]) for r in manifest if r["kind"] == "product"} == {("A", "r1"), ("B", "r2")}
    page = (tmp_path / "index.html").read_text()
    assert 'data-sku="A"' in page and 'data-sku="B"' in page
    assert (tmp_path / "runs" / "r1" / "index.html").is_file() and (
        tmp_path / "runs" / "r2" / "index.html"
    ).is_file()
    other_csv = make_report([ProductOutcome("C", 2, "produced")], [], run_id="r3")
    other_csv.csv = "other/feed.csv"
    assert [p.sku for p in publish_report(other_csv, storage).products] == ["A", "B", "C"]  # by CSV, then row


def test_a_catalogue_from_a_newer_onmodel_is_refused(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    storage.write_bytes("catalogue.json", b'{"version": 99, "entries": {}}')
    with pytest.raises(CatalogueVersionError, match="version 99"):
        publish_report(make_report([], []), storage)
