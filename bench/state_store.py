"""Benchmark: the state store's share of nightly planning over a large catalogue, on SQLite and PostgreSQL.

Fills a fresh store with `--jobs` produced jobs (3 per product) and their products, then times what a nightly
run asks of it: get_many over every job id, mark_seen, record_products (a full run's bookkeeping) and
get_products over every product, retire_missing,
claiming the 1 % that changed, and the status counts. Prints seconds and rows/s per step and the total.
PostgreSQL is measured when --postgres-url (or $ONMODEL_TEST_POSTGRES_URL) names a server database; a new
database is created on it and dropped afterwards.

Usage: python bench/state_store.py --jobs 100000 [--postgres-url postgresql+psycopg://u:p@127.0.0.1:5432/db]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import insert  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from catalog.state import ProductSighting, SQLJobStore, open_job_store  # noqa: E402
from catalog.state_tables import jobs, products  # noqa: E402

POSES = ("front", "back", "side")


def fill(store: SQLJobStore, job_count: int) -> tuple[list[str], list[str]]:
    """job_count produced jobs (3 poses per product) and their products, written in bulk; their ids and keys."""
    skus = [f"SKU-{index:07d}" for index in range(job_count // len(POSES))]
    job_ids = [f"{sku}/{pose}/0" for sku in skus for pose in POSES]
    now = "2025-01-01T02:00:00.000000+00:00"
    outputs = json.dumps(["images/master/x.png", "images/master/x.json"])
    job_rows = [
        {
            "job_id": job_id,
            "sku": job_id.split("/")[0],
            "image_hash": "a" * 64,
            "config_fingerprint": "f" * 16,
            "status": "produced",
            "outputs": outputs,
            "reason": "",
            "updated_at": now,
            "seed": 1234,
            "flags": "[]",
            "attempts": 1,
            "last_error": "",
            "last_run_id": "n0",
            "first_produced_run": "n0",
            "render_fields": json.dumps({"prompt": "a linen shirt", "category": "shirt"}),
            "render_fingerprint": "r" * 16,
        }
        for job_id in job_ids
    ]
    product_rows = [
        {
            "product_key": sku,
            "source_identity": json.dumps({"path": f"/photos/{sku}.jpg", "size": 123456, "mtime_ns": 1}),
            "image_hash": "a" * 64,
            "first_seen_run": "n0",
            "last_seen_run": "n0",
            "first_seen_at": now,
            "last_seen_at": now,
        }
        for sku in skus
    ]
    with store.engine.begin() as connection:
        for start in range(0, len(job_rows), 5000):
            connection.execute(insert(jobs), job_rows[start : start + 5000])
        for start in range(0, len(product_rows), 5000):
            connection.execute(insert(products), product_rows[start : start + 5000])
    return job_ids, skus


def timed(name: str, rows: int, step: Callable[[], object]) -> float:
    started = time.perf_counter()
    step()
    seconds = time.perf_counter() - started
    print(f"  {name:<34} {seconds:7.3f} s  {rows / seconds:>12,.0f} rows/s")
    return seconds


def measure(url: str, label: str, job_count: int) -> None:
    """Every planning step a nightly run asks of the store, timed on one backend."""
    with open_job_store(url) as store:
        started = time.perf_counter()
        job_ids, skus = fill(store, job_count)
        print(
            f"{label}: {len(job_ids):,} jobs, {len(skus):,} products (filled in {time.perf_counter() - started:.1f} s)"
        )
        store.record_run_started("n1", profile="demo", csv="catalog.csv", trigger="nightly")
        changed = job_ids[::100]  # 1 % changed
        total = 0.0
        total += timed("get_many (every job)", len(job_ids), lambda: store.get_many(job_ids))
        total += timed("get_products (every product)", len(skus), lambda: store.get_products(skus))
        total += timed("mark_seen (every product)", len(skus), lambda: store.mark_seen(skus, "n1"))
        sightings = [
            ProductSighting(
                sku, "b" * 64, {"image": f"/photos/{sku}.jpg"}, {"category": "shirt", "title": sku}
            )
            for sku in skus
        ]
        total += timed(
            "record_products (every product)", len(skus), lambda: store.record_products(sightings, "n1")
        )
        total += timed(
            "retire_missing (10 dropped)", len(skus), lambda: store.retire_missing(skus[10:], "n1")
        )
        total += timed("claim (1 % changed)", len(changed), lambda: store.claim(changed, "n1", 3600))
        total += timed("release (1 % changed)", len(changed), lambda: store.release(changed, "n1"))
        total += timed("counts_by_status", len(job_ids), store.counts_by_status)
        print(f"  {'planning total':<34} {total:7.3f} s")


@contextmanager
def postgres_database(admin_url: str) -> Iterator[str]:
    """A new database on the server of admin_url, dropped afterwards."""
    import psycopg

    url = make_url(admin_url)
    conninfo = url.set(drivername="postgresql").render_as_string(hide_password=False)
    name = f"onmodel_bench_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(conninfo, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield url.set(database=name).render_as_string(hide_password=False)
    finally:
        with psycopg.connect(conninfo, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=100_000)
    parser.add_argument("--postgres-url", default=os.environ.get("ONMODEL_TEST_POSTGRES_URL", ""))
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        measure(str(Path(folder) / "state.sqlite"), "SQLite", args.jobs)
    if args.postgres_url:
        with postgres_database(args.postgres_url) as url:
            measure(url, "PostgreSQL", args.jobs)
    else:
        print("PostgreSQL: not measured (give --postgres-url or set ONMODEL_TEST_POSTGRES_URL)")


if __name__ == "__main__":
    main()
