"""The bookkeeping benchmark: a spooled run book holds tens of bytes per product, not the outcomes."""

from __future__ import annotations

import json
from pathlib import Path

from bench.book_memory import main


def test_a_spooled_book_holds_a_fraction_of_what_a_book_keeping_its_outcomes_holds(tmp_path: Path) -> None:
    numbers = {}
    for mode, extra in (("spooled", []), ("in_memory", ["--in-memory"])):
        assert main(["--products", "1000", "--json", str(tmp_path / f"{mode}.json"), *extra]) == 0
        numbers[mode] = json.loads((tmp_path / f"{mode}.json").read_text())
    spooled, kept = numbers["spooled"], numbers["in_memory"]
    assert spooled["spooled"] and not kept["spooled"]
    assert kept["book_bytes_per_product"] > 4000  # six jobs' outcomes per product
    # The spooled book's index and fixed costs (its file buffer, the template) against every outcome kept.
    assert spooled["book_bytes_per_product"] < kept["book_bytes_per_product"] / 5
    assert spooled["peak_bytes_per_product"] < kept["peak_bytes_per_product"] / 3


def test_records_from_a_csv_are_not_held_by_the_run(tmp_path: Path) -> None:
    """Per product more, the run holds its offset and SKU after validation, not the record (~1 KB)."""
    held = {}
    for products in (1000, 3000):
        out = tmp_path / f"{products}.json"
        assert main(["--products", str(products), "--from-csv", "--json", str(out)]) == 0
        numbers = json.loads(out.read_text())
        assert numbers["from_csv"] and numbers["products"] == products
        held[products] = numbers["held_after_validation_bytes_per_product"] * products
    assert (held[3000] - held[1000]) / 2000 < 300
