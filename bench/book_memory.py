"""The run's bookkeeping alone: memory per product of a run book fed N finished products, then published.

No pool, no images: N products come back as a device pool's chunks hand them over (6 jobs each, two presets),
into a run book that spools them (as the flow's does) or, with --in-memory, one that keeps them (a chunk's book;
also what every book did before the spool: the script runs on such a version too, for a before/after). Memory is
traced Python allocations (tracemalloc), so it counts what the bookkeeping allocates and nothing of the
interpreter or the libraries.

    PYTHONPATH=$PWD python bench/book_memory.py --products 10000

With --from-csv the records come the way a run's do: a generated CSV of N rows through start_run (validation,
the records spooled to disk), the products handed to the book chunk by chunk, and each chunk's products
recorded in a SQLite state store as a nightly run records them (CatalogueSightings), then finished (retirement)
and published. It prints the validation's peak and what the run still holds after it, per product.

    PYTHONPATH=$PWD python bench/book_memory.py --products 100000 --from-csv
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

from catalog.schema import GarmentClass, ImageRef, ProductRecord
from pipelines.production.book import RunBook
from pipelines.production.layout import LocalStorage
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RunReport
from pipelines.production.report import publish_report

JOBS_PER_PRODUCT = 6


def _jobs(sku: str) -> list[JobOutcome]:
    jobs = []
    for variant in range(JOBS_PER_PRODUCT):
        job_id = f"{sku}__front__v{variant}"
        image = f"images/amazon/{sku}/{job_id}.jpg"
        jobs.append(
            JobOutcome(
                job_id,
                sku,
                "front",
                variant,
                variant,
                "produced",
                output=image,
                sidecar=f"images/amazon/{sku}/{job_id}.json",
                outputs={"master": f"images/master/{sku}/{job_id}.png", "amazon": image},
                render_id="0123456789abcdef",
                timings={"render": 0.3, "place": 0.01},
            )  # fmt: skip
        )
    return jobs


def measure(products: int, in_memory: bool, out: Path) -> dict[str, Any]:
    records = [
        ProductRecord(f"SKU-{i:06d}", ImageRef(raw=f"{i}.png", path=Path(f"{i}.png")), "t-shirt",
                      GarmentClass.UPPER, i + 2)
        for i in range(products)
    ]  # fmt: skip
    options: dict[str, Any] = {}
    if not in_memory:
        from pipelines.production.spool import OutcomeSpool  # absent before the spool

        options["spool"] = OutcomeSpool(out / "runs" / "r" / "outcomes.jsonl")
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    book = RunBook(records, batch_size=8, default_poses=lambda _class: ("front",), **options)
    for record in records:
        outcome = ProductOutcome(record.sku, record.row, "produced", title="A title", jobs=_jobs(record.sku))
        outcome.sheet = f"sheets/{record.sku}.jpg"
        book.product_done(outcome)
    book_bytes = tracemalloc.get_traced_memory()[0] - base
    report = RunReport("r", str(out), "in.csv", "onmodel", "bench", "draft", "master", "f", "t", 1.0,
                       products=book.products(), rejects=[])  # fmt: skip
    started = time.perf_counter()
    publish_report(report, LocalStorage(out))
    publish_s = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    return {
        "products": products,
        "spooled": not in_memory,
        "book_bytes_per_product": book_bytes / products,
        "peak_mib": peak / 2**20,
        "peak_bytes_per_product": peak / products,
        "publish_s": publish_s,
    }


def measure_run(products: int, out: Path) -> dict[str, Any]:
    """The run's bookkeeping from a CSV: validation, the spooled records, the book, the store, publication."""
    from catalog.state import SQLiteJobStore
    from pipelines.poses import load_pose_library
    from pipelines.presets import load_presets
    from pipelines.production.book import chunks
    from pipelines.production.profile import load_profile
    from pipelines.production.runs import CatalogueSightings
    from pipelines.production.spool import OutcomeSpool
    from pipelines.production.validate import start_run

    folder = out / "in"
    folder.mkdir(parents=True)
    (folder / "p.png").write_bytes(b"")  # validation resolves the path; no photo is opened here
    lines = ["sku,image,category,title"] + [f"SKU-{i:06d},p.png,t-shirt,A title {i}" for i in range(products)]
    csv_path = folder / "products.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    del lines
    profile = load_profile(Path(__file__).resolve().parent.parent / "configs" / "demo.yaml")
    presets, poses = load_presets(), load_pose_library()
    store = SQLiteJobStore(out / "state.sqlite")
    tracemalloc.start()
    base = tracemalloc.get_traced_memory()[0]
    started = time.perf_counter()
    run = start_run(csv_path, profile, device="cpu", force=False, only=None, presets=presets, poses=poses)
    validate_s = time.perf_counter() - started
    held, validation_peak = (value - base for value in tracemalloc.get_traced_memory())
    tracemalloc.reset_peak()
    store.record_run_started(run.ctx.run_id, profile="demo", csv=str(csv_path), trigger="nightly")
    spool = OutcomeSpool(out / "runs" / run.ctx.run_id / "outcomes.jsonl")
    book = RunBook(run.records, batch_size=8, default_poses=lambda _class: ("front",), spool=spool)
    sightings = CatalogueSightings(run, store)
    for part in chunks(run.records, 256):
        for record in part:
            outcome = ProductOutcome(
                record.sku, record.row, "produced", title=record.title, jobs=_jobs(record.sku)
            )
            outcome.sheet = f"sheets/{record.sku}.jpg"
            book.product_done(outcome)
        sightings.chunk_done(part, {record.sku: "0" * 64 for record in part})
    run_bytes = tracemalloc.get_traced_memory()[0] - base
    kept = sightings.finish()
    report = RunReport(run.ctx.run_id, str(out), str(csv_path), "onmodel", "bench", "draft", "master", "f", "t", 1.0,
                       products=book.products(), rejects=[])  # fmt: skip
    publish_report(report, LocalStorage(out))
    peak = tracemalloc.get_traced_memory()[1] - base
    tracemalloc.stop()
    assert kept.recorded == products and report.counts["products"] == products
    return {
        "products": products,
        "from_csv": True,
        "validate_s": validate_s,
        "validation_peak_mib": validation_peak / 2**20,
        "validation_peak_bytes_per_product": validation_peak / products,
        "held_after_validation_bytes_per_product": held / products,
        "held_before_publication_bytes_per_product": run_bytes / products,
        "peak_after_validation_mib": peak / 2**20,
        "peak_after_validation_bytes_per_product": peak / products,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--products", type=int, default=10000)
    parser.add_argument("--in-memory", action="store_true", help="a book that keeps its outcomes (no spool)")
    parser.add_argument("--from-csv", action="store_true", help="records from a CSV through start_run")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    out = Path(tempfile.mkdtemp(prefix="onmodel-book-bench-"))
    try:
        numbers = (
            measure_run(args.products, out) if args.from_csv else measure(args.products, args.in_memory, out)
        )
    finally:
        shutil.rmtree(out, ignore_errors=True)
    if args.from_csv:
        print(
            f"{numbers['products']} products from a CSV: validation {numbers['validate_s']:.1f} s, peak "
            f"{numbers['validation_peak_mib']:.1f} MiB ({numbers['validation_peak_bytes_per_product']:.0f} B per "
            f"product); then the run holds {numbers['held_after_validation_bytes_per_product']:.0f} B per product "
            f"after validation, {numbers['held_before_publication_bytes_per_product']:.0f} B with the book and the "
            f"store's sightings, peaks at {numbers['peak_after_validation_mib']:.1f} MiB "
            f"({numbers['peak_after_validation_bytes_per_product']:.0f} B per product) with the publication "
            "(traced: tracemalloc)"
        )
    else:
        print(
            f"{numbers['products']} products, {'spooled' if numbers['spooled'] else 'kept in memory'}: the book "
            f"{numbers['book_bytes_per_product']:.0f} B per product, peak with the publication "
            f"{numbers['peak_mib']:.1f} MiB ({numbers['peak_bytes_per_product']:.0f} B per product), publication "
            f"{numbers['publish_s']:.1f} s (traced: tracemalloc slows it)"
        )
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
