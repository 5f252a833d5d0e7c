"""Product records, rejects and garment classes: the catalogue's shared vocabulary."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Protocol, overload


class GarmentClass(StrEnum):
    """Where a garment sits on the body; placement and pose choice depend on it."""

    UPPER = "upper_body"
    LOWER = "lower_body"
    FULL = "full_body"


@dataclass(frozen=True, slots=True)
class ImageRef:
    """A product image reference as written in the CSV, and what it resolved to."""

    raw: str
    path: Path | None = None  # local file (relative refs resolved against the CSV folder)
    url: str | None = None  # http(s) URL, fetched later through the allow-list


@dataclass(frozen=True, slots=True)
class CoveredRow:
    """A CSV row folded into a product it does not render apart: another size, an image-only row.

    options: the row's option values in the source system, e.g. (("Size", "M"),).
    """

    row: int
    sku: str  # the row's own SKU / feed id ('' for an image-only row)
    options: tuple[tuple[str, str], ...] = ()

    def describe(self) -> str:
        """'size M (SKU LS-M)' for reasons and manifests."""
        options = ", ".join(f"{name} {value}" for name, value in self.options)
        sku = f"SKU {self.sku}" if self.sku else "image row"
        return f"{options} ({sku})" if options else sku


@dataclass(frozen=True, slots=True)
class ProductRecord:
    """One product to produce, validated; `row` is its spreadsheet row number (the header is row 1).

    A product is one render: a colourway, not a size. `sku` is its stable product key (the native CSV's SKU, a
    Shopify Handle plus its colour, a Merchant item group plus its colour), which names its output files.
    """

    sku: str
    image: ImageRef
    category: str
    garment_class: GarmentClass
    row: int
    title: str = ""
    color: str = ""
    gender: str = ""
    poses: tuple[str, ...] = ()  # empty: the profile's default poses for the garment class
    variants: int | None = None  # None: the profile's default variant count
    prompt: str = ""
    negative_prompt: str = ""
    extra_images: tuple[ImageRef, ...] = ()
    source_rows: tuple[int, ...] = ()  # every CSV row that contributed (Shopify has several)
    # Who the product is in its source system, for mapping outputs back on upload:
    # (("system", "shopify"), ("handle", "linen-shirt"), ("Colour", "Sand")).
    source_identity: tuple[tuple[str, str], ...] = ()
    variant_skus: tuple[str, ...] = ()  # every size / variant SKU this render stands for
    covered: tuple[CoveredRow, ...] = ()  # the rows other than `row` that this product covers

    @property
    def identity(self) -> dict[str, str]:
        return dict(self.source_identity)


@dataclass(frozen=True)
class Reject:
    """A CSV row (spreadsheet numbering, header = row 1; 0 = the whole file) that cannot be produced."""

    row: int
    sku: str
    column: str
    reason: str


class RecordSequence(Protocol):
    """Where reading a CSV puts its good records: a list, or a run's spool on disk (catalog.record_spool)."""

    def append(self, record: ProductRecord, /) -> None: ...

    def __len__(self) -> int: ...

    def __iter__(self) -> Iterator[ProductRecord]: ...

    @overload
    def __getitem__(self, index: int, /) -> ProductRecord: ...

    @overload
    def __getitem__(self, index: slice, /) -> Sequence[ProductRecord]: ...


@dataclass
class CatalogReadResult:
    """What reading a product CSV gave: good records, rejects, and which header dialect was seen."""

    records: RecordSequence = field(default_factory=list[ProductRecord])
    rejects: list[Reject] = field(default_factory=list)
    dialect: str = ""
    rows_read: int = 0
