"""The run report: files written once per run, the index rendered from the Jinja2 template, escaped."""

from __future__ import annotations

from pathlib import Path

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
    assert 'href="sheets/A.jpg"' in page
    assert "Tee &amp; co" in page and "boom &lt;i&gt;" in page
    assert "Failures (2)" in page and "preparation failed after 2 retries" in page
    assert 'href="runs/r1/summary.json"' in page


def test_publish_writes_run_folder_and_top_level_files(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    report = _report()
    publish_report(report, storage)
    for name in ("manifest.csv", "rejects.csv", "summary.json"):
        assert (tmp_path / "runs" / "r1" / name).is_file(), name
    assert (tmp_path / "manifest.csv").read_text() == (tmp_path / "runs" / "r1" / "manifest.csv").read_text()
    assert RunReport.from_dict(read_json(storage, "runs/r1/summary.json")) == report
    assert "alert(1)" in (tmp_path / "rejects.csv").read_text()
    assert (tmp_path / "index.html").read_text() == render_index(report)
