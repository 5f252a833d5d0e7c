"""Header dialects (onmodel native, Shopify product export, Google Merchant Center feed) mapped to products."""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator, Mapping
from dataclasses import dataclass, replace
from typing import TypeVar

from catalog.categories import match_category
from catalog.csv_reading import CsvTable
from catalog.errors import CatalogError
from catalog.schema import CoveredRow, Reject

Cells = dict[str, str]  # a row's cells by normalised column name
# The group of rows one product is made of (a Handle; an item group and colour).
K = TypeVar("K", bound=Hashable)

# Fields a raw product carries; validation turns them into a ProductRecord.
PRODUCT_FIELDS = (
    "sku", "image", "category", "title", "color", "gender", "poses", "variants", "prompt", "negative_prompt",
)  # fmt: skip


@dataclass(frozen=True, slots=True)  # slots: a 100k-row CSV holds 100k of these while it is validated
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
    source_identity: tuple[tuple[str, str], ...] = ()
    variant_skus: tuple[str, ...] = ()
    covered: tuple[CoveredRow, ...] = ()


@dataclass(frozen=True)
class Dialect:
    """A header layout onmodel recognises and the function that maps its rows to raw products."""

    name: str  # "onmodel" | "shopify" | "google_merchant"
    title: str  # for people: "Shopify product export"
    required: tuple[str, ...]  # normalised header names
    required_any: tuple[str, ...]  # at least one of these (empty: no such rule)
    optional: tuple[str, ...]
    # (table, rejects) -> the table's products in first-row order, each made as it is taken (a 100k-row CSV never
    # holds them all); rows that make no product are appended to rejects, complete once the products are.
    to_products: Callable[[CsvTable, list[Reject]], Iterator[RawProduct]]

    def known_columns(self) -> set[str]:
        """Every header name this dialect reads."""
        return {*self.required, *self.required_any, *self.optional}


def _column_names(table: CsvTable, mapping: Mapping[str, str]) -> dict[str, str]:
    """field -> header cell as written (or the expected name when the column is absent)."""
    return {field: table.headers.get(header, header) for field, header in mapping.items()}


def _cells(table: CsvTable, columns: tuple[str, ...]) -> Iterator[tuple[int, Cells]]:
    """(row, {column: cell}) per data row, in file order."""
    for row, *values in table.rows(columns):
        yield row, dict(zip(columns, values, strict=True))


def _rows_per_group(rows: Iterable[tuple[int, Cells]], group_of: Callable[[Cells], K | None]) -> dict[K, int]:
    """How many rows each group has (a first pass over the group's columns only); rows of no group not counted."""
    counts: dict[K, int] = {}
    for _row, cells in rows:
        if (key := group_of(cells)) is not None:
            counts[key] = counts.get(key, 0) + 1
    return counts


def _groups_in_first_row_order(
    rows: Iterable[tuple[int, Cells]], group_of: Callable[[Cells], K | None], counts: Mapping[K, int]
) -> Iterator[list[Cells]]:
    """Each group's rows (cells with "__row__"), in the order of the groups' first rows, each given out as soon as
    it and every group before it are complete; a row of no group (None) is a group of its own.

    Exports keep a product's rows together, so this holds about one product's rows at a time (not the file's);
    a sorted or shuffled file holds the groups still open, at worst every row, as a single pass would.
    """
    open_groups: dict[Hashable, tuple[int, list[Cells]]] = {}  # group -> (its row count, its rows so far)
    started: deque[Hashable] = deque()  # the open groups, by first row
    for row, cells in rows:
        cells["__row__"] = str(row)  # cells are text; the spreadsheet row number rides along as text
        key = group_of(cells)
        group: Hashable = (None, row) if key is None else key
        if group not in open_groups:
            open_groups[group] = (1 if key is None else counts[key], [])
            started.append(group)
        open_groups[group][1].append(cells)
        while started and len(open_groups[started[0]][1]) == open_groups[started[0]][0]:
            yield open_groups.pop(started.popleft())[1]
    yield from (open_groups[group][1] for group in started)  # none: both passes read the same rows


# --- onmodel native -------------------------------------------------------------------------------------------

_NATIVE_REQUIRED = ("sku", "image", "category")
_NATIVE_OPTIONAL = ("title", "color", "gender", "poses", "variants", "prompt", "negative_prompt")


