"""Decoding, delimiter detection, row numbering and file-level errors of product CSVs."""

from __future__ import annotations

import codecs
import csv
import io
import random
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from catalog.csv_reading import (
    CsvTable,
    decode_csv_bytes,
    detect_delimiter,
    normalise_header,
    read_csv_table,
    split_csv_text,
)
from catalog.errors import CatalogError


def _by_row(table: CsvTable) -> dict[int, dict[str, str]]:
    """row -> {column: cell}, every column, as the dialects read them."""
    return {row: dict(zip(table.columns, cells, strict=True)) for row, *cells in table.rows()}


ACCENTED = (
    "sku,image,category,title\nA1,img1.png,dress,Robe été crème à fleurs\nB2,img2.png,skirt,Größe Señora\n"
)


@pytest.mark.parametrize(
    ("encoding", "bom"),
    [
        ("utf-8", b""),
        ("utf-8", codecs.BOM_UTF8),
        ("utf-16-le", codecs.BOM_UTF16_LE),
        ("utf-16-be", codecs.BOM_UTF16_BE),
        ("utf-16-le", b""),  # no BOM: recognised from the NUL pattern
        ("cp1252", b""),
        ("latin-1", b""),
    ],
)
def test_encodings_decode_to_the_same_text(encoding: str, bom: bytes) -> None:
    decoded = decode_csv_bytes(bom + ACCENTED.encode(encoding))
    assert decoded.text == ACCENTED
    table = split_csv_text(decoded)
    assert table.columns[:3] == ("sku", "image", "category")  # no BOM left on the first header
    assert _by_row(table)[2]["title"] == "Robe été crème à fleurs"


def test_cp1252_specific_characters_survive() -> None:
    text = "sku,image,category,title\nA,img1.png,dress,“smart” dress – €90\n"
    assert decode_csv_bytes(text.encode("cp1252")).text == text


@pytest.mark.parametrize(
    ("header_line", "delimiter"),
    [
        ("sku,image,category", ","),
        ("sku;image;category", ";"),
        ("id\ttitle\timage_link", "\t"),
        ('"sku;x",image,category', ","),  # delimiters inside quotes do not count
        ("sku", ","),
    ],
)
def test_delimiter_detected_from_the_header(header_line: str, delimiter: str) -> None:
    assert detect_delimiter(header_line) == delimiter


@pytest.mark.parametrize(
    ("cell", "name"),
    [
        ("  SKU ", "sku"),
        ("Variant SKU", "variant_sku"),
        ("Image  Src", "image_src"),
        ("g:image_link", "image_link"),
    ],
)
def test_header_names_are_normalised(cell: str, name: str) -> None:
    assert normalise_header(cell) == name


def test_row_numbers_count_multiline_fields_and_blank_lines_like_a_spreadsheet() -> None:
    text = 'sku,title\r\nA,"two\r\nlines"\r\n\r\nB,plain\r\n,,\r\nC,"x, y"\r\n'
    table = split_csv_text(decode_csv_bytes(text.encode()))
    assert list(_by_row(table)) == [2, 4, 6]
    assert [cells["sku"] for cells in _by_row(table).values()] == ["A", "B", "C"]
    assert _by_row(table)[2]["title"] == "two\r\nlines"
    assert table.rows_read == 3


def test_excel_sep_line_names_the_delimiter_and_is_not_a_row() -> None:
    table = split_csv_text(decode_csv_bytes(b"sep=;\r\nsku;image;category\r\nA;img1.png;dress\r\n"))
    assert table.delimiter == ";"
    assert table.header_row == 1
    assert list(_by_row(table)) == [2]


def test_stray_delimiter_rejects_that_row_only() -> None:
    text = "sku,image,category,title\nA,a.png,dress,Nice\nB,b.png,shirt,Blue, cotton\nC,c.png,skirt\n"
    table = split_csv_text(decode_csv_bytes(text.encode()))
    assert [(r.row, r.column, r.sku) for r in table.rejects] == [(3, "", "B")]
    assert "a stray delimiter?" in table.rejects[0].reason and "Quote the field" in table.rejects[0].reason
    assert [cells["sku"] for cells in _by_row(table).values()] == ["A", "C"]
    assert _by_row(table)[4]["title"] == ""  # short rows are padded with empty cells
    assert table.rows_read == 3


def test_cells_are_stripped() -> None:
    table = split_csv_text(decode_csv_bytes(b"sku , image\n  A  ,\timg1.png \n"))
    assert list(table.rows()) == [(2, "A", "img1.png")]
    assert table.headers == {"sku": "sku", "image": "image"}


