"""Output layout, atomic writes, image metadata, manifest, rejects and the run index page."""

from __future__ import annotations

import csv
import html
import io
import json
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from pipelines.image_io import write_bytes_atomic

MANIFEST_COLUMNS = (
    "kind",
    "row",
    "sku",
    "job_id",
    "pose",
    "variant",
    "seed",
    "state",
    "reason",
    "flags",
    "output",
    "sidecar",
    "sheet",
    "renderer",
    "fingerprint",
    "run_id",
)
REJECT_COLUMNS = ("row", "sku", "column", "reason")


@dataclass(frozen=True)
class OutputLayout:
    """Where everything goes under one output folder; image paths are stable across runs (no duplicates)."""

    root: Path

    @property
    def state_db(self) -> Path:
        return self.root / "state.sqlite"

    def image_stem(self, preset: str, sku: str, job_id: str) -> Path:
        """The image path without its extension (the preset decides png or jpg)."""
        return self.root / "images" / preset / sku / job_id

    def cutout(self, sku: str) -> Path:
        return self.root / "cutouts" / f"{sku}.png"

    def source_thumbnail(self, sku: str) -> Path:
        return self.root / "sources" / f"{sku}.jpg"

    def sheet(self, sku: str) -> Path:
        return self.root / "sheets" / f"{sku}.jpg"

    def run_dir(self, run_id: str) -> Path:
        return self.root / "runs" / run_id

    @property
    def manifest(self) -> Path:
        return self.root / "manifest.csv"

    @property
    def rejects(self) -> Path:
        return self.root / "rejects.csv"

    @property
    def index(self) -> Path:
        return self.root / "index.html"


def write_text_atomic(path: Path, text: str) -> None:
    write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: Path, payload: Any) -> None:
    write_text_atomic(path, json.dumps(payload, indent=2, sort_keys=True, default=str) + "\n")


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a fixed column order; values that are lists are joined with '|'."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "|".join(v) if isinstance(v, list | tuple) else v for k, v in row.items()})
    return buffer.getvalue()


@dataclass
class JobOutcome:
    """The final state of one planned image."""

    job_id: str
    sku: str
    pose: str
    variant: int
    seed: int
    state: str  # produced | skipped | failed
    reason: str = ""
    output: str = ""
    sidecar: str = ""
    flags: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for benchmarks


@dataclass
class ProductOutcome:
    """The final state of one product (one or more CSV rows)."""

    sku: str
    row: int
    state: str  # produced | skipped | failed | rejected
    reason: str = ""
    column: str = ""
    title: str = ""
    flags: list[str] = field(default_factory=list)
    sheet: str = ""
    source_rows: list[int] = field(default_factory=list)
    jobs: list[JobOutcome] = field(default_factory=list)


def product_state(jobs: Sequence[JobOutcome]) -> str:
    """failed if any job failed, skipped if every job was already done, else produced."""
    if any(job.state == "failed" for job in jobs):
        return "failed"
    if jobs and all(job.state == "skipped" for job in jobs):
        return "skipped"
    return "produced"


def manifest_rows(
    products: Sequence[ProductOutcome],
    rejects: Sequence[dict[str, Any]],
    *,
    renderer: str,
    fingerprint: str,
    run_id: str,
    root: Path,
) -> list[dict[str, Any]]:
    """One row per CSV reject, per product and per job: every input ends in exactly one state."""
    rows: list[dict[str, Any]] = []
    common = {"renderer": renderer, "fingerprint": fingerprint, "run_id": run_id}
    for reject in rejects:
        if reject.get("product_level"):
            continue  # the product row below carries it
        rows.append(
            {
                "kind": "row",
                "row": reject["row"],
                "sku": reject["sku"],
                "state": "rejected",
                "reason": f"{reject['column']}: {reject['reason']}",
                **common,
            }
        )
    for product in products:
        rows.append(
            {
                "kind": "product",
                "row": product.row,
                "sku": product.sku,
                "state": product.state,
                "reason": product.reason,
                "flags": product.flags,
                "sheet": _rel(product.sheet, root),
                **common,
            }
        )
        for job in product.jobs:
            rows.append(
                {
                    "kind": "job",
                    "row": product.row,
                    "sku": job.sku,
                    "job_id": job.job_id,
                    "pose": job.pose,
                    "variant": job.variant,
                    "seed": job.seed,
                    "state": job.state,
                    "reason": job.reason,
                    "flags": job.flags,
                    "output": _rel(job.output, root),
                    "sidecar": _rel(job.sidecar, root),
                    **common,
                }
            )
    return rows


def _rel(path: str, root: Path) -> str:
    if not path:
        return ""
    try:
        return str(Path(path).resolve().relative_to(root.resolve()))
    except ValueError:
        return path


