"""The CSV validation benchmark: every dialect's rows end as records, and the numbers come out."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench.csv_validation import DIALECTS, main


def test_every_row_of_every_dialect_becomes_a_product(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "numbers.json"
    assert main(["--rows", "500", "--json", str(out)]) == 0
    numbers = json.loads(out.read_text())
    assert set(numbers) == set(DIALECTS)
    for name, found in numbers.items():
        assert found["rows_read"] == 500, name
        assert (found["records"], found["rejects"]) == (found["products"], 0), name
        assert found["peak_mib"] > 0 and found["seconds"] > 0, name
    assert numbers["shopify"]["products"] == numbers["merchant"]["products"] == 100
    assert capsys.readouterr().out.count("x the CSV") == len(DIALECTS)