def _native_products(table: CsvTable, rejects: list[Reject]) -> Iterator[RawProduct]:
    """One product per row; column names equal field names (no row is rejected here)."""
    fields = (*_NATIVE_REQUIRED, *_NATIVE_OPTIONAL)
    columns = _column_names(table, {field: field for field in fields})
    for row, *values in table.rows(fields):
        # One constructor call (replace() afterwards costs ~5x as much, at 100k rows a second).
        cells = dict(zip(fields, values, strict=True))
        identity = (("system", "onmodel"), ("sku", cells["sku"]))
        yield RawProduct(row, (row,), columns, **cells, source_identity=identity)


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


def product_key_part(text: str) -> str:
    """'Navy Blue' -> 'navy-blue': a colour as it goes into a product key (file-name safe, stable)."""
    return _KEY_PART.sub("-", text.strip().casefold()).strip("-")


_KEY_PART = re.compile(r"[^0-9a-z]+")


def _is_variant_row(row: Mapping[str, str]) -> bool:
    """A variant row has a SKU or an option value; an image-only row has neither (just Image Src)."""
    return bool(row["variant_sku"] or row["option1_value"] or row["option2_value"] or row["option3_value"])


def _options(row: Mapping[str, str], names: Mapping[str, str]) -> tuple[tuple[str, str], ...]:
    """The row's (option name, value) pairs; names come from the product's first row (Shopify writes them once)."""
    return tuple(
        (names[option] or option, row[f"{option}_value"])
        for option in ("option1", "option2", "option3")
        if row[f"{option}_value"]
    )


@dataclass(frozen=True)
class _Colourway:
    """The variant rows of one colour of a Shopify product, and the photo that shows that colour."""

    colour: str
    rows: list[dict[str, str]]
    variant_image: str


def _shopify_product(
    handle: str, rows: list[dict[str, str]], table: CsvTable
) -> tuple[list[RawProduct], list[Reject]]:
    """The products of all rows sharing a Handle: one per colourway; sizes of one colour share one render.

    With one colour (or no colour option) the product is its Handle, photographed by its lowest-position image.
    With several colours, each colour with its own Variant Image is its own product; the product image goes to
    the first colour without one, unless it is already some colour's Variant Image; any other colour without a
    photo of its own is rejected (its rows cannot be rendered in the right colour).
    """
    images = sorted(
        ((_image_position(row["image_position"]), index, row["image_src"]) for index, row in enumerate(rows)),
        key=lambda item: item[:2],
    )
    image_urls = list(dict.fromkeys(url for _, _, url in images if url))
    main_image = _first(image_urls)
    option_names = {
        option: _first(row[f"{option}_name"] for row in rows) for option in ("option1", "option2", "option3")
    }
    colour_option = next(
        (option for option, name in option_names.items() if name.lower() in _COLOR_OPTION_NAMES), None
    )
    variant_rows = [row for row in rows if _is_variant_row(row)] or rows[:1]
    colourways: dict[str, _Colourway] = {}
    for row in variant_rows:
        colour = row[f"{colour_option}_value"] if colour_option else ""
        way = colourways.setdefault(colour.casefold(), _Colourway(colour, [], ""))
        way.rows.append(row)
        if row["variant_image"] and not way.variant_image:
            colourways[colour.casefold()] = way = _Colourway(way.colour, way.rows, row["variant_image"])
    category, category_column = _shopify_category(rows)
    base = {
        "category": category,
        "title": rows[0]["title"] or _first(row["title"] for row in rows),
        "gender": _first(row["google_shopping_/_gender"] for row in rows),
    }
    columns = _column_names(
        table,
        {
            "sku": "handle",
            "image": "image_src",
            "category": category_column,
            "title": "title",
            "color": f"{colour_option or 'option1'}_value",
            "gender": "google_shopping_/_gender",
        },
    )
    ways = list(colourways.values())
    if len(ways) == 1:  # one render for the Handle: every other row (sizes, images) is covered by it
        way = ways[0]
        photo = main_image or way.variant_image
        extras = [url for url in [*image_urls, *(r["variant_image"] for r in rows)] if url and url != photo]
        key = (
            f"{handle}--{product_key_part(way.colour)}"
            if way.colour and product_key_part(way.colour)
            else handle
        )
        return [
            _shopify_raw(handle, key, way, rows, photo, extras, option_names, colour_option, base, columns)
        ], []
    variant_images = {way.variant_image for way in ways if way.variant_image}
    main_free = bool(main_image) and main_image not in variant_images
    products: list[RawProduct] = []
    rejects: list[Reject] = []
    image_only = [row for row in rows if not _is_variant_row(row)]
    for way in ways:
        photo, extras, member_rows = way.variant_image, [], list(way.rows)
        if not photo and main_free:
            photo, main_free = main_image, False
            extras = [url for url in image_urls if url != photo and url not in variant_images]
            member_rows += image_only  # the product's own photos belong to the colour they show
            image_only = []
        if not photo:
            reason = (
                f"Colour '{way.colour}' of '{handle}' has no Variant Image, and the product image already shows "
                "another colour, so this colour cannot be rendered. Set a Variant Image for its variants."
            )
            column = table.headers.get("variant_image", "Variant Image")
            rejects.extend(
                Reject(int(row["__row__"]), row["variant_sku"], column, reason) for row in way.rows
            )
            continue
        key = f"{handle}--{product_key_part(way.colour)}"
        products.append(
            _shopify_raw(
                handle, key, way, member_rows, photo, extras, option_names, colour_option, base, columns
            )
        )
    if image_only and products:  # image rows of colours that all have their own photo: the first colour's
        first = products[0]
        covered = first.covered + tuple(CoveredRow(int(row["__row__"]), "") for row in image_only)
        rows_all = tuple(sorted({*first.source_rows, *(int(row["__row__"]) for row in image_only)}))
        products[0] = replace(
            first, covered=tuple(sorted(covered, key=lambda c: c.row)), source_rows=rows_all
        )
    return products, rejects