@pytest.mark.parametrize(
    ("data", "phrase"),
    [
        (b"", "The file is empty"),
        (b"  \r\n\r\n", "The file is empty"),
        (codecs.BOM_UTF8, "The file is empty"),
        (b",,,\n,,,\n", "The file is empty"),
        (b"sku,image,category\r\n", "no product rows"),
        (b"sku,image,category\r\n,,\r\n", "no product rows"),
        (random.Random(7).randbytes(4000), "does not look like CSV text"),
        (random.Random(8).randbytes(4000).replace(b"\x00", b"x"), "does not look like CSV text"),
        (b"PK\x03\x04" + bytes(200), "Excel workbook"),
        (b"\x89PNG\r\n\x1a\n" + bytes(100), "PNG image"),
        (b"sku,image\n\x01\x02\x03\x04\x05\x06\x07,x\n", "control characters"),
        (b"sku,Image,IMAGE\nA,b,c\n", "twice"),
    ],
)
def test_file_level_problems_raise_catalog_error(data: bytes, phrase: str) -> None:
    with pytest.raises(CatalogError, match=phrase):
        split_csv_text(decode_csv_bytes(data))


def test_missing_file_and_folder_raise_catalog_error(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        read_csv_table(tmp_path / "nope.csv")
    with pytest.raises(CatalogError, match="is a folder"):
        read_csv_table(tmp_path)


_cell = st.text(
    alphabet=st.characters(blacklist_categories=("Cs", "Cc")) | st.sampled_from(',;\t"\n'), max_size=12
)


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(
    delimiter=st.sampled_from([",", ";", "\t"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]),
    rows=st.lists(st.lists(_cell, min_size=3, max_size=3), min_size=1, max_size=6),
)
def test_written_csv_reads_back_cell_for_cell(delimiter: str, encoding: str, rows: list[list[str]]) -> None:
    # Rows whose cells are all blank are skipped by design (spreadsheets export them as ",,").
    rows = [row for row in rows if any(cell.strip() for cell in row)]
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, delimiter=delimiter, quoting=csv.QUOTE_ALL, lineterminator="\r\n")
    writer.writerow(["sku", "image", "category"])
    writer.writerows(rows)
    data = buffer.getvalue().encode(encoding)
    if not rows:
        with pytest.raises(CatalogError):
            split_csv_text(decode_csv_bytes(data))
        return
    table = split_csv_text(decode_csv_bytes(data))
    assert table.delimiter == delimiter
    assert list(table.rows()) == [
        (row, *(cell.strip() for cell in cells)) for row, cells in enumerate(rows, 2)
    ]


def test_rows_read_named_columns_in_any_order_and_absent_ones_as_empty() -> None:
    table = split_csv_text(decode_csv_bytes(b"sku,image,title\nA,a.png,Nice\nB,b.png\n"))
    assert list(table.rows(["title", "sku", "poses"])) == [(2, "Nice", "A", ""), (3, "", "B", "")]


def test_line_endings_of_every_kind_split_rows_and_stay_inside_quoted_fields() -> None:
    text = 'sku,title\rA,"one\rtwo"\nB,"three\nfour"\r\nC,last'
    table = split_csv_text(decode_csv_bytes(text.encode()))
    assert list(table.rows()) == [(2, "A", "one\rtwo"), (3, "B", "three\nfour"), (4, "C", "last")]


def test_a_quote_left_open_names_its_row() -> None:
    # The open quote swallows the rest of the file into one field, until the csv module's field limit.
    rest = "".join(f"C{index},plain\n" for index in range(20_000))
    with pytest.raises(CatalogError, match=r"Row 3: .*A quote may be left open"):
        split_csv_text(decode_csv_bytes(f'sku,title\nA,x\nB,"open\n{rest}'.encode()))


def test_a_table_holds_no_row_of_a_large_csv() -> None:
    # A run validates a 100k-row CSV product by product: checking the rows and reading them back must not build
    # them all (nor a 4-bytes-a-character copy of the text, as csv over io.StringIO does).
    lines = [
        f"SKU-{index:06d},images/photo-{index % 97}.jpg,dress,Summer dress {index}" for index in range(20_000)
    ]
    text = "sku,image,category,title\n" + "\n".join(lines) + "\n"
    decoded = decode_csv_bytes(text.encode())
    tracemalloc.start()
    try:
        table = split_csv_text(decoded)
        checked = tracemalloc.get_traced_memory()[1]
        tracemalloc.reset_peak()
        assert sum(1 for _ in table.rows(["sku", "title"])) == 20_000
        read = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert table.rows_read == 20_000
    assert checked < len(text) // 4, f"checking held {checked} B for a {len(text)} B text"
    assert read < len(text) // 4, f"reading the rows held {read} B for a {len(text)} B text"
