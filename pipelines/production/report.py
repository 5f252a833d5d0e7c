"""Publish a run: manifest.csv, rejects.csv, runs/<id>/summary.json and the reviewers' index page.

Everything is rendered from one `RunReport`; the index goes through a real Jinja2 template with autoescaping
(SKUs and titles come from CSVs). The run's files and the top-level ones are streamed product by product
(Storage.open_write): a report of 100k products is read from its spool as it is written, never held whole.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import BinaryIO

import jinja2

from pipelines.production import catalogue
from pipelines.production.book import RunBook
from pipelines.production.layout import OutputLayout, Storage, read_json, write_json
from pipelines.production.outcomes import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    DeviceUsage,
    ProductOutcome,
    RunReport,
    failures,
    iter_manifest_rows,
    reject_rows,
    write_csv,
)
from pipelines.production.retire import retire_stale_jobs
from pipelines.production.spool import SpooledOutcomes
from pipelines.production.validate import RunStart

TEMPLATES = Path(__file__).resolve().parent / "templates"
LAYOUT = OutputLayout()
WRITE_CHARS = 1 << 16  # rendered text gathered before a write
_PRODUCTS = "\x00products\x00"  # where summary.json's product list goes (json escapes it: never in the data)


@lru_cache(maxsize=1)
def _environment() -> jinja2.Environment:
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,  # a misspelt field is an error, not an empty cell
        keep_trailing_newline=True,
    )


def build_report(
    run: RunStart,
    book: RunBook,
    out_dir: str,
    seconds: float,
    devices: Sequence[DeviceUsage] = (),
) -> RunReport:
    """The report of a finished run (raises if the book still has open products or jobs).

    devices: the pool's per-device counters; their utilisation is over this run's wall time.
    """
    profile = run.ctx.profile
    return RunReport(
        run_id=run.ctx.run_id,
        out_dir=str(out_dir),
        csv=run.csv_path,
        dialect=run.dialect,
        profile=profile.name,
        renderer=profile.renderer_name,
        preset=",".join(profile.presets),
        fingerprint=run.ctx.fingerprint,
        started_at=run.started_at,
        seconds=seconds,
        products=book.products(),
        rejects=book.rejects,
        devices=[replace(usage, wall_s=seconds) for usage in devices],
    )


def render_index(
    report: RunReport,
    layout: OutputLayout = LAYOUT,
    *,
    runs: Mapping[str, str] | None = None,
) -> str:
    """The reviewers' entry page: counts, a card per product linking its contact sheet, rejects, failures.

    runs (sku -> run id): the page is the catalogue view at the output root; without it, the run's own page
    under runs/<id>/ (links climb back to the root).
    """
    return "".join(_index_parts(report, layout, runs))


def write_index(
    handle: BinaryIO,
    report: RunReport,
    layout: OutputLayout = LAYOUT,
    *,
    runs: Mapping[str, str] | None = None,
) -> None:
    """render_index(report, layout, runs=runs) written as it renders (Jinja's generate), as UTF-8."""
    _write_text(handle, _index_parts(report, layout, runs))


def _index_parts(report: RunReport, layout: OutputLayout, runs: Mapping[str, str] | None) -> Iterator[str]:
    details = [
        ("profile", report.profile),
        ("renderer", report.renderer),
        ("preset", report.preset),
        ("fingerprint", report.fingerprint),
        ("seconds", f"{report.seconds:.1f}"),
        *((f"device {usage.device}", device_detail(usage)) for usage in report.devices),
    ]
    is_catalogue = runs is not None
    return (
        _environment()
        .get_template("index.html.j2")
        .generate(
            title=f"onmodel · {'catalogue' if is_catalogue else Path(report.csv).name}",
            report=report,
            details=details,
            failures=failures(report.products),  # counted from the index, listed as rendered
            base="" if is_catalogue else "../../",
            summary=layout.run_summary(report.run_id) if is_catalogue else "summary.json",
            runs=runs or {},
            latest_run=layout.run_index(report.run_id) if is_catalogue else None,
        )
    )


def device_detail(usage: DeviceUsage) -> str:
    """'97.3% busy, 120 batches' (or why the device was taken out) for the index page."""
    text = f"{100 * usage.utilisation:.1f}% busy, {usage.batches} batches"
    return text + (f", taken out: {usage.reason}" if usage.state != "active" else "")


def write_summary(handle: BinaryIO, report: RunReport) -> None:
    """summary.json as write_json(report.to_dict()) writes it (indent 2, sorted keys), a product at a time."""
    head = json.dumps({**report.head_dict(), "products": _PRODUCTS}, indent=2, sort_keys=True, default=str)
    before, after = (head + "\n").split(json.dumps(_PRODUCTS))
    handle.write(before.encode("utf-8"))
    if not len(report.products):
        handle.write(b"[]")
    else:
        # The list sits at depth 1: each product's own dump, every line indented two levels (4 spaces).
        handle.write(b"[\n")
        for number, product in enumerate(report.products):
            text = json.dumps(product.to_dict(), indent=2, sort_keys=True, default=str)
            handle.write(((",\n" if number else "") + "    " + text.replace("\n", "\n    ")).encode("utf-8"))
        handle.write(b"\n  ]")
    handle.write(after.encode("utf-8"))


def publish_report(report: RunReport, storage: Storage, layout: OutputLayout = LAYOUT) -> RunReport:
    """Retire stale jobs, write the run's own folder, then merge it into the catalogue and rewrite the
    top-level files.

    Returns the catalogue view. All of it holds the storage's catalogue lock, so two runs into one folder
    (nightly and an upload) never lose each other's products. Every file is written whole or not at all
    (Storage.open_write).
    """
    with storage.lock("catalogue"):
        previous = read_json(storage, layout.catalogue) if storage.exists(layout.catalogue) else None
        entries = catalogue.read_entries(previous)
        # 1. Files of poses / variants a product no longer plans leave images/ (kept under retired/).
        for product in report.products:
            _retire(report, storage, layout, entries.get(product.sku), product)
        # 2. The run's own report: summary.json, manifest, rejects and its page under runs/<id>/.
        _publish_run(report, storage, layout)
        # 3. The catalogue: every product ever produced here with its latest state, and the top-level files.
        entries = catalogue.merge(entries, report)
        write_json(storage, layout.catalogue, catalogue.to_document(entries))
        view = catalogue.catalogue_report(entries, report)
        runs = {sku: entry.run_id for sku, entry in entries.items()}
        with storage.open_write(layout.manifest) as handle:
            write_csv(handle, MANIFEST_COLUMNS, iter_manifest_rows(view, runs))
        with storage.open_write(layout.rejects) as handle:
            write_csv(handle, REJECT_COLUMNS, reject_rows(view))
        with storage.open_write(layout.index) as handle:
            write_index(handle, view, layout, runs=runs)
    return view


def _publish_run(report: RunReport, storage: Storage, layout: OutputLayout) -> None:
    run_dir = layout.run_dir(report.run_id)
    with storage.open_write(layout.run_summary(report.run_id)) as handle:
        write_summary(handle, report)
    with storage.open_write(f"{run_dir}/{layout.manifest}") as handle:
        write_csv(handle, MANIFEST_COLUMNS, iter_manifest_rows(report))
    with storage.open_write(f"{run_dir}/{layout.rejects}") as handle:
        write_csv(handle, REJECT_COLUMNS, reject_rows(report))
    with storage.open_write(layout.run_index(report.run_id)) as handle:
        write_index(handle, report, layout)


def _retire(
    report: RunReport,
    storage: Storage,
    layout: OutputLayout,
    previous: catalogue.CatalogueEntry | None,
    product: ProductOutcome,
) -> None:
    product.retired_jobs = retire_stale_jobs(previous, product, report.run_id, storage, layout)
    if isinstance(report.products, SpooledOutcomes):  # read back from the spool with them
        report.products.retired.pop(product.sku, None)
        if product.retired_jobs:
            report.products.retired[product.sku] = product.retired_jobs


def _write_text(handle: BinaryIO, parts: Iterator[str]) -> None:
    buffer: list[str] = []
    size = 0
    for part in parts:
        buffer.append(part)
        size += len(part)
        if size >= WRITE_CHARS:
            handle.write("".join(buffer).encode("utf-8"))
            buffer, size = [], 0
    handle.write("".join(buffer).encode("utf-8"))
