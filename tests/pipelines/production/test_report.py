"""The run report: files written once per run, the index rendered from the Jinja2 template, escaped."""

from __future__ import annotations

import csv
import io
import json
from dataclasses import replace
from pathlib import Path
from unittest.mock import patch

import jinja2
import pytest

from catalog.schema import GarmentClass, ImageRef, ProductRecord
from pipelines.production import catalogue
from pipelines.production.book import RunBook
from pipelines.production.catalogue import CatalogueVersionError
from pipelines.production.layout import LocalStorage, OutputLayout, read_json, write_json, write_text
from pipelines.production.outcomes import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    DeviceUsage,
    JobOutcome,
    ProductOutcome,
    RejectRecord,
    ReusedJobs,
    RunReport,
    csv_text,
    manifest_rows,
    reject_rows,
)
from pipelines.production.report import TEMPLATES, device_detail, publish_report, render_index
from pipelines.production.retire import retire_stale_jobs
from pipelines.production.spool import OutcomeSpool, SpooledOutcomes
from pipelines.production.status import folder_status
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


# The streamed files are the files the whole-document publication wrote --------------------------------------


def _old_index(report: RunReport, runs: dict[str, str] | None = None) -> str:
    """The index page as publish_report rendered it before streaming: the whole template at once."""
    failures = [(p.sku, j.job_id, j.reason) for p, j in report.failed_jobs]
    failures += [
        (p.sku, "(product)", p.reason) for p in report.products if p.state == "failed" and not p.jobs
    ]
    details = [
        ("profile", report.profile),
        ("renderer", report.renderer),
        ("preset", report.preset),
        ("fingerprint", report.fingerprint),
        ("seconds", f"{report.seconds:.1f}"),
        *((f"device {usage.device}", device_detail(usage)) for usage in report.devices),
    ]
    is_catalogue = runs is not None
    template = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
    ).get_template("index.html.j2")
    return template.render(
        title=f"onmodel · {'catalogue' if is_catalogue else Path(report.csv).name}",
        report=report,
        details=details,
        failures=failures,
        base="" if is_catalogue else "../../",
        summary=f"runs/{report.run_id}/summary.json" if is_catalogue else "summary.json",
        runs=runs or {},
        latest_run=f"runs/{report.run_id}/index.html" if is_catalogue else None,
    )


def _publish_the_old_way(report: RunReport, storage: LocalStorage) -> None:
    """publish_report before streaming: the catalogue read whole, every file built as one string."""
    report = replace(report, products=list(report.products))  # the outcomes as objects, retired set on them
    layout = OutputLayout()
    previous = read_json(storage, layout.catalogue) if storage.exists(layout.catalogue) else None
    entries = catalogue.read_entries(previous)
    for product in report.products:
        product.retired_jobs = retire_stale_jobs(
            entries.get(product.sku), product, report.run_id, storage, layout
        )
    run_dir = layout.run_dir(report.run_id)
    write_json(storage, layout.run_summary(report.run_id), report.to_dict())
    write_text(storage, f"{run_dir}/manifest.csv", csv_text(MANIFEST_COLUMNS, manifest_rows(report)))
    write_text(storage, f"{run_dir}/rejects.csv", csv_text(REJECT_COLUMNS, reject_rows(report)))
    write_text(storage, layout.run_index(report.run_id), _old_index(report))
    entries = {
        **entries,
        **{p.sku: catalogue.CatalogueEntry(report.run_id, report.csv, p) for p in report.products},
    }
    document = {"version": 1, "entries": {sku: e.to_dict() for sku, e in sorted(entries.items())}}
    write_json(storage, layout.catalogue, document)
    ordered = sorted(entries.values(), key=lambda e: (e.csv, e.product.row, e.product.sku))
    view = replace(report, products=[entry.product for entry in ordered], rejects=list(report.rejects))
    runs = {sku: entry.run_id for sku, entry in entries.items()}
    write_text(storage, layout.manifest, csv_text(MANIFEST_COLUMNS, manifest_rows(view, runs)))
    write_text(storage, layout.rejects, csv_text(REJECT_COLUMNS, reject_rows(view)))
    write_text(storage, layout.index, _old_index(view, runs))


def _job(sku: str, pose: str, variant: int, state: str = "produced", reason: str = "") -> JobOutcome:
    job_id = f"{sku}__{pose}__v{variant}"
    return JobOutcome(
        job_id, sku, pose, variant, 10 + variant, state,  # type: ignore[arg-type]
        reason=reason, output=f"images/amazon/{sku}/{job_id}.jpg", sidecar=f"images/amazon/{sku}/{job_id}.json",
        flags=["garment_upscaled"] if variant else [],
        outputs={"master": f"images/master/{sku}/{job_id}.png", "amazon": f"images/amazon/{sku}/{job_id}.jpg"},
        derived=["amazon"] if state == "skipped" else [], render_id=f"rid-{job_id}", timings={"render": 0.25},
    )  # fmt: skip