def _shopify_raw(
    handle: str,
    key: str,
    way: _Colourway,
    rows: list[dict[str, str]],
    photo: str,
    extras: list[str],
    option_names: Mapping[str, str],
    colour_option: str | None,
    base: Mapping[str, str],
    columns: Mapping[str, str],
) -> RawProduct:
    """One colourway product: keyed by Handle (+ colour), covering every other row it stands for."""
    ordered = sorted(rows, key=lambda row: int(row["__row__"]))
    first = ordered[0]
    identity = [("system", "shopify"), ("handle", handle)]
    if colour_option and way.colour:
        identity.append((option_names[colour_option] or "Color", way.colour))
    skus = tuple(dict.fromkeys(row["variant_sku"] for row in ordered if row["variant_sku"]))
    covered = tuple(
        CoveredRow(int(row["__row__"]), row["variant_sku"], _options(row, option_names))
        for row in ordered[1:]
    )
    return RawProduct(
        row=int(first["__row__"]),
        source_rows=tuple(int(row["__row__"]) for row in ordered),
        columns=columns,
        sku=key,
        image=photo,
        color=way.colour,
        extra_images=tuple(dict.fromkeys(url for url in extras if url != photo)),
        source_identity=tuple(identity),
        variant_skus=skus,
        covered=covered,
        **base,
    )


def _shopify_products(table: CsvTable, rejects: list[Reject]) -> Iterator[RawProduct]:
    """One product per Handle and colour (sizes and image-only rows folded in), in first-row order."""
    handle_column = table.headers.get("handle", "Handle")

    def with_handle() -> Iterator[tuple[int, Cells]]:
        for row, cells in _cells(table, _SHOPIFY_COLUMNS):
            if cells["handle"]:
                yield row, cells
                continue
            reason = (
                "This row has no Handle, so it cannot be joined to a product. Fill in the product's Handle."
            )
            rejects.append(Reject(row=row, sku=cells["variant_sku"], column=handle_column, reason=reason))

    def handle(cells: Cells) -> str | None:
        return cells["handle"] or None

    counts = _rows_per_group(_cells(table, ("handle",)), handle)
    for rows in _groups_in_first_row_order(with_handle(), handle, counts):
        colourways, colour_rejects = _shopify_product(rows[0]["handle"], rows, table)
        rejects.extend(colour_rejects)
        yield from colourways


# --- Google Merchant Center feed ------------------------------------------------------------------------------

_MERCHANT_COLUMNS = (
    "id", "title", "image_link", "additional_image_link", "google_product_category", "product_type", "gender",
    "color", "item_group_id", "size",
)  # fmt: skip
_LINK_START = re.compile(r"\s*,\s*(?=https?://)", re.IGNORECASE)


