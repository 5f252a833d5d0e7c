"""Header dialects (onmodel native, Shopify product export, Google Merchant Center feed) mapped to products."""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

from catalog.categories import match_category
from catalog.csv_reading import CsvTable
from catalog.errors import CatalogError
from catalog.schema import Reject

# Fields a raw product carries; validation turns them into a ProductRecord.
PRODUCT_FIELDS = (
    "sku", "image", "category", "title", "color", "gender", "poses", "variants", "prompt", "negative_prompt",
)  # fmt: skip


@dataclass(frozen=True)
class RawProduct:
    """One product's cells as written (stripped), before validation; `columns` maps fields to header cells."""

    row: int
    source_rows: tuple[int, ...]
    columns: Mapping[str, str]  # field -> header cell as written, for reject messages
    sku: str = ""
    image: str = ""
    category: str = ""
    title: str = ""
    color: str = ""
    gender: str = ""
    poses: str = ""
    variants: str = ""
    prompt: str = ""
    negative_prompt: str = ""
    extra_images: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialect:
    """A header layout onmodel recognises and the function that maps its rows to raw products."""

    name: str  # "onmodel" | "shopify" | "google_merchant"
    title: str  # for people: "Shopify product export"
    required: tuple[str, ...]  # normalised header names
    required_any: tuple[str, ...]  # at least one of these (empty: no such rule)
    optional: tuple[str, ...]
    to_products: Callable[[CsvTable], tuple[list[RawProduct], list[Reject]]]

    def known_columns(self) -> set[str]:
        """Every header name this dialect reads."""
        return {*self.required, *self.required_any, *self.optional}


def _column_names(table: CsvTable, mapping: Mapping[str, str]) -> dict[str, str]:
    """field -> header cell as written (or the expected name when the column is absent)."""
    return {field: table.headers.get(header, header) for field, header in mapping.items()}


def _cell_rows(table: CsvTable, columns: Iterable[str]) -> Iterable[tuple]:
    """(row, cell, cell, ...) tuples for the named columns; absent columns read as empty cells."""
    frame = table.frame.reindex(columns=list(columns), fill_value="")
    return frame.itertuples(index=True, name=None)


# --- onmodel native -------------------------------------------------------------------------------------------

_NATIVE_REQUIRED = ("sku", "image", "category")
_NATIVE_OPTIONAL = ("title", "color", "gender", "poses", "variants", "prompt", "negative_prompt")


def _native_products(table: CsvTable) -> tuple[list[RawProduct], list[Reject]]:
    """One product per row; column names equal field names."""
    fields = (*_NATIVE_REQUIRED, *_NATIVE_OPTIONAL)
    columns = _column_names(table, {field: field for field in fields})
    products = [
        RawProduct(row, (row,), columns, *values)
        for row, *values in _cell_rows(table, fields)  # positional: same order as PRODUCT_FIELDS
    ]
    return products, []


# --- Shopify product export -----------------------------------------------------------------------------------

_SHOPIFY_COLUMNS = (
    "handle", "title", "type", "product_category", "tags", "variant_sku", "image_src", "image_position",
    "variant_image", "option1_name", "option1_value", "option2_name", "option2_value", "option3_name",
    "option3_value", "google_shopping_/_gender",
)  # fmt: skip
_COLOR_OPTION_NAMES = {"color", "colour"}


def _first(values: Iterable[str]) -> str:
    """The first non-empty value, or ''."""
    return next((value for value in values if value), "")


def _shopify_category(rows: list[dict[str, str]]) -> tuple[str, str]:
    """(text, column): Type, then Product Category, then the first tag that is itself a garment word."""
    product_type = _first(row["type"] for row in rows)
    if product_type and match_category(product_type) is not None:
        return product_type, "type"
    taxonomy = _first(row["product_category"] for row in rows)
    if taxonomy and match_category(taxonomy) is not None:
        return taxonomy, "product_category"
    tags = [tag.strip() for tag in _first(row["tags"] for row in rows).split(",")]
    # Tags are free words ("Top Seller"), so only a tag whose head noun is a garment word counts.
    tag = next((tag for tag in tags if tag and match_category(tag, loose=False) is not None), "")
    if tag:
        return tag, "tags"
    if product_type:
        return product_type, "type"
    return (taxonomy, "product_category") if taxonomy else (_first(tags), "tags")


