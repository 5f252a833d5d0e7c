"""Publish a run: manifest.csv, rejects.csv, runs/<id>/summary.json and the reviewers' index page.

Everything is rendered from one `RunReport`; the index goes through a real Jinja2 template with autoescaping
(SKUs and titles come from CSVs).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from functools import lru_cache
from pathlib import Path

import jinja2

from pipelines.production import catalogue
from pipelines.production.book import RunBook
from pipelines.production.layout import OutputLayout, Storage, read_json, write_json, write_text
from pipelines.production.outcomes import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    DeviceUsage,
    RunReport,
    csv_text,
    manifest_rows,
    reject_rows,
)
from pipelines.production.retire import retire_stale_jobs
from pipelines.production.spool import SpooledOutcomes
from pipelines.production.validate import RunStart

TEMPLATES = Path(__file__).resolve().parent / "templates"
LAYOUT = OutputLayout()


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
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            title=f"onmodel · {'catalogue' if is_catalogue else Path(report.csv).name}",
            report=report,
            details=details,
            failures=failures,
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


def publish_report(report: RunReport, storage: Storage, layout: OutputLayout = LAYOUT) -> RunReport:
    """Retire stale jobs, write the run's own folder, then merge it into the catalogue and rewrite the
    top-level files.

    Returns the catalogue view. All of it holds the storage's catalogue lock, so two runs into one folder
    (nightly and an upload) never lose each other's products.
    """
    with storage.lock("catalogue"):
        previous = read_json(storage, layout.catalogue) if storage.exists(layout.catalogue) else None
        entries = catalogue.read_entries(previous)
        # 1. Files of poses / variants a product no longer plans leave images/ (kept under retired/).
        for product in report.products:
            product.retired_jobs = retire_stale_jobs(
                entries.get(product.sku), product, report.run_id, storage, layout
            )
            if product.retired_jobs and isinstance(report.products, SpooledOutcomes):
                report.products.retired[product.sku] = product.retired_jobs  # read back with them
        # 2. The run's own report: summary.json, manifest, rejects and its page under runs/<id>/.
        run_dir = layout.run_dir(report.run_id)
        write_json(storage, layout.run_summary(report.run_id), report.to_dict())
        write_text(storage, f"{run_dir}/{layout.manifest}", csv_text(MANIFEST_COLUMNS, manifest_rows(report)))
        write_text(storage, f"{run_dir}/{layout.rejects}", csv_text(REJECT_COLUMNS, reject_rows(report)))
        write_text(storage, layout.run_index(report.run_id), render_index(report, layout))
        # 3. The catalogue: every product ever produced here with its latest state, and the top-level files.
        entries = catalogue.merge(entries, report)
        write_json(storage, layout.catalogue, catalogue.to_document(entries))
        view = catalogue.catalogue_report(entries, report)
        runs = {sku: entry.run_id for sku, entry in entries.items()}
        write_text(storage, layout.manifest, csv_text(MANIFEST_COLUMNS, manifest_rows(view, runs)))
        write_text(storage, layout.rejects, csv_text(REJECT_COLUMNS, reject_rows(view)))
        write_text(storage, layout.index, render_index(view, layout, runs=runs))
    return view