def split_image_links(text: str) -> tuple[str, ...]:
    """Split a comma-separated list of links; a comma inside a URL (image CDNs use them) stays in the URL."""
    if "://" in text:
        return tuple(link.strip() for link in _LINK_START.split(text) if link.strip())
    return tuple(link.strip() for link in text.split(",") if link.strip())


def _merchant_products(table: CsvTable, rejects: list[Reject]) -> Iterator[RawProduct]:
    """One product per render: a feed item, or the rows of one `item_group_id` that share a colour (or a photo).

    Google's category is used first when it names a garment, else product_type. Sizes of one colour share one
    render; `color` splits a group; without colours, rows with different photos are different renders.
    """
    counts = _rows_per_group(_cells(table, ("item_group_id", "color", "image_link")), _merchant_group)
    photos_per_group: dict[str, int] = {}
    for group, kind in counts:
        if kind.startswith("image:"):
            photos_per_group[group] = photos_per_group.get(group, 0) + 1
    for rows in _groups_in_first_row_order(_cells(table, _MERCHANT_COLUMNS), _merchant_group, counts):
        yield _merchant_product(rows, table, photos_per_group)


def _merchant_group(cells: Cells) -> tuple[str, str] | None:
    """The render a feed row belongs to: (item_group_id, its colour or else its photo); None: an item of its own."""
    group = cells["item_group_id"]
    if not group:
        return None
    if cells["color"]:
        return group, "color:" + cells["color"].casefold()
    return group, "image:" + cells["image_link"]


def _merchant_product(
    rows: list[dict[str, str]], table: CsvTable, photos_per_group: Mapping[str, int]
) -> RawProduct:
    """One render from feed rows of one item group and colour (or one item)."""
    first = rows[0]
    google_category, product_type = first["google_product_category"], first["product_type"]
    if google_category and (match_category(google_category) is not None or not product_type):
        category, category_column = google_category, "google_product_category"
    else:
        category, category_column = product_type, "product_type"
    group, colour = first["item_group_id"], first["color"]
    if not group:
        key, key_column = first["id"], "id"
    elif colour and product_key_part(colour):
        key, key_column = f"{group}--{product_key_part(colour)}", "item_group_id"
    elif photos_per_group.get(group, 0) > 1:  # one group, several photos, no colours: each photo its own
        key, key_column = f"{group}--{first['id']}", "item_group_id"
    else:
        key, key_column = group, "item_group_id"
    photo = first["image_link"]
    extras = [
        photo_link
        for row in rows
        for photo_link in (row["image_link"], *split_image_links(row["additional_image_link"]))
    ]
    identity = [("system", "google_merchant"), ("id", first["id"])]
    if group:
        identity.append(("item_group_id", group))
    if colour:
        identity.append(("color", colour))
    return RawProduct(
        row=int(first["__row__"]),
        source_rows=tuple(int(row["__row__"]) for row in rows),
        columns=_column_names(
            table,
            {
                "sku": key_column,
                "image": "image_link",
                "category": category_column,
                "title": "title",
                "color": "color",
                "gender": "gender",
            },
        ),
        sku=key,
        image=photo,
        category=category,
        title=first["title"],
        color=colour,
        gender=first["gender"],
        extra_images=tuple(dict.fromkeys(link for link in extras if link and link != photo)),
        source_identity=tuple(identity),
        variant_skus=tuple(dict.fromkeys(row["id"] for row in rows if row["id"])),
        covered=tuple(
            CoveredRow(int(row["__row__"]), row["id"], (("size", row["size"]),) if row["size"] else ())
            for row in rows[1:]
        ),
    )


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
    optional=("title", "additional_image_link", "gender", "color", "item_group_id", "size"),
    to_products=_merchant_products,
)
DIALECTS = (NATIVE, SHOPIFY, GOOGLE_MERCHANT)

ACCEPTED_HEADERS_TEXT = (
    "onmodel CSV: sku, image, category (optional: title, color, gender, poses, variants, prompt, "
    "negative_prompt); Shopify product export: Handle, Title, Type, Tags, Variant SKU, Image Src, "
    "Image Position, Option1 Name, Option1 Value; Google Merchant Center feed (CSV or tab-separated): id, "
    "title, image_link, additional_image_link, product_type or google_product_category, gender, color, "
    "item_group_id, size"
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