def _image_position(value: str) -> float:
    """Image Position as a number; missing or odd values sort last."""
    try:
        return float(value)
    except ValueError:
        return math.inf


def _shopify_product(handle: str, rows: list[dict[str, str]], table: CsvTable) -> RawProduct:
    """One product from all rows sharing a Handle."""
    images = sorted(
        ((_image_position(row["image_position"]), index, row["image_src"]) for index, row in enumerate(rows)),
        key=lambda item: item[:2],
    )
    image_urls = list(dict.fromkeys(url for _, _, url in images if url))
    variant_images = [row["variant_image"] for row in rows if row["variant_image"]]
    extra_images = tuple(
        dict.fromkeys(url for url in [*image_urls[1:], *variant_images] if url != _first(image_urls))
    )
    color = ""
    for option in ("option1", "option2", "option3"):
        if _first(row[f"{option}_name"] for row in rows).lower() in _COLOR_OPTION_NAMES:
            color = _first(row[f"{option}_value"] for row in rows)
            break
    sku = _first(row["variant_sku"] for row in rows)
    category, category_column = _shopify_category(rows)
    columns = _column_names(
        table,
        {
            "sku": "variant_sku" if sku else "handle",
            "image": "image_src",
            "category": category_column,
            "title": "title",
            "color": "option1_value",
            "gender": "google_shopping_/_gender",
        },
    )
    return RawProduct(
        row=int(rows[0]["__row__"]),
        source_rows=tuple(int(row["__row__"]) for row in rows),
        columns=columns,
        sku=sku or handle,
        image=_first(image_urls),
        category=category,
        title=rows[0]["title"] or _first(row["title"] for row in rows),
        color=color,
        gender=_first(row["google_shopping_/_gender"] for row in rows),
        extra_images=extra_images,
    )


def _shopify_products(table: CsvTable) -> tuple[list[RawProduct], list[Reject]]:
    """One product per Handle (variant and image-only rows folded in), in first-row order."""
    groups: dict[str, list[dict[str, str]]] = {}
    rejects: list[Reject] = []
    handle_column = table.headers.get("handle", "Handle")
    for row, *values in _cell_rows(table, _SHOPIFY_COLUMNS):
        cells = dict(zip(_SHOPIFY_COLUMNS, values, strict=True))
        if not cells["handle"]:
            reason = (
                "This row has no Handle, so it cannot be joined to a product. Fill in the product's Handle."
            )
            rejects.append(Reject(row=row, sku=cells["variant_sku"], column=handle_column, reason=reason))
            continue
        cells["__row__"] = str(row)  # cells are text; the spreadsheet row number rides along as text
        groups.setdefault(cells["handle"], []).append(cells)
    return [_shopify_product(handle, rows, table) for handle, rows in groups.items()], rejects


# --- Google Merchant Center feed ------------------------------------------------------------------------------

_MERCHANT_COLUMNS = (
    "id", "title", "image_link", "additional_image_link", "google_product_category", "product_type", "gender",
    "color", "item_group_id",
)  # fmt: skip
_LINK_START = re.compile(r"\s*,\s*(?=https?://)", re.IGNORECASE)


def split_image_links(text: str) -> tuple[str, ...]:
    """Split a comma-separated list of links; a comma inside a URL (image CDNs use them) stays in the URL."""
    if "://" in text:
        return tuple(link.strip() for link in _LINK_START.split(text) if link.strip())
    return tuple(link.strip() for link in text.split(",") if link.strip())


