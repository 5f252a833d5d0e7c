"""Benchmark: reading and validating a large CSV of each dialect, its time and its memory.

Writes an N-row CSV per dialect (onmodel with 3 and with 10 columns, a Shopify export of N/5 handles x 5 sizes,
a Google Merchant feed of N/5 item groups x 5 sizes; every row valid, all pointing at one small photo), then
runs `read_catalog` into a `SpooledRecords` as a run does: once timed, once traced (tracemalloc: the peak of
Python allocations and what is still held after it, the records' spool index). Prints a line per dialect with
the peak against the CSV's size (a table that held the file's rows, before 2026-12-06, peaked at
17-27x the CSV).

Usage: python bench/csv_validation.py --rows 100000 [--json out.json] [--only shopify ...]
"""

from __future__ import annotations

import argparse
import csv
import gc
import json
import shutil
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from PIL import Image  # noqa: E402

from catalog.read_catalog import read_catalog  # noqa: E402
from catalog.record_spool import SpooledRecords  # noqa: E402

SIZES = ("XS", "S", "M", "L", "XL")
PHOTO = "photo.png"


def _native_3(rows: int) -> Iterator[list[str]]:
    yield ["sku", "image", "category"]
    for i in range(rows):
        yield [f"SKU-{i}", PHOTO, "t-shirt"]


def _native_10(rows: int) -> Iterator[list[str]]:
    yield [
        "sku",
        "image",
        "category",
        "title",
        "color",
        "gender",
        "poses",
        "variants",
        "prompt",
        "negative_prompt",
    ]
    for i in range(rows):
        yield [
            f"SKU-{i}",
            PHOTO,
            "t-shirt",
            f"Cotton tee {i}",
            "navy",
            "female",
            "",
            "2",
            "studio light",
            "blurry",
        ]


def _shopify(rows: int) -> Iterator[list[str]]:
    yield ["Handle", "Title", "Option1 Name", "Option1 Value", "Variant SKU", "Image Src", "Type"]
    for i in range(rows // len(SIZES)):
        for n, size in enumerate(SIZES):  # the product's fields on its first row only, as Shopify exports
            first = n == 0
            yield [f"tee-{i}", f"Tee {i}" if first else "", "Size", size, f"TEE-{i}-{size}",
                   PHOTO if first else "", "T-Shirts" if first else ""]  # fmt: skip


def _merchant(rows: int) -> Iterator[list[str]]:
    yield ["id", "title", "image_link", "item_group_id", "color", "size", "product_type"]
    for i in range(rows // len(SIZES)):
        for size in SIZES:
            yield [f"G{i}-{size}", f"Tee {i}", PHOTO, f"G{i}", "navy", size, "Apparel > T-Shirts"]


DIALECTS: dict[str, tuple[Callable[[int], Iterator[list[str]]], int]] = {
    # name: (its rows, header first; rows per product)
    "native3": (_native_3, 1),
    "native10": (_native_10, 1),
    "shopify": (_shopify, len(SIZES)),
    "merchant": (_merchant, len(SIZES)),
}


def measure(csv_path: Path) -> dict[str, Any]:
    """Time one read, then trace a second one (tracing slows it down several times)."""
    gc.collect()
    started = time.perf_counter()
    result = read_catalog(csv_path, records=SpooledRecords())
    seconds = time.perf_counter() - started
    records, rejects = len(result.records), len(result.rejects)
    del result
    gc.collect()
    tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        result = read_catalog(csv_path, records=SpooledRecords())
        held, peak = (value - base for value in tracemalloc.get_traced_memory())
    finally:
        tracemalloc.stop()
    size = csv_path.stat().st_size
    return {
        "csv_bytes": size, "rows_read": result.rows_read, "records": records, "rejects": rejects,
        "seconds": seconds, "peak_mib": peak / 2**20, "held_mib": held / 2**20, "peak_per_csv_byte": peak / size,
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--only", nargs="+", choices=sorted(DIALECTS), help="these dialects only")
    parser.add_argument("--json", type=Path, help="also write the numbers as JSON")
    args = parser.parse_args(argv)
    folder = Path(tempfile.mkdtemp(prefix="onmodel-csv-bench-"))
    numbers: dict[str, dict[str, Any]] = {}
    try:
        Image.new("RGB", (8, 8), "red").save(folder / PHOTO)
        for name in args.only or DIALECTS:
            write_rows, rows_per_product = DIALECTS[name]
            csv_path = folder / f"{name}.csv"
            with csv_path.open("w", newline="", encoding="utf-8") as handle:
                csv.writer(handle).writerows(write_rows(args.rows))
            found = numbers[name] = measure(csv_path) | {"products": args.rows // rows_per_product}
            print(
                f"{name:9s} {found['rows_read']} rows ({found['csv_bytes'] / 2**20:.1f} MiB): "
                f"{found['seconds']:.2f} s, peak {found['peak_mib']:.1f} MiB "
                f"({found['peak_per_csv_byte']:.1f}x the CSV), held after {found['held_mib']:.1f} MiB; "
                f"{found['records']} records, {found['rejects']} rejects",
                flush=True,
            )
            csv_path.unlink()
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    if args.json:
        args.json.write_text(json.dumps(numbers, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
