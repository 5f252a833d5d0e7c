"""The catalogue view: every product ever produced in one output folder, with its latest state.

Each run writes its own report under runs/<id>/; the top-level index and manifest show the merged catalogue,
so `--only`, a second CSV or an upload run into the same folder never make products vanish from them.
"""

from __future__ import annotations

import bisect
import json
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, BinaryIO

from pipelines.production.outcomes import (
    IndexedOutcomes,
    ProductOutcome,
    Tallies,
    Tally,
    dict_tally,
    product_tally,
)

CATALOGUE_VERSION = 1


class CatalogueVersionError(ValueError):
    """catalogue.json was written by a newer onmodel."""


@dataclass(frozen=True)
class CatalogueEntry:
    """A product's latest outcome and the run (and CSV) it came from."""

    run_id: str
    csv: str
    product: ProductOutcome

    def to_dict(self) -> dict[str, Any]:
        return {"run_id": self.run_id, "csv": self.csv, "product": self.product.to_dict()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CatalogueEntry:
        return cls(str(data["run_id"]), str(data["csv"]), ProductOutcome.from_dict(data["product"]))


def read_entries(data: dict[str, Any] | None) -> dict[str, CatalogueEntry]:
    """The entries of a catalogue.json document (None: a folder without one yet)."""
    if data is None:
        return {}
    entries = _checked(data).get("entries", {})
    return {sku: CatalogueEntry.from_dict(entry) for sku, entry in entries.items()}


# The streamed layout -------------------------------------------------------------------------------------------
# One valid JSON document for readers that load it whole (review, status), and one entry per line in sku order
# for the run that merges into it: {"version": 1, "entries": {  /  "SKU": {...},  /  ...  /  }}.
HEADER = b'{"version": %d, "entries": {\n' % CATALOGUE_VERSION
FOOTER = b"\n}}\n"


def _checked(data: dict[str, Any]) -> dict[str, Any]:
    if data.get("version") != CATALOGUE_VERSION:
        raise CatalogueVersionError(
            f"catalogue.json has version {data.get('version')!r}, this onmodel reads {CATALOGUE_VERSION}; "
            "upgrade onmodel to write into this output folder."
        )
    return data


def read_stream(handle: BinaryIO) -> Iterator[tuple[str, dict[str, Any]]]:
    """(sku, entry as to_dict() wrote it) in sku order: line by line from the streamed layout; a file in the
    earlier pretty-printed layout (or any other JSON of the version) is loaded whole, once."""
    first = handle.readline()
    if first != HEADER:
        data = _checked(json.loads(first + handle.read()))
        entries = data.get("entries", {})
        for sku in sorted(entries):
            yield sku, entries[sku]
        return
    last: str | None = None
    for line in handle:
        text = line.rstrip(b"\n")
        if text == b"}}":
            return
        if not text:
            continue  # the line before the footer of an empty catalogue
        [(sku, entry)] = json.loads(b"{" + text.removesuffix(b",") + b"}").items()
        if last is not None and sku <= last:
            raise ValueError(
                f"catalogue.json lists {sku!r} after {last!r}: its entries must be in sku order."
            )
        last = sku
        yield sku, entry
    raise ValueError("catalogue.json ends before its closing '}}' (it was cut off).")


Numbered = tuple[int, ProductOutcome]  # a run's product and its position in the run's report


def join(
    previous: Iterable[tuple[str, dict[str, Any]]], products: Iterable[Numbered]
) -> Iterator[tuple[str, dict[str, Any] | None, Numbered | None]]:
    """A merge-join of the previous entries and a run's products, both in sku order: (sku, previous entry or
    None, the run's product or None) for every sku of either."""
    old, new = iter(previous), iter(products)
    entry, product = next(old, None), next(new, None)
    while entry is not None or product is not None:
        if product is None or (entry is not None and entry[0] < product[1].sku):
            assert entry is not None
            yield entry[0], entry[1], None
            entry = next(old, None)
        elif entry is None or product[1].sku < entry[0]:
            yield product[1].sku, None, product
            product = next(new, None)
        else:
            yield entry[0], entry[1], product
            entry, product = next(old, None), next(new, None)


@dataclass
class CatalogueIndex:
    """What the top-level files need of a written catalogue, per entry in sku order: where its value is in the
    file, its sort keys (csv, row) and run, its counts, and the position of the run's own products in the run's
    report (-1: an earlier run's entry); tens of bytes an entry, not the entry."""

    skus: list[str] = field(default_factory=list)
    offsets: array[int] = field(default_factory=lambda: array("q"))  # of the entry's value, and its length
    lengths: array[int] = field(default_factory=lambda: array("q"))
    rows: array[int] = field(default_factory=lambda: array("q"))
    csvs: array[int] = field(default_factory=lambda: array("l"))  # into csv_names
    runs: array[int] = field(default_factory=lambda: array("l"))  # into run_names
    tallies: Tallies = field(default_factory=Tallies)
    from_run: array[int] = field(default_factory=lambda: array("q"))
    csv_names: list[str] = field(default_factory=list)
    run_names: list[str] = field(default_factory=list)

    def add(
        self, sku: str, entry: dict[str, Any], offset: int, length: int, tally: Tally, from_run: int
    ) -> None:
        self.from_run.append(from_run)
        self.skus.append(sku)
        self.offsets.append(offset)
        self.lengths.append(length)
        self.rows.append(int(entry["product"]["row"]))
        self.csvs.append(_number(self.csv_names, str(entry["csv"])))
        self.runs.append(_number(self.run_names, str(entry["run_id"])))
        self.tallies.append(tally)


def _number(names: list[str], name: str) -> int:
    """The position of name in names (appended when new; a catalogue has a few CSVs and runs)."""
    if names and names[-1] == name:
        return len(names) - 1
    try:
        return names.index(name)
    except ValueError:
        names.append(name)
        return len(names) - 1


class CatalogueWriter:
    """Writes the streamed layout to a binary file, entry by entry in sku order, indexing what it writes."""

    def __init__(self, handle: BinaryIO) -> None:
        self._handle = handle
        self._position = 0
        self.index = CatalogueIndex()
        self._write(HEADER)

    def _write(self, data: bytes) -> None:
        self._handle.write(data)
        self._position += len(data)

    def add(self, sku: str, entry: dict[str, Any], tally: Tally, from_run: int = -1) -> None:
        if self.index.skus:
            self._write(b",\n")
        key = json.dumps(sku).encode("utf-8") + b": "
        # Sorted keys as the whole-document catalogue had them: an entry's text is what it was, only on one line.
        value = json.dumps(entry, sort_keys=True, default=str).encode("utf-8")
        self.index.add(sku, entry, self._position + len(key), len(value), tally, from_run)
        self._write(key + value)

    def close(self) -> CatalogueIndex:
        self._write(FOOTER)
        return self.index


def merge_into(
    writer: CatalogueWriter,
    previous: Iterable[tuple[str, dict[str, Any]]],
    products: Iterable[Numbered],
    run_id: str,
    csv: str,
    on_product: Callable[[CatalogueEntry | None, ProductOutcome], None] = lambda _entry, _product: None,
) -> CatalogueIndex:
    """The catalogue after a run, streamed: its products (in sku order) replace their earlier entries, every
    other entry stays. on_product(previous entry, product) runs before each product is written (retirement
    sets its retired jobs)."""
    for sku, entry, numbered in join(previous, products):
        if numbered is None:
            assert entry is not None
            writer.add(sku, entry, dict_tally(entry["product"]))
            continue
        position, product = numbered
        on_product(CatalogueEntry.from_dict(entry) if entry is not None else None, product)
        writer.add(sku, CatalogueEntry(run_id, csv, product).to_dict(), product_tally(product), position)
    return writer.close()


class CatalogueProducts(IndexedOutcomes):
    """The products of a written catalogue in (csv, row, sku) order, read on access: the run's own from its
    report (as the run's files show them), the others from the catalogue file.

    opener: opens the catalogue file (a local copy while the top-level files are written, the storage after).
    """

    def __init__(
        self,
        index: CatalogueIndex,
        opener: Callable[[], AbstractContextManager[BinaryIO]],
        run_products: Sequence[ProductOutcome],
    ) -> None:
        self.listing, self.opener, self.run_products = index, opener, run_products
        names, rows, skus = index.csv_names, index.rows, index.skus
        csvs = index.csvs
        self._skus = skus
        self._order = array("q", sorted(range(len(skus)), key=lambda i: (names[csvs[i]], rows[i], skus[i])))

    def tallies(self) -> Iterable[Tally]:
        return self.listing.tallies

    def runs(self) -> CatalogueRuns:
        """sku -> the run each product's entry comes from."""
        return CatalogueRuns(self.listing)

    def _read(self, positions: Iterable[int]) -> Iterator[ProductOutcome]:
        offsets, lengths, from_run = self.listing.offsets, self.listing.lengths, self.listing.from_run
        positions = list(positions)
        run_products = _at(self.run_products, [from_run[p] for p in positions if from_run[p] >= 0])
        with self.opener() as handle:
            for position in positions:
                if from_run[position] >= 0:
                    yield next(run_products)
                    continue
                handle.seek(offsets[position])
                entry = json.loads(handle.read(lengths[position]))
                yield ProductOutcome.from_dict(entry["product"])


def _at(products: Sequence[ProductOutcome], indexes: list[int]) -> Iterator[ProductOutcome]:
    if isinstance(products, IndexedOutcomes):
        return products.at(indexes)
    return (products[index] for index in indexes)


class CatalogueRuns(Mapping[str, str]):
    """sku -> run id of a written catalogue, looked up in its sku-ordered index (no dict of 100k skus)."""

    def __init__(self, index: CatalogueIndex) -> None:
        self._index = index

    def __getitem__(self, sku: str) -> str:
        position = bisect.bisect_left(self._index.skus, sku)
        if position == len(self._index.skus) or self._index.skus[position] != sku:
            raise KeyError(sku)
        return self._index.run_names[self._index.runs[position]]

    def __iter__(self) -> Iterator[str]:
        return iter(self._index.skus)

    def __len__(self) -> int:
        return len(self._index.skus)