def summary_counts(products: Sequence[ProductOutcome], csv_rejects: int) -> dict[str, int]:
    """Counts for the summary line, the index page and the Prefect artifact."""
    jobs = [job for product in products for job in product.jobs]
    return {
        "products": len(products),
        "rejected": csv_rejects + sum(product.state == "rejected" for product in products),
        "produced": sum(job.state == "produced" for job in jobs),
        "skipped": sum(job.state == "skipped" for job in jobs),
        "failed": sum(job.state == "failed" for job in jobs)
        + sum(product.state == "failed" and not product.jobs for product in products),
        "jobs": len(jobs),
    }


def to_jsonable(outcomes: Sequence[ProductOutcome]) -> list[dict[str, Any]]:
    return [asdict(outcome) for outcome in outcomes]


_CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:0;background:#f6f6f4;color:#222}
header{background:#1f2328;color:#fff;padding:18px 28px}header h1{margin:0;font-size:20px}
header p{margin:4px 0 0;color:#c9d1d9}main{padding:20px 28px}
.counts{display:flex;gap:12px;flex-wrap:wrap;margin-bottom:18px}
.count{background:#fff;border-radius:8px;padding:10px 16px;box-shadow:0 1px 2px #0002;min-width:90px}
.count b{display:block;font-size:22px}.count.failed b{color:#b42318}.count.rejected b{color:#b54708}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(230px,1fr));gap:14px}
.card{background:#fff;border-radius:8px;overflow:hidden;box-shadow:0 1px 2px #0002}
.card img{width:100%;display:block;background:#eee}.card div{padding:8px 10px}
.state{font-size:12px;padding:1px 6px;border-radius:9px;background:#e7f5ec;color:#067647}
.state.failed{background:#fee4e2;color:#b42318}.state.rejected{background:#fef0c7;color:#b54708}
.state.skipped{background:#eef2f6;color:#475467}.flag{color:#b54708;font-size:12px}
table{border-collapse:collapse;background:#fff;width:100%;margin:8px 0 24px}
td,th{border-bottom:1px solid #eee;padding:6px 10px;text-align:left;vertical-align:top}
h2{font-size:16px;margin:22px 0 8px}
"""


def render_index_html(
    *,
    title: str,
    run_id: str,
    counts: dict[str, int],
    products: Sequence[ProductOutcome],
    rejects: Sequence[dict[str, Any]],
    root: Path,
    details: dict[str, str],
) -> str:
    """The reviewers' entry page: counts, a card per product linking its contact sheet, rejects, failures."""
    esc = html.escape
    count_boxes = "".join(
        f'<div class="count {esc(name)}"><b>{value}</b>{esc(name)}</div>' for name, value in counts.items()
    )
    cards = []
    for product in products:
        sheet = _rel(product.sheet, root)
        image = (
            f'<a href="{esc(sheet)}"><img src="{esc(sheet)}" alt="contact sheet {esc(product.sku)}" loading="lazy"></a>'
            if sheet
            else ""
        )
        flags = "".join(f'<div class="flag">⚠ {esc(flag)}</div>' for flag in product.flags)
        reason = f"<div>{esc(product.reason)}</div>" if product.reason else ""
        cards.append(
            f'<div class="card" data-sku="{esc(product.sku)}">{image}<div><b>{esc(product.sku)}</b> '
            f'<span class="state {esc(product.state)}">{esc(product.state)}</span><br>{esc(product.title)}'
            f"{flags}{reason}</div></div>"
        )
    reject_rows = "".join(
        f"<tr><td>{esc(str(r['row']))}</td><td>{esc(r['sku'])}</td><td>{esc(r['column'])}</td><td>{esc(r['reason'])}</td></tr>"
        for r in rejects
    )
    failures = [(p, j) for p in products for j in p.jobs if j.state == "failed"]
    failure_rows = "".join(
        f"<tr><td>{esc(p.sku)}</td><td>{esc(j.job_id)}</td><td>{esc(j.reason)}</td></tr>" for p, j in failures
    ) + "".join(
        f"<tr><td>{esc(p.sku)}</td><td>(product)</td><td>{esc(p.reason)}</td></tr>"
        for p in products
        if p.state == "failed" and not p.jobs
    )
    detail_text = " · ".join(f"{esc(k)}: {esc(v)}" for k, v in details.items())
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<title>{esc(title)}</title><style>{_CSS}</style></head>
<body><header><h1>{esc(title)}</h1><p>run {esc(run_id)} · {detail_text}</p></header><main>
<div class="counts" id="counts">{count_boxes}</div>
<h2>Contact sheets</h2><div class="grid" id="products">{"".join(cards) or "<p>No products.</p>"}</div>
<h2>Rejected rows ({len(rejects)})</h2>
<table id="rejects"><tr><th>row</th><th>sku</th><th>column</th><th>reason</th></tr>{reject_rows}</table>
<h2>Failures ({len(failures)})</h2>
<table id="failures"><tr><th>sku</th><th>job</th><th>reason</th></tr>{failure_rows}</table>
<p><a href="manifest.csv">manifest.csv</a> · <a href="rejects.csv">rejects.csv</a></p>
</main></body></html>
"""