def _spooled_report(
    path: Path, run_id: str, products: list[ProductOutcome], rejects: list[RejectRecord]
) -> RunReport:
    records = [
        ProductRecord(p.sku, ImageRef(raw=f"{p.sku}.png", path=Path(f"{p.sku}.png")), "t-shirt", GarmentClass.UPPER,
                      p.row)
        for p in products
    ]  # fmt: skip
    book = RunBook(records, batch_size=4, default_poses=lambda c: ("front",), spool=OutcomeSpool(path))
    for product in products:
        book.product_done(product)
    report = make_report([], rejects, run_id=run_id)
    report.products = book.products()
    report.devices = [DeviceUsage("cuda:0", worker="host pid 1", batches=3, jobs=9, busy_s=1.5, wall_s=2.0)]
    return report


def _first_run(spool: Path) -> RunReport:
    reused = ReusedJobs("D", "ab" * 32, "fp", (("master", "png"), ("amazon", "jpg")), "amazon", ("front",), 2,
                        [[11, 0, [], ""], [12, 1, ["garment_upscaled"], "old-fp"]])  # fmt: skip
    return _spooled_report(
        spool,
        "r1",
        [
            ProductOutcome("B", 3, "failed", reason="render failed", title="Jupe «été» & co", jobs=[
                _job("B", "front", 0), _job("B", "front", 1, "failed", "black image")], sheet="sheets/B.jpg",
                source_identity={"system": "shopify", "handle": "jupe", "Color": "Navy"}, variant_skus=["B-S", "B-M"],
                covered=[{"row": 4, "sku": "B-S", "describe": "size S"}], category="skirt", flags=["touches_border"]),
            ProductOutcome("A<b>", 2, "produced", title="Tee", jobs=[_job("A<b>", "front", 0),
                                                                     _job("A<b>", "back", 0, "skipped")]),
            ProductOutcome("C", 5, "rejected", reason="not an image", column="image"),
            ProductOutcome("E", 6, "failed", reason="preparation failed after 2 retries"),
            ProductOutcome("D", 7, "skipped", jobs=reused),
        ],
        [RejectRecord(9, "X", "category", "unknown <b>"), RejectRecord(5, "C", "image", "not an image", True)],
    )  # fmt: skip


def _second_run(spool: Path) -> RunReport:
    """`--only B,F`: B drops a variant (retired), F is new; A, C, D, E stay from the first run."""
    return _spooled_report(
        spool,
        "r2",
        [
            ProductOutcome("F", 1, "produced", jobs=[_job("F", "front", 0)]),
            ProductOutcome("B", 3, "produced", jobs=[_job("B", "front", 0)], sheet="sheets/B.jpg"),
        ],
        [],
    )


def test_the_streamed_files_are_byte_for_byte_the_whole_document_ones(tmp_path: Path) -> None:
    old, new = LocalStorage(tmp_path / "old"), LocalStorage(tmp_path / "new")
    for folder in (old.root, new.root):  # B's second variant has files to retire
        for key in ("images/master/B/B__front__v1.png", "images/amazon/B/B__front__v1.jpg"):
            (folder / key).parent.mkdir(parents=True, exist_ok=True)
            (folder / key).write_bytes(b"image")
    for number, make in enumerate((_first_run, _second_run)):
        report = make(tmp_path / f"spool-{number}.jsonl")
        assert isinstance(report.products, SpooledOutcomes)
        _publish_the_old_way(make(tmp_path / f"spool-old-{number}.jsonl"), old)
        view = publish_report(report, new)
        run = f"runs/{report.run_id}"
        for key in (f"{run}/summary.json", f"{run}/manifest.csv", f"{run}/rejects.csv", f"{run}/index.html",
                    "manifest.csv", "rejects.csv", "index.html"):  # fmt: skip
            assert (new.root / key).read_bytes() == (old.root / key).read_bytes(), key
        assert read_json(new, "catalogue.json") == read_json(old, "catalogue.json")
        expected = ["A<b>", "B", "C", "E", "D"] if number == 0 else ["F", "A<b>", "B", "C", "E", "D"]
        assert [p.sku for p in view.products] == expected  # the catalogue by CSV, then row
        assert view.counts == replace(view, products=list(view.products)).counts
    retired = read_json(new, "runs/r2/summary.json")["products"]
    assert [p["retired_jobs"] for p in retired] == [[], ["B__front__v1"]]  # the test retires something
    assert (new.root / "retired/r2/images/master/B/B__front__v1.png").is_file()
    assert report.products[1].retired_jobs == ["B__front__v1"] and report.counts["products"] == 2
    assert "Failures (1)" in (new.root / "index.html").read_text()  # E; B's failed job was replaced by r2


# catalogue.json: one entry a line, merged by streaming ---------------------------------------------------------


