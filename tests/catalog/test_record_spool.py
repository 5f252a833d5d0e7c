"""A run's records on disk: every record back, equal, in order, by index, slice and iteration."""

from __future__ import annotations

import os
import pickle
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import catalog.record_spool as record_spool
from catalog.read_catalog import read_catalog
from catalog.record_spool import SpooledRecords, record_skus
from catalog.schema import CoveredRow, GarmentClass, ImageRef, ProductRecord


def _record(i: int, title: str = "") -> ProductRecord:
    return ProductRecord(
        f"SKU-{i:05d}",
        ImageRef(raw=f"p{i}.jpg", path=Path(f"/photos/p{i}.jpg")),
        "t-shirt",
        GarmentClass.UPPER,
        i + 2,
        title=title or f"Tee {i}",
        poses=("front", "walking"),
        variants=2,
        source_identity=(("system", "shopify"), ("handle", f"tee-{i}")),
        covered=(CoveredRow(i + 3, f"SKU-{i:05d}-M", (("Size", "M"),)),),
    )


@settings(max_examples=30, deadline=None)
@given(
    titles=st.lists(st.text(max_size=300), max_size=40), start=st.integers(-45, 45), stop=st.integers(-45, 45)
)
def test_records_come_back_equal_and_in_order(titles: list[str], start: int, stop: int) -> None:
    records = [_record(i, title) for i, title in enumerate(titles)]
    spooled = SpooledRecords(records)
    assert len(spooled) == len(records)
    assert list(spooled) == records
    assert record_skus(spooled) == record_skus(records) == [record.sku for record in records]
    assert spooled[start:stop] == records[start:stop]
    assert spooled[::3] == records[::3]
    for index in range(-len(records), len(records)):
        assert spooled[index] == records[index]
    with pytest.raises(IndexError):
        spooled[len(records)]


def test_iteration_reads_blocks_of_whole_records(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(record_spool, "_READ_BLOCK", 700)  # a few records a block, one if a record is larger
    records = [_record(i, "x" * (i * 97 % 1500)) for i in range(60)]
    spooled = SpooledRecords(records)
    assert list(spooled) == records
    assert spooled[7:41] == records[7:41]


def test_records_appended_after_a_read_are_read_too() -> None:
    spooled = SpooledRecords([_record(0)])
    assert spooled[0] == _record(0)
    spooled.append(_record(1))
    assert list(spooled) == [_record(0), _record(1)]


def test_threads_read_at_once() -> None:
    records = [_record(i) for i in range(300)]
    spooled = SpooledRecords(records)
    seen: list[bool] = []

    def read(offset: int) -> None:
        seen.append(
            all(spooled[(i * 7 + offset) % 300] == records[(i * 7 + offset) % 300] for i in range(300))
        )

    threads = [threading.Thread(target=read, args=(offset,)) for offset in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert seen == [True] * 4


def test_the_file_has_no_name_and_pickling_carries_the_records() -> None:
    spooled = SpooledRecords([_record(0), _record(1)])
    assert os.fstat(spooled._file.fileno()).st_nlink == 0  # unlinked: a kill -9 leaves nothing behind
    copied = pickle.loads(pickle.dumps(spooled))
    assert isinstance(copied, SpooledRecords) and list(copied) == list(spooled)
    spooled.close()
    assert list(copied) == [_record(0), _record(1)]


def test_read_catalog_validates_into_a_spool_as_into_a_list(tmp_path: Path) -> None:
    (tmp_path / "a.jpg").write_bytes(b"")
    rows = ["sku,image,category,title"] + [f"SKU-{i},a.jpg,t-shirt,Tee {i}" for i in range(25)]
    rows += ["SKU-3,a.jpg,t-shirt,again", "SKU-X,a.jpg,spaceship,?"]  # a repeat and an unknown category
    csv = tmp_path / "products.csv"
    csv.write_text("\n".join(rows) + "\n")
    listed = read_catalog(csv)
    spooled = read_catalog(csv, records=SpooledRecords())
    assert isinstance(spooled.records, SpooledRecords)
    assert list(spooled.records) == list(listed.records) and len(listed.records) == 25
    assert spooled.rejects == listed.rejects and len(listed.rejects) == 2
