"""Decode a product CSV (UTF-8/16, BOMs, cp1252) and split it into rows with true spreadsheet row numbers.

File-level problems raise `CatalogError`; `read_catalog` turns those about the file's content (empty, header
only, not text) into one row-0 reject and lets only a missing or unreadable file raise.
"""

from __future__ import annotations

import codecs
import csv
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import charset_normalizer

from catalog.errors import CatalogError
from catalog.schema import Reject

DELIMITERS = (",", ";", "\t")
SKU_COLUMNS = ("sku", "variant_sku", "id", "handle")  # normalised names that identify a row's product
DELIMITER_NAMES = {",": "comma", ";": "semicolon", "\t": "tab"}
_BOMS = (  # longest first: the UTF-32 LE BOM starts with the UTF-16 LE one
    (codecs.BOM_UTF32_LE, "utf-32"),
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_BINARY_SIGNATURES = (
    (
        b"PK\x03\x04",
        "an Excel workbook (.xlsx) or another zip archive; in Excel use File > Save As > CSV UTF-8",
    ),
    (b"\xd0\xcf\x11\xe0", "an old Excel workbook (.xls); in Excel use File > Save As > CSV UTF-8"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG", "a PNG image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"GIF8", "a GIF image"),
)
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
_EXCEL_SEPARATOR_HINT = re.compile(r"^\ufeff?sep=(.)\r?\n", re.IGNORECASE)
_HEADER_SEPARATORS = re.compile(r"[\s_\-]+")
_LINE = re.compile(r"[^\r\n]*(?:\r\n|\r|\n)|[^\r\n]+\Z")


@dataclass(frozen=True)
class DecodedText:
    """A CSV file's text and the encoding it was read with."""

    text: str
    encoding: str


@dataclass
class CsvTable:
    """A CSV's header, and its rows read on demand: `rows()` parses the text again, so no row is held.

    A 100k-row catalogue is validated product by product; holding its cells (a frame, or the csv module's
    StringIO, which keeps 4 bytes a character) was most of a run's memory peak.
    """

    text: str  # the records, after any "sep=" line
    columns: tuple[str, ...]  # normalised header names, in header order
    headers: dict[str, str]  # normalised name -> header cell as written
    header_row: int
    delimiter: str
    encoding: str
    # Rows that could not be split into the header's columns (`rows()` leaves them out).
    rejects: list[Reject] = field(default_factory=list)
    rows_read: int = 0  # data rows seen, rejected ones included, blank ones not

    def rows(self, columns: Iterable[str] | None = None) -> Iterator[tuple[Any, ...]]:
        """(row, cell, cell, ...) per data row in file order: cells stripped, absent columns (and the cells a
        short row lacks) read as empty, blank and rejected rows left out. columns: names (default: all)."""
        names = self.columns if columns is None else tuple(columns)
        width = len(self.columns)
        # An absent column reads the padding cell past the row's end (one list index per cell: at 100k rows of
        # 10 columns a per-cell condition costs ~0.3 s).
        positions = [self.columns.index(name) if name in self.columns else width for name in names]
        padding = [""] * (width + 1)
        for row_number, fields in _csv_records(self.text, self.delimiter):
            if row_number <= self.header_row or len(fields) > width:
                continue  # the header, or a row split into too many fields (rejected by split_csv_text)
            fields += padding[len(fields) :]  # spreadsheets drop trailing empty cells
            yield (row_number, *[fields[i].strip() for i in positions])


def normalise_header(name: str) -> str:
    """'  Variant SKU ' -> 'variant_sku'; 'g:image_link' -> 'image_link' (case- and whitespace-insensitive)."""
    normalised = _HEADER_SEPARATORS.sub("_", name.strip().lower()).strip("_")
    return normalised.removeprefix("g:")


def read_csv_bytes(csv_path: Path) -> bytes:
    """The file's bytes; a missing, unreadable or non-file path raises CatalogError."""
    path = Path(csv_path)
    if not path.exists():
        raise CatalogError(f"The product file '{path}' does not exist. Check the path and the file name.")
    if not path.is_file():
        raise CatalogError(f"'{path}' is a folder, not a product CSV file. Give the path of the .csv file.")
    try:
        return path.read_bytes()
    except OSError as error:
        raise CatalogError(f"The product file '{path}' cannot be read ({error.strerror}).") from error


def _utf16_without_bom(sample: bytes) -> str | None:
    """'utf-16-le'/'utf-16-be' when NUL bytes sit in every other position (ASCII text as UTF-16), else None."""
    even, odd = sample[0::2], sample[1::2]
    if not odd:
        return None
    if odd.count(0) > 0.4 * len(odd) and even.count(0) < 0.05 * len(even):
        return "utf-16-le"
    if even.count(0) > 0.4 * len(even) and odd.count(0) < 0.05 * len(odd):
        return "utf-16-be"
    return None


def decode_csv_bytes(data: bytes) -> DecodedText:
    """Decode CSV bytes: BOMs first, then UTF-8, then UTF-16 without BOM, then cp1252/Latin-1 (detected)."""
    if not data.strip(b" \t\r\n\x00" + codecs.BOM_UTF8):
        raise CatalogError("The file is empty. Export the product sheet again, with its header row, as CSV.")
    for signature, description in _BINARY_SIGNATURES:
        if data.startswith(signature):
            raise CatalogError(f"This is not a CSV text file: it looks like {description}.")

    # 1. A byte-order mark says the encoding outright.
    encoding = next((name for bom, name in _BOMS if data.startswith(bom)), None)
    # 2. Most files are UTF-8 (strict: a cp1252 file almost never decodes as UTF-8 by accident).
    if encoding is None:
        try:
            data.decode("utf-8")
            encoding = "utf-8"
        except UnicodeDecodeError:
            pass
    # 3. NUL bytes: UTF-16 without a BOM, or binary.
    if encoding is None and b"\x00" in data[:65536]:
        encoding = _utf16_without_bom(data[:65536])
    # 4. Single-byte Western text (Excel on Windows writes cp1252); charset-normalizer says whether it is text.
    if encoding is None and b"\x00" not in data[:65536]:
        guess = charset_normalizer.from_bytes(data[:262144], cp_isolation=["cp1252", "latin_1"]).best()
        encoding = guess.encoding if guess is not None else None
    if encoding is None:
        raise CatalogError(
            "This file does not look like CSV text (it holds binary data or an unknown encoding). "
            "Export the product sheet as 'CSV UTF-8'."
        )

    try:
        text = data.decode(encoding)
    except UnicodeDecodeError:
        # The guess saw only the start of the file; Latin-1 never fails.
        encoding, text = "latin_1", data.decode("latin_1")
    text = text.removeprefix("\ufeff")
    sample = text[:65536]
    if len(_CONTROL_CHARACTERS.findall(sample)) > max(2, 0.01 * len(sample)):
        raise CatalogError(
            "This file does not look like CSV text (it holds control characters or binary data). "
            "Export the product sheet as 'CSV UTF-8'."
        )
    return DecodedText(text=text, encoding=encoding)


def detect_delimiter(header_line: str) -> str:
    """The delimiter (comma, semicolon or tab) that occurs most often outside quotes in the header line."""
    counts = dict.fromkeys(DELIMITERS, 0)
    in_quotes = False
    for character in header_line:
        if character == '"':
            in_quotes = not in_quotes
        elif not in_quotes and character in counts:
            counts[character] += 1
    best = max(DELIMITERS, key=lambda delimiter: counts[delimiter])  # ties keep the earlier (comma first)
    return best if counts[best] > 0 else ","


def _stray_delimiter_reason(fields: list[str], n_columns: int, delimiter: str) -> str:
    """Why a row with more fields than the header is rejected, in a merchandiser's words."""
    name = DELIMITER_NAMES[delimiter]
    reason = (
        f"This row has {len(fields)} fields but the header has {n_columns} columns: a stray delimiter? "
        f'Quote the field that contains a {name} ("like{delimiter} this") or remove the extra {name}.'
    )
    if any("\n" in value for value in fields):
        reason += " A field spans several lines, so a quote may also be left open."
    return reason


def _lines(text: str) -> Iterator[str]:
    """The text's lines with their endings (CRLF, CR or LF), as a file opened with newline="" gives them."""
    return (match.group() for match in _LINE.finditer(text))


def _csv_records(text: str, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(spreadsheet row, fields) of each record that is not blank; a quoted multi-line field is one row.

    A malformed record raises CatalogError naming its row.
    """
    reader = csv.reader(_lines(text), delimiter=delimiter, strict=False)
    row_number = 0
    try:
        for fields in reader:
            row_number += 1
            if "".join(fields).strip():  # blank rows, including ",,,," from spreadsheets
                yield row_number, fields
    except csv.Error as error:
        quote_hint = " A quote may be left open." if "field larger" in str(error) else ""
        raise CatalogError(
            f"Row {row_number + 1}: the CSV cannot be split into fields ({error}).{quote_hint}"
        ) from error


def split_csv_text(decoded: DecodedText) -> CsvTable:
    """Check decoded CSV text row by row (header, fields per row) into a table whose rows are read on demand."""
    text = decoded.text
    # 1. Excel's "sep=;" first line names the delimiter; Excel hides it, so the header stays row 1.
    hint = _EXCEL_SEPARATOR_HINT.match(text)
    if hint is not None:
        delimiter, text = hint.group(1), text[hint.end() :]
    else:
        first_line = next((line for line in _lines(text) if line.strip()), "")
        delimiter = detect_delimiter(first_line)
    if delimiter not in DELIMITERS:
        raise CatalogError(
            f"The 'sep={delimiter}' line names a delimiter onmodel does not read; use , ; or tab."
        )

    # 2. One pass over the records: the header, and rows with stray delimiters (the rows themselves are not kept).
    header: list[str] | None = None
    sku_index: int | None = None
    header_row = 0
    rejects: list[Reject] = []
    rows_read = 0
    for row_number, fields in _csv_records(text, delimiter):
        if header is None:
            header, header_row = fields, row_number
            names = [normalise_header(cell) for cell in header]
            sku_index = next((names.index(name) for name in SKU_COLUMNS if name in names), None)
            continue
        rows_read += 1
        if len(fields) > len(header):
            reason = _stray_delimiter_reason(fields, len(header), delimiter)
            # The SKU usually sits before the stray delimiter, so its cell is still the SKU.
            sku = fields[sku_index].strip() if sku_index is not None else ""
            rejects.append(Reject(row=row_number, sku=sku, column="", reason=reason))

    # 3. File-level checks, then the header names.
    if header is None:
        raise CatalogError("The file is empty. Export the product sheet again, with its header row, as CSV.")
    if rows_read == 0:
        raise CatalogError("The file has a header row but no product rows below it.")
    headers: dict[str, str] = {}
    columns: list[str] = []
    for index, cell in enumerate(header):
        name = normalise_header(cell) or f"__unnamed_{index}"
        if name in headers:
            raise CatalogError(
                f"The header has the column '{cell.strip()}' twice; keep one (names are compared ignoring case "
                "and spaces).",
                column=cell.strip(),
            )
        headers[name] = cell.strip()
        columns.append(name)
    return CsvTable(
        text=text,
        columns=tuple(columns),
        headers=headers,
        header_row=header_row,
        delimiter=delimiter,
        encoding=decoded.encoding,
        rejects=rejects,
        rows_read=rows_read,
    )


def read_csv_table(csv_path: Path) -> CsvTable:
    """Read, decode and split a product CSV; any file-level problem raises CatalogError."""
    return split_csv_text(decode_csv_bytes(read_csv_bytes(csv_path)))