def test_the_catalogue_is_one_json_document_with_an_entry_a_line_in_sku_order(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    publish_report(_first_run(tmp_path / "spool-1.jsonl"), storage)
    publish_report(_second_run(tmp_path / "spool-2.jsonl"), storage)
    lines = (tmp_path / "catalogue.json").read_bytes().split(b"\n")
    assert lines[0] == b'{"version": 1, "entries": {' and lines[-2:] == [b"}}", b""]
    skus = [json.loads(b"{" + line.removesuffix(b",") + b"}").popitem()[0] for line in lines[1:-2]]
    assert skus == ["A<b>", "B", "C", "D", "E", "F"]  # sorted, one a line
    entries = catalogue.read_entries(read_json(storage, "catalogue.json"))  # what review and status read
    assert {sku: entry.run_id for sku, entry in entries.items()} == {
        "A<b>": "r1", "B": "r2", "C": "r1", "D": "r1", "E": "r1", "F": "r2",
    }  # fmt: skip
    assert entries["B"].product.retired_jobs == ["B__front__v1"] and len(entries["D"].product.jobs) == 2
    assert folder_status(storage).products == {"produced": 3, "skipped": 1, "failed": 1, "rejected": 1}


def test_a_catalogue_in_the_earlier_layout_is_read_whole_once_and_rewritten_streamed(tmp_path: Path) -> None:
    old, new = LocalStorage(tmp_path / "old"), LocalStorage(tmp_path / "new")
    first = _first_run(tmp_path / "spool-1.jsonl")
    _publish_the_old_way(first, old)  # today's pretty-printed catalogue.json
    assert (old.root / "catalogue.json").read_text().startswith('{\n  "entries": {\n')
    publish_report(first, new)
    second = _second_run(tmp_path / "spool-2.jsonl")
    publish_report(second, old)
    publish_report(_second_run(tmp_path / "spool-3.jsonl"), new)
    assert (old.root / "catalogue.json").read_bytes() == (new.root / "catalogue.json").read_bytes()
    for key in ("manifest.csv", "index.html", "runs/r2/summary.json", "runs/r2/manifest.csv"):
        assert (old.root / key).read_bytes() == (new.root / key).read_bytes(), key


def test_the_catalogue_is_read_entry_by_entry(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    publish_report(_first_run(tmp_path / "spool.jsonl"), storage)
    text = (tmp_path / "catalogue.json").read_bytes()
    cut = text[: text.index(b'"E": ')] + b'"E": {"run_id": "r1", "csv": "in/products.csv", "prod'
    read: list[str] = []
    with pytest.raises(json.JSONDecodeError):
        read.extend(sku for sku, _entry in catalogue.read_stream(io.BytesIO(cut)))
    assert read == ["A<b>", "B", "C", "D"]  # the entries before the cut line came one by one
    with pytest.raises(ValueError, match="cut off"):
        list(catalogue.read_stream(io.BytesIO(text[: text.rindex(b"}}")])))
    swapped = text.replace(b'"A<b>": ', b'"Z": ', 1)
    with pytest.raises(ValueError, match="sku order"):
        list(catalogue.read_stream(io.BytesIO(swapped)))


def test_the_catalogue_view_reads_products_only_when_asked(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path)
    publish_report(_first_run(tmp_path / "spool-1.jsonl"), storage)
    view = publish_report(_second_run(tmp_path / "spool-2.jsonl"), storage)
    with patch.object(ProductOutcome, "from_dict", side_effect=AssertionError("decoded")):
        assert view.counts == {
            "products": 6, "rejected": 1, "produced": 3, "skipped": 3, "failed": 1, "jobs": 6, "derived": 1,
            "covered": 0,
        }  # fmt: skip
    assert view.counts == replace(view, products=list(view.products)).counts
    assert view.products[-1].sku == "D" and view.products[1:3] == [view.products[1], view.products[2]]


def test_a_publication_cut_off_leaves_the_catalogue_and_the_top_level_files_as_they_were(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = LocalStorage(tmp_path)
    publish_report(_first_run(tmp_path / "spool-1.jsonl"), storage)
    before = {key: (tmp_path / key).read_bytes() for key in ("catalogue.json", "manifest.csv", "index.html")}

    def cut_off(*args: object, **kwargs: object) -> None:
        raise OSError("killed while writing the run's index")

    monkeypatch.setattr("pipelines.production.report.write_index", cut_off)
    with pytest.raises(OSError, match="killed"):
        publish_report(_second_run(tmp_path / "spool-2.jsonl"), storage)
    assert {key: (tmp_path / key).read_bytes() for key in before} == before
    assert not [path for path in tmp_path.rglob("*.tmp")]  # no half-written file
    monkeypatch.undo()
    publish_report(_second_run(tmp_path / "spool-3.jsonl"), storage)  # the next run publishes it all
    assert len(catalogue.read_entries(read_json(storage, "catalogue.json"))) == 6
