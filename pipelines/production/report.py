"""Publish a run: manifest.csv, rejects.csv, runs/<id>/summary.json and the reviewers' index page.

Everything is rendered from one `RunReport`; the index goes through a real Jinja2 template with autoescaping
(SKUs and titles come from CSVs).
"""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import jinja2

from pipelines.production.book import RunBook
from pipelines.production.layout import OutputLayout, Storage, write_json, write_text
from pipelines.production.outcomes import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    RunReport,
    csv_text,
    manifest_rows,
    reject_rows,
)
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


def build_report(run: RunStart, book: RunBook, out_dir: str, seconds: float) -> RunReport:
    """The report of a finished run (raises if the book still has open products or jobs)."""
    profile = run.ctx.profile
    return RunReport(
        run_id=run.ctx.run_id,
        out_dir=str(out_dir),
        csv=run.csv_path,
        dialect=run.dialect,
        profile=profile.name,
        renderer=profile.renderer_name,
        preset=profile.preset,
        fingerprint=run.ctx.fingerprint,
        started_at=run.started_at,
        seconds=seconds,
        products=book.products(),
        rejects=book.rejects,
    )


def render_index(report: RunReport, layout: OutputLayout = LAYOUT) -> str:
    """The reviewers' entry page: counts, a card per product linking its contact sheet, rejects, failures."""
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
    ]
    return (
        _environment()
        .get_template("index.html.j2")
        .render(
            title=f"onmodel · {Path(report.csv).name}",
            report=report,
            details=details,
            failures=failures,
            summary=layout.run_summary(report.run_id),
        )
    )


def publish_report(report: RunReport, storage: Storage, layout: OutputLayout = LAYOUT) -> None:
    """Write the run's own folder first, then the top-level manifest, rejects and index (all atomic)."""
    manifest = csv_text(MANIFEST_COLUMNS, manifest_rows(report))
    rejects = csv_text(REJECT_COLUMNS, reject_rows(report))
    run_dir = layout.run_dir(report.run_id)
    write_json(storage, layout.run_summary(report.run_id), report.to_dict())
    for folder in (run_dir, ""):
        prefix = f"{folder}/" if folder else ""
        write_text(storage, prefix + layout.manifest, manifest)
        write_text(storage, prefix + layout.rejects, rejects)
    write_text(storage, layout.index, render_index(report, layout))
