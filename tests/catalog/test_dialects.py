"""Header dialect detection and the mapping of native, Shopify and Merchant rows to raw products."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from catalog.csv_reading import decode_csv_bytes, split_csv_text
from catalog.dialects import (
    GOOGLE_MERCHANT,
    NATIVE,
    SHOPIFY,
    _groups_in_first_row_order,
    _rows_per_group,
    detect_dialect,
    split_image_links,
)
from catalog.errors import CatalogError
from catalog.schema import Reject


def _table(text: str):
    return split_csv_text(decode_csv_bytes(text.encode()))


@pytest.mark.parametrize(
    ("header", "dialect"),
    [
        ("sku,image,category", NATIVE),
        ("SKU, Image ,Category,Title,Poses", NATIVE),
        ("Handle,Title,Body (HTML),Type,Tags,Variant SKU,Image Src,Image Position", SHOPIFY),
        ("id,title,image_link,product_type", GOOGLE_MERCHANT),
        ("g:id,g:title,g:image_link,g:google_product_category", GOOGLE_MERCHANT),
    ],
)
def test_dialect_detected_from_header(header: str, dialect) -> None:
    assert detect_dialect(_table(header + "\n" + "x," * 7 + "\n").headers) is dialect


def test_unrecognised_header_lists_the_three_layouts() -> None:
    with pytest.raises(CatalogError) as caught:
        detect_dialect(_table("name,picture,kind\na,b,c\n").headers)
    message = str(caught.value)
    assert "Found columns: name, picture, kind" in message
    for phrase in ("onmodel CSV: sku, image, category", "Shopify product export: Handle", "Google Merchant"):
        assert phrase in message


@pytest.mark.parametrize(
    ("header", "missing"),
    [
        ("sku,image,title", "category"),
        ("Handle,Title,Type,Variant SKU", "image_src"),
        ("Handle,Title,Variant SKU,Image Src", "type or product_category or tags"),
        ("id,title,image_link", "google_product_category or product_type"),
    ],
)
def test_missing_required_columns_are_named(header: str, missing: str) -> None:
    with pytest.raises(CatalogError, match="lacks the column") as caught:
        detect_dialect(_table(header + "\na,b,c,d\n").headers)
    assert missing in str(caught.value)


SHOPIFY_CSV = (
    "Handle,Title,Type,Tags,Option1 Name,Option1 Value,Variant SKU,Image Src,Image Position\n"
    "linen-shirt,Linen Shirt,Shirts,summer,Colour,Sand,LS-S,https://cdn.shop/b.jpg,2\n"  # row 2
    "linen-shirt,,,,,Sand,LS-M,,\n"  # row 3: variant row
    "linen-shirt,,,,,,,https://cdn.shop/a.jpg,1\n"  # row 4: image-only row, position 1
    'wrap-dress,Wrap Dress,,"Top Seller, Summer Dress",Size,S,,https://cdn.shop/d.jpg,1\n'  # row 5
    "linen-shirt,,,,,,,https://cdn.shop/c.jpg,3\n"  # row 6: late image row of the first product
    ",,,,,,ORPHAN,,\n"  # row 7: no handle
)


def test_shopify_rows_fold_into_one_product_per_handle() -> None:
    table = _table(SHOPIFY_CSV)
    rejects: list[Reject] = []
    products = list(SHOPIFY.to_products(table, rejects))
    assert [(r.row, r.column, r.sku) for r in rejects] == [(7, "Handle", "ORPHAN")]
    shirt, dress = products
    # One colour (Sand), two sizes: one render keyed by Handle and colour, standing for both variant SKUs.
    assert shirt.sku == "linen-shirt--sand"
    assert shirt.variant_skus == ("LS-S", "LS-M")
    assert shirt.source_identity == (("system", "shopify"), ("handle", "linen-shirt"), ("Colour", "Sand"))
    assert [(c.row, c.sku) for c in shirt.covered] == [(3, "LS-M"), (4, ""), (6, "")]
    assert shirt.image == "https://cdn.shop/a.jpg"  # lowest Image Position
    assert shirt.extra_images == ("https://cdn.shop/b.jpg", "https://cdn.shop/c.jpg")
    assert (shirt.category, shirt.columns["category"]) == ("Shirts", "Type")
    assert (shirt.title, shirt.color) == ("Linen Shirt", "Sand")
    assert (shirt.row, shirt.source_rows) == (2, (2, 3, 4, 6))
    # No colour option: the handle; no Type: the first tag that is itself a garment ('Top Seller' is not).
    assert (dress.sku, dress.columns["sku"]) == ("wrap-dress", "Handle")
    assert (dress.category, dress.columns["category"]) == ("Summer Dress", "Tags")
    assert dress.color == ""  # the option is Size, not Colour
    assert dress.source_rows == (5,)


@given(st.lists(st.sampled_from(["a", "b", "c", "d", ""]), max_size=30))
def test_groups_come_whole_in_first_row_order_as_soon_as_they_and_all_before_are_complete(
    keys: list[str],
) -> None:
    # "" is a row of no group (a product of its own); a file keeping each group's rows together holds one group.
    def group_of(cells: dict[str, str]) -> str | None:
        return cells["key"] or None

    def rows() -> list[tuple[int, dict[str, str]]]:
        return [(row, {"key": key}) for row, key in enumerate(keys, start=2)]

    consumed: list[int] = []

    def reading(items: list[tuple[int, dict[str, str]]]):
        for row, cells in items:
            consumed.append(row)
            yield row, cells

    counts = _rows_per_group(rows(), group_of)
    groups = []
    for group in _groups_in_first_row_order(reading(rows()), group_of, counts):
        groups.append(([int(cells["__row__"]) for cells in group], len(consumed)))

    # One group per key in first-row order (each keyless row alone), with all its rows.
    expected: dict[object, list[int]] = {}
    for row, key in enumerate(keys, start=2):
        expected.setdefault(key or ("alone", row), []).append(row)
    assert [rows_of for rows_of, _ in groups] == list(expected.values())
    # Each group is given out once its own and every earlier group's last row is read, not later.
    last_needed = 0
    for rows_of, read_when_given in groups:
        last_needed = max(last_needed, max(rows_of) - 1)
        assert read_when_given == last_needed


MERCHANT_TSV = (
    "id\ttitle\timage_link\tadditional_image_link\tgoogle_product_category\tproduct_type\tgender\tcolor\n"
    "M1\tMaxi\thttps://c.example/1.jpg\thttps://c.example/2.jpg,https://c.example/w_10,h_10/3.jpg\t2271\t\tfemale\tred\n"
    "M2\tTee\thttps://c.example/4.jpg\t\tApparel & Accessories > Clothing\tWomen > Tops > T-Shirts\t\t\n"
    "M3\tShoe\thttps://c.example/5.jpg\t\t187\t\t\t\n"
)


def test_merchant_feed_maps_items_and_prefers_a_garment_google_category() -> None:
    table = _table(MERCHANT_TSV)
    assert table.delimiter == "\t"
    rejects: list[Reject] = []
    products = list(GOOGLE_MERCHANT.to_products(table, rejects))
    assert rejects == []
    first, second, third = products
    assert (first.sku, first.category, first.columns["category"]) == ("M1", "2271", "google_product_category")
    assert first.extra_images == ("https://c.example/2.jpg", "https://c.example/w_10,h_10/3.jpg")
    assert (first.gender, first.color) == ("female", "red")
    # 'Clothing' is too general, so the merchant's own product_type decides.
    assert (second.category, second.columns["category"]) == ("Women > Tops > T-Shirts", "product_type")
    assert (third.category, third.columns["category"]) == ("187", "google_product_category")


def test_native_rows_keep_header_cells_as_written_for_messages() -> None:
    rejects: list[Reject] = []
    products = list(NATIVE.to_products(_table("SKU,Image,Category,Variants\nA,a.png,dress,2\n"), rejects))
    assert rejects == []
    (product,) = products
    assert (product.sku, product.image, product.category, product.variants) == ("A", "a.png", "dress", "2")
    assert product.columns["category"] == "Category"
    assert product.columns["poses"] == "poses"  # absent column: its expected name


@pytest.mark.parametrize(
    ("text", "links"),
    [
        ("", ()),
        ("a.jpg, b.jpg", ("a.jpg", "b.jpg")),
        ("https://x/a.jpg,https://x/b.jpg", ("https://x/a.jpg", "https://x/b.jpg")),
        ("https://x/c_1,w_2/a.jpg, http://y/b.jpg", ("https://x/c_1,w_2/a.jpg", "http://y/b.jpg")),
    ],
)
def test_split_image_links(text: str, links: tuple[str, ...]) -> None:
    assert split_image_links(text) == links
