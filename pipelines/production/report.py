"""Publish a run: manifest.csv, rejects.csv, runs/<id>/summary.json and the reviewers' index page.

Everything is rendered from one `RunReport`; the index goes through a real Jinja2 template with autoescaping
(SKUs and titles come from CSVs). Every file is streamed product by product (Storage.open_write): a report of
100k products is read from its spool (or the catalogue file) as it is written, never held whole.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, ExitStack, contextmanager
from dataclasses import replace
from functools import lru_cache, partial
from pathlib import Path
from typing import BinaryIO

import jinja2

from pipelines.production import catalogue
from pipelines.production.book import RunBook
from pipelines.production.fsspec_storage import local_folder
from pipelines.production.layout import OutputLayout, Storage
from pipelines.production.outcomes import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    DeviceUsage,
    IndexedOutcomes,
    ProductOutcome,
    RunReport,
    failures,
    manifest_rows,
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

    Returns the catalogue view (its products read from catalogue.json on access). All of it holds the
    storage's catalogue lock, so two runs into one folder (nightly and an upload) never lose each other's
    products. Every file is written whole or not at all (Storage.open_write); the catalogue is in place only
    once the run's own files are.
    """
    with storage.lock("catalogue"):
        with ExitStack() as files:
            previous = (
                catalogue.read_stream(files.enter_context(storage.open_read(layout.catalogue)))
                if storage.exists(layout.catalogue)
                else iter(())
            )
            writer = catalogue.CatalogueWriter(files.enter_context(storage.open_write(layout.catalogue)))
            # 1. The catalogue merged with the run's products (a merge-join in sku order); on the way, the files
            #    of poses / variants a product no longer plans leave images/ (kept under retired/).
            index = catalogue.merge_into(
                writer,
                previous,
                _by_sku(report.products),
                report.run_id,
                report.csv,
                on_product=partial(_retire, report, storage, layout),
            )
            # 2. The run's own report: summary.json, manifest, rejects and its page under runs/<id>/ (before the
            #    catalogue is in place, as it names this run).
            _publish_run(report, storage, layout)
        # 3. The top-level files: the whole catalogue (every product ever produced here, its latest state).
        with _local_reader(storage, layout.catalogue) as opener:
            products = catalogue.CatalogueProducts(index, opener, report.products)
            view = replace(report, products=products, rejects=list(report.rejects))
            runs = products.runs()
            with storage.open_write(layout.manifest) as handle:
                write_csv(handle, MANIFEST_COLUMNS, manifest_rows(view, runs))
            with storage.open_write(layout.rejects) as handle:
                write_csv(handle, REJECT_COLUMNS, reject_rows(view))
            with storage.open_write(layout.index) as handle:
                write_index(handle, view, layout, runs=runs)
        products.opener = partial(storage.open_read, layout.catalogue)  # the local copy is gone
    return view


def _publish_run(report: RunReport, storage: Storage, layout: OutputLayout) -> None:
    run_dir = layout.run_dir(report.run_id)
    with storage.open_write(layout.run_summary(report.run_id)) as handle:
        write_summary(handle, report)
    with storage.open_write(f"{run_dir}/{layout.manifest}") as handle:
        write_csv(handle, MANIFEST_COLUMNS, manifest_rows(report))
    with storage.open_write(f"{run_dir}/{layout.rejects}") as handle:
        write_csv(handle, REJECT_COLUMNS, reject_rows(report))
    with storage.open_write(layout.run_index(report.run_id)) as handle:
        write_index(handle, report, layout)


def _by_sku(products: Sequence[ProductOutcome]) -> Iterator[catalogue.Numbered]:
    """The products in sku order, each with its position (a spooled run's sorted through its index, then read by
    offset)."""
    if isinstance(products, IndexedOutcomes):
        order = sorted(range(len(products)), key=products.sku)
        return zip(order, products.at(order), strict=True)
    return iter(sorted(enumerate(products), key=lambda numbered: numbered[1].sku))


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


@contextmanager
def _local_reader(storage: Storage, key: str) -> Iterator[Callable[[], AbstractContextManager[BinaryIO]]]:
    """An opener of a local file with the key's bytes, to be read at offsets: the file itself in a local folder,
    else a downloaded copy (not a ranged request per product)."""
    folder = local_folder(storage)
    if folder is not None:
        yield partial(_open_binary, folder.joinpath(*key.split("/")))
        return
    with tempfile.NamedTemporaryFile(prefix="onmodel-catalogue-", suffix=".json") as copy:
        with storage.open_read(key) as source:
            shutil.copyfileobj(source, copy)
        copy.flush()
        yield partial(_open_binary, Path(copy.name))


def _open_binary(path: Path) -> BinaryIO:
    return open(path, "rb")


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