def _merchant_products(table: CsvTable) -> tuple[list[RawProduct], list[Reject]]:
    """One product per feed item (`id`); Google's category first when it names a garment, else product_type."""
    by_category_column = {
        column: _column_names(
            table,
            {
                "sku": "id",
                "image": "image_link",
                "category": column,
                "title": "title",
                "color": "color",
                "gender": "gender",
            },
        )
        for column in ("google_product_category", "product_type")
    }
    products = []
    for row, *values in _cell_rows(table, _MERCHANT_COLUMNS):
        cells = dict(zip(_MERCHANT_COLUMNS, values, strict=True))
        google_category, product_type = cells["google_product_category"], cells["product_type"]
        if google_category and (match_category(google_category) is not None or not product_type):
            category, category_column = google_category, "google_product_category"
        else:
            category, category_column = product_type, "product_type"
        products.append(
            RawProduct(
                row=row,
                source_rows=(row,),
                columns=by_category_column[category_column],
                sku=cells["id"],
                image=cells["image_link"],
                category=category,
                title=cells["title"],
                color=cells["color"],
                gender=cells["gender"],
                extra_images=split_image_links(cells["additional_image_link"]),
            )
        )
    return products, []


# --- detection ------------------------------------------------------------------------------------------------

NATIVE = Dialect(
    name="onmodel",
    title="onmodel product CSV",
    required=_NATIVE_REQUIRED,
    required_any=(),
    optional=_NATIVE_OPTIONAL,
    to_products=_native_products,
)
SHOPIFY = Dialect(
    name="shopify",
    title="Shopify product export",
    required=("handle", "image_src"),
    required_any=("type", "product_category", "tags"),
    optional=tuple(column for column in _SHOPIFY_COLUMNS if column not in ("handle", "image_src")),
    to_products=_shopify_products,
)
GOOGLE_MERCHANT = Dialect(
    name="google_merchant",
    title="Google Merchant Center feed",
    required=("id", "image_link"),
    required_any=("google_product_category", "product_type"),
    optional=("title", "additional_image_link", "gender", "color", "item_group_id"),
    to_products=_merchant_products,
)
DIALECTS = (NATIVE, SHOPIFY, GOOGLE_MERCHANT)

ACCEPTED_HEADERS_TEXT = (
    "onmodel CSV: sku, image, category (optional: title, color, gender, poses, variants, prompt, "
    "negative_prompt); Shopify product export: Handle, Title, Type, Tags, Variant SKU, Image Src, "
    "Image Position, Option1 Name, Option1 Value; Google Merchant Center feed (CSV or tab-separated): id, "
    "title, image_link, additional_image_link, product_type or google_product_category, gender, color, "
    "item_group_id"
)


def _looks_like(dialect: Dialect, headers: set[str]) -> bool:
    """Whether a header is meant as this dialect (its distinctive columns are present)."""
    if dialect is SHOPIFY:
        return "handle" in headers
    if dialect is GOOGLE_MERCHANT:
        return "image_link" in headers or ("id" in headers and bool(headers & set(dialect.required_any)))
    return bool(headers & set(_NATIVE_REQUIRED))


def detect_dialect(headers: Mapping[str, str]) -> Dialect:
    """The dialect a header (normalised name -> cell as written) belongs to; CatalogError naming what is missing."""
    names = set(headers)
    candidates = [dialect for dialect in DIALECTS if _looks_like(dialect, names)]
    if not candidates:
        found = ", ".join(cell for cell in headers.values() if cell) or "(none)"
        raise CatalogError(
            f"The header row does not match a product CSV layout onmodel reads. Found columns: {found}. "
            f"Use one of: {ACCEPTED_HEADERS_TEXT}."
        )
    dialect = max(candidates, key=lambda candidate: len(names & candidate.known_columns()))
    missing = [column for column in dialect.required if column not in names]
    if dialect.required_any and not names & set(dialect.required_any):
        missing.append(" or ".join(dialect.required_any))
    if missing:
        raise CatalogError(
            f"This looks like a {dialect.title}, but the header lacks the column(s) {', '.join(missing)}. "
            f"Add them (names are compared ignoring case and spaces). Accepted layouts: {ACCEPTED_HEADERS_TEXT}.",
            column=missing[0],
        )
    return dialect
