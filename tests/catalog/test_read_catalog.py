"""read_catalog end to end: a corpus of broken CSVs (exact rejects, good rows kept), verdicts, 100k rows."""

from __future__ import annotations

import codecs
import random
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from catalog.errors import CatalogError
from catalog.image_refs import ImagePolicy
from catalog.read_catalog import format_verdict, read_catalog
from catalog.schema import GarmentClass

NATIVE = "sku,image,category,title\n"
GOOD_A = "A-1,img1.png,dress,Good dress\n"
GOOD_B = "B-2,img2.png,T-Shirts,Good tee\n"
SHOPIFY_HEADER = "Handle,Title,Type,Tags,Variant SKU,Image Src,Image Position\n"
MERCHANT_HEADER = "id\ttitle\timage_link\tgoogle_product_category\tproduct_type\n"


@dataclass(frozen=True)
class Case:
    """A broken CSV, the exact rejects it must give (row, column, phrase) and the SKUs that must survive."""

    content: str | bytes
    rejects: list[tuple[int, str, str]]
    good: list[str]
    encoding: str = "utf-8"
    policy: dict = field(default_factory=dict)
    known_poses: set[str] | None = None


CASES = {
    "missing_required_column": Case(
        "sku,image,title\nA-1,img1.png,x\n", [(0, "category", "lacks the column")], []
    ),
    "empty_sku": Case(
        NATIVE + GOOD_A + ",img2.png,shirt,No sku\n", [(3, "sku", "The SKU is empty")], ["A-1"]
    ),
    "unknown_category": Case(
        NATIVE + GOOD_A + "C-3,img3.png,scarf,Silk scarf\n" + GOOD_B,
        [(3, "category", "'scarf' is not a garment category onmodel can place. Use one of:")],
        ["A-1", "B-2"],
    ),
    "empty_category": Case(
        NATIVE + GOOD_A + "C-3,img3.png,,x\n", [(3, "category", "No category is given")], ["A-1"]
    ),
    "bad_variants": Case(
        "sku,image,category,variants\nA-1,img1.png,dress,3\nB-2,img2.png,dress,0\nC-3,img3.png,dress,17\n"
        "D-4,img4.png,dress,two\nE-5,img1.png,dress,2.5\nF-6,img2.png,dress,\n",
        [
            (3, "variants", "'0' is not a whole number of variants from 1 to 16"),
            (4, "variants", "'17' is not a whole number"),
            (5, "variants", "'two' is not a whole number"),
            (6, "variants", "'2.5' is not a whole number"),
        ],
        ["A-1", "F-6"],
    ),
    "unknown_pose": Case(
        "sku,image,category,poses\nA-1,img1.png,dress,front|Walking\nB-2,img2.png,dress,front;moonwalk\n",
        [(3, "poses", "The pose(s) 'moonwalk' are not known. Known poses: front, walking")],
        ["A-1"],
        known_poses={"front", "walking"},
    ),
    "duplicate_sku": Case(
        NATIVE + GOOD_A + GOOD_B + "a-1,img3.png,skirt,Same SKU other case\n",
        [(4, "sku", "The SKU 'a-1' already appears in row 2")],
        ["A-1", "B-2"],
    ),
    "stray_delimiter": Case(
        NATIVE + GOOD_A + "C-3,img3.png,shirt,Blue, cotton\n" + GOOD_B,
        [(3, "", "a stray delimiter? Quote the field that contains a comma")],
        ["A-1", "B-2"],
    ),
    "utf16_file": Case(
        NATIVE + "A-1,img1.png,dress,Robe été\nC-3,img3.png,écharpe,x\n",
        [(3, "category", "'écharpe' is not a garment category")],
        ["A-1"],
        encoding="utf-16",
    ),
    "latin1_accents": Case(
        NATIVE + "A-1,img1.png,Kleid,Größe\nB-2,img2.png,skirt,Jupe plissée\n",
        [(2, "category", "'Kleid' is not a garment category")],
        ["B-2"],
        encoding="latin-1",
    ),
    "bom": Case(
        codecs.BOM_UTF8 + (NATIVE + GOOD_A + "C-3,nope.png,dress,x\n").encode(),
        [(3, "image", "does not exist")],
        ["A-1"],
    ),
    "empty_file": Case(b"", [(0, "", "The file is empty")], []),
    "header_only": Case(NATIVE, [(0, "", "no product rows")], []),
    "binary_garbage": Case(random.Random(3).randbytes(3000), [(0, "", "does not look like CSV text")], []),
    "excel_workbook": Case(b"PK\x03\x04" + bytes(300), [(0, "", "Excel workbook")], []),
    "unrecognised_header": Case(
        "name,picture,kind\nA,img1.png,dress\n",
        [(0, "", "Use one of: onmodel CSV: sku, image, category")],
        [],
    ),
    "image_path_escaping_root": Case(
        NATIVE + GOOD_A + "C-3,../../etc/passwd,shirt,x\n",
        [(3, "image", "leads outside the allowed")],
        ["A-1"],
    ),
    "missing_image_file": Case(
        NATIVE + "C-3,gone.png,shirt,x\n" + GOOD_B, [(2, "image", "does not exist")], ["B-2"]
    ),
    "empty_image": Case(NATIVE + GOOD_A + "C-3,,shirt,x\n", [(3, "image", "No image is given")], ["A-1"]),
    "disallowed_host": Case(
        NATIVE + "C-3,https://evil.example/a.png,shirt,x\nD-4,https://cdn.example.com/a.png,shirt,y\n",
        [(2, "image", "'evil.example' is not on the allow-list")],
        ["D-4"],
        policy={"allowed_hosts": ("cdn.example.com",)},
    ),
    "ftp_scheme": Case(
        NATIVE + GOOD_A + "C-3,ftp://cdn.example.com/a.png,shirt,x\n", [(3, "image", "'ftp:'")], ["A-1"]
    ),
    "windows_path": Case(
        NATIVE + GOOD_A + "C-3,C:\\img\\a.png,shirt,x\n", [(3, "image", "Windows path")], ["A-1"]
    ),
    "sku_with_slash": Case(
        NATIVE + "AB/12,img1.png,dress,x\n" + GOOD_B,
        [(2, "sku", "contains '/', which cannot be used")],
        ["B-2"],
    ),
    "sku_with_space_and_dot_start": Case(
        NATIVE + "AB 12,img1.png,dress,x\n.hidden,img2.png,dress,y\n" + GOOD_B,
        [(2, "sku", "contains a space"), (3, "sku", "starts with '.'")],
        ["B-2"],
    ),
    "several_problems_in_one_row": Case(
        NATIVE + "AB/12,gone.png,scarf,x\n" + GOOD_B,
        [(2, "sku", "contains '/'"), (2, "image", "does not exist"), (2, "category", "'scarf'")],
        ["B-2"],
    ),
    "shopify_product_without_image": Case(
        SHOPIFY_HEADER + "tee,Tee,T-Shirt,,TEE-1,img1.png,1\ntee,,,,TEE-2,,\ndress,Dress,Dress,,DR-1,,\n"
        "dress,,,,DR-2,,\n",
        # The dress's second size is not silently lost: it is rejected with its product.
        [(4, "Image Src", "No image is given"), (5, "Handle", "variant of product 'dress' (row 4)")],
        ["tee"],
    ),
    "shopify_unknown_type_and_no_handle": Case(
        SHOPIFY_HEADER + "tee,Tee,T-Shirt,,TEE-1,img1.png,1\nmug,Mug,Homeware,,MUG-1,img2.png,1\n,,,,X-1,,\n",
        [(3, "Type", "'Homeware' is not a garment category"), (4, "Handle", "no Handle")],
        ["tee"],
    ),
    "merchant_feed_tsv_with_a_bad_row": Case(
        MERCHANT_HEADER
        + "M1\tMaxi\thttps://cdn.example.com/1.jpg\t2271\t\n"
        + "M2\tSneaker\thttps://cdn.example.com/2.jpg\t187\tShoes > Sneakers\n"
        + "M3\tTee\thttps://cdn.example.com/3.jpg\t\tWomen > Tops > T-Shirts\n",
        [(3, "product_type", "'Shoes > Sneakers' is not a garment category")],
        ["M1", "M3"],
        policy={"allowed_hosts": ("cdn.example.com",)},
    ),
    "quoted_multiline_field_keeps_row_numbers": Case(
        NATIVE + 'A-1,img1.png,dress,"Line one\nline two\nline three"\nC-3,img3.png,scarf,x\n' + GOOD_B,
        [(3, "category", "'scarf'")],
        ["A-1", "B-2"],
    ),
    "blank_lines_keep_row_numbers": Case(
        NATIVE + GOOD_A + "\n\n" + "C-3,img3.png,scarf,x\n", [(5, "category", "'scarf'")], ["A-1"]
    ),
    "semicolon_excel_export": Case(
        "sep=;\r\nSKU;Image;Category;Title\r\nA-1;img1.png;Robe;x\r\nB-2;img2.png;Dresses;y\r\n",
        [(2, "Category", "'Robe' is not a garment category")],
        ["B-2"],
    ),
}


@pytest.mark.parametrize("name", list(CASES))
def test_broken_csv_gives_exact_rejects_and_keeps_good_rows(name: str, catalog_dir: Path, write_csv) -> None:
    case = CASES[name]
    csv_path = write_csv(catalog_dir, case.content, encoding=case.encoding)
    result = read_catalog(csv_path, ImagePolicy(**case.policy), known_poses=case.known_poses)
    got = [(reject.row, reject.column) for reject in result.rejects]
    assert got == [(row, column) for row, column, _ in case.rejects], format_verdict(result)
    for reject, (_, _, phrase) in zip(result.rejects, case.rejects, strict=True):
        assert phrase in reject.reason, reject.reason
    assert [record.sku for record in result.records] == case.good


def test_the_corpus_covers_at_least_twenty_kinds() -> None:
    assert len(CASES) >= 20


def test_good_rows_carry_their_values(catalog_dir: Path, write_csv) -> None:
    csv_path = write_csv(
        catalog_dir,
        "SKU,Image,Category,Title,Color,Gender,Poses,Variants,Prompt,Negative Prompt\n"
        "A-1,img1.png,Jumpsuits,Linen jumpsuit,sand,female,Front | Three Quarter Left,4,studio light,blurry\n"
        "B-2,sub/../img2.png,T-Shirts,Tee,,,,,,\n",
    )
    result = read_catalog(csv_path, known_poses={"front", "three_quarter_left"})
    assert result.rejects == [] and result.dialect == "onmodel" and result.rows_read == 2
    first, second = result.records
    assert (first.category, first.garment_class) == ("jumpsuit", GarmentClass.FULL)
    assert first.poses == ("front", "three_quarter_left")
    assert first.variants == 4
    assert (first.title, first.color, first.gender, first.prompt, first.negative_prompt) == (
        "Linen jumpsuit", "sand", "female", "studio light", "blurry",
    )  # fmt: skip
    assert first.image.path == (catalog_dir / "img1.png").resolve()
    assert (first.row, first.source_rows) == (2, (2,))
    assert (second.category, second.garment_class, second.poses, second.variants) == (
        "t-shirt", GarmentClass.UPPER, (), None,
    )  # fmt: skip


def test_latin1_good_row_keeps_its_accents(catalog_dir: Path, write_csv) -> None:
    csv_path = write_csv(
        catalog_dir, NATIVE + "A-1,img1.png,jupe,x\nB-2,img2.png,skirt,Jupe plissée à carreaux\n", "cp1252"
    )
    result = read_catalog(csv_path)
    assert [record.title for record in result.records] == ["Jupe plissée à carreaux"]


def test_shopify_record_has_extra_images_and_all_source_rows(catalog_dir: Path, write_csv) -> None:
    csv_path = write_csv(
        catalog_dir,
        SHOPIFY_HEADER + "tee,Tee,T-Shirt,,TEE-1,img2.png,2\ntee,,,,TEE-2,,\ntee,,,,,img1.png,1\n"
        "tee,,,,,https://elsewhere.example/x.png,3\n",
    )
    result = read_catalog(csv_path)
    (record,) = result.records
    assert record.image.path == (catalog_dir / "img1.png").resolve()
    assert [ref.raw for ref in record.extra_images] == ["img2.png"]  # the refused link is dropped, not fatal
    assert record.source_rows == (2, 3, 4, 5)
    assert result.dialect == "shopify" and result.rows_read == 4


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(CatalogError, match="does not exist"):
        read_catalog(tmp_path / "products.csv")


def test_verdict_reads_like_a_report(catalog_dir: Path, write_csv) -> None:
    csv_path = write_csv(
        catalog_dir, NATIVE + GOOD_A + "C-3,img3.png,scarf,x\nAB/1,gone.png,dress,y\n" + GOOD_B
    )
    verdict = format_verdict(read_catalog(csv_path))
    lines = verdict.splitlines()
    assert lines[0] == "Read as: onmodel product CSV (4 data rows)"
    assert lines[1] == "2 products ok, 2 rows rejected"
    assert lines[2].startswith("  Row 3, column 'category' (SKU C-3): 'scarf' is not a garment category")
    assert lines[3].startswith("  Row 4, column 'sku' (SKU AB/1): The SKU 'AB/1' contains '/'")
    assert lines[4].startswith("  Row 4, column 'image' (SKU AB/1): The image file 'gone.png' does not exist")
    assert len(lines) == 5


def test_verdict_for_an_unreadable_file(catalog_dir: Path, write_csv) -> None:
    verdict = format_verdict(read_catalog(write_csv(catalog_dir, b"")))
    assert verdict.splitlines() == [
        "The file could not be read as a product CSV.",
        "0 products ok, 0 rows rejected",
        "  File: The file is empty. Export the product sheet again, with its header row, as CSV.",
    ]


def test_100k_rows_are_all_read(tmp_path: Path, write_png) -> None:
    n_rows, n_images = 100_000, 200
    for index in range(n_images):
        (tmp_path / "images").mkdir(exist_ok=True)
        (tmp_path / "images" / f"{index}.png").touch()
    lines = [NATIVE.strip() + ",poses,variants"]
    lines += [f"SKU-{i},images/{i % n_images}.png,T-Shirts,Title {i},front|walking,2" for i in range(n_rows)]
    csv_path = tmp_path / "big.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    # Speed is measured by bench/catalog_flow.py, not asserted here (no timed tests).
    result = read_catalog(csv_path, known_poses={"front", "walking"})
    assert result.rejects == []
    assert result.rows_read == n_rows and len(result.records) == n_rows
    assert result.records[-1].sku == f"SKU-{n_rows - 1}" and result.records[-1].row == n_rows + 1


# --- colourways: a realistic Shopify export and a Google Merchant feed ----------------------------------------

# The columns of Shopify's product export (2024 layout), in its order; values as Shopify writes them: option
# names only on a product's first row, Variant Image per variant, image-only rows carrying Handle + Image Src.
SHOPIFY_EXPORT_COLUMNS = (
    "Handle,Title,Body (HTML),Vendor,Product Category,Type,Tags,Published,Option1 Name,Option1 Value,"
    "Option2 Name,Option2 Value,Option3 Name,Option3 Value,Variant SKU,Variant Grams,Variant Inventory Tracker,"
    "Variant Inventory Qty,Variant Inventory Policy,Variant Fulfillment Service,Variant Price,"
    "Variant Compare At Price,Variant Requires Shipping,Variant Taxable,Variant Barcode,Image Src,"
    "Image Position,Image Alt Text,Gift Card,SEO Title,SEO Description,Google Shopping / Gender,"
    "Variant Image,Variant Weight Unit,Status"
).split(",")


def _shopify_export(rows: list[dict[str, str]]) -> str:
    import csv
    import io

    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=SHOPIFY_EXPORT_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({column: row.get(column, "") for column in SHOPIFY_EXPORT_COLUMNS})
    return buffer.getvalue()


def _variant(handle: str, colour: str, size: str, sku: str, variant_image: str = "", **first: str) -> dict:
    return {
        "Handle": handle,
        "Option1 Value": colour,
        "Option2 Value": size,
        "Variant SKU": sku,
        "Variant Grams": "180",
        "Variant Inventory Tracker": "shopify",
        "Variant Inventory Qty": "12",
        "Variant Inventory Policy": "deny",
        "Variant Fulfillment Service": "manual",
        "Variant Price": "39.00",
        "Variant Requires Shipping": "true",
        "Variant Taxable": "true",
        "Variant Image": variant_image,
        "Variant Weight Unit": "kg",
        **first,
    }


def _first_row(title: str, product_type: str, image: str) -> dict[str, str]:
    return {
        "Title": title,
        "Body (HTML)": "<p>Soft cotton, relaxed fit.</p>",
        "Vendor": "Atelier Nord",
        "Product Category": "Apparel & Accessories > Clothing > Shirts & Tops",
        "Type": product_type,
        "Tags": "summer, cotton",
        "Published": "true",
        "Option1 Name": "Color",
        "Option2 Name": "Size",
        "Image Src": image,
        "Image Position": "1",
        "Image Alt Text": title,
        "Gift Card": "false",
        "Google Shopping / Gender": "female",
        "Status": "active",
    }


def test_shopify_colours_with_their_own_variant_image_render_apart(catalog_dir: Path, write_csv) -> None:
    rows = [
        _variant(
            "oxford-shirt", "White", "S", "OX-WHT-S", "img1.png", **_first_row("Oxford", "Shirts", "img1.png")
        ),
        _variant("oxford-shirt", "White", "M", "OX-WHT-M", "img1.png"),
        _variant("oxford-shirt", "White", "L", "OX-WHT-L", "img1.png"),
        _variant("oxford-shirt", "Navy Blue", "S", "OX-NVY-S", "img2.png"),
        _variant("oxford-shirt", "Navy Blue", "M", "OX-NVY-M", "img2.png"),
        {"Handle": "oxford-shirt", "Image Src": "img2.png", "Image Position": "2"},  # image-only row
        {"Handle": "oxford-shirt", "Image Src": "img3.png", "Image Position": "3"},  # a detail shot
    ]
    result = read_catalog(write_csv(catalog_dir, _shopify_export(rows)))
    assert result.rejects == [], format_verdict(result)
    white, navy = result.records
    assert (white.sku, white.color, white.row) == ("oxford-shirt--white", "White", 2)
    assert (navy.sku, navy.color, navy.row) == ("oxford-shirt--navy-blue", "Navy Blue", 5)
    assert white.image.path == (catalog_dir / "img1.png").resolve()
    assert navy.image.path == (catalog_dir / "img2.png").resolve()
    assert white.variant_skus == ("OX-WHT-S", "OX-WHT-M", "OX-WHT-L")
    assert navy.variant_skus == ("OX-NVY-S", "OX-NVY-M")
    assert white.identity == {"system": "shopify", "handle": "oxford-shirt", "Color": "White"}
    assert navy.identity == {"system": "shopify", "handle": "oxford-shirt", "Color": "Navy Blue"}
    assert [(c.row, c.sku, c.options) for c in navy.covered] == [
        (6, "OX-NVY-M", (("Color", "Navy Blue"), ("Size", "M")))
    ]
    # Every row ends in exactly one place: its product's own row, or covered by exactly one product.
    placed = [row for record in result.records for row in (record.row, *(c.row for c in record.covered))]
    assert sorted(placed) == list(range(2, 9))
    assert navy.covered[0].describe() == "Color Navy Blue, Size M (SKU OX-NVY-M)"


def test_shopify_size_only_variants_share_one_render(catalog_dir: Path, write_csv) -> None:
    first = _first_row("Linen Tee", "T-Shirts", "img1.png")
    first["Option1 Name"], first["Option2 Name"] = "Size", ""
    rows = [
        {**_variant("linen-tee", "S", "", "LT-S", **first)},
        _variant("linen-tee", "M", "", "LT-M"),
        _variant("linen-tee", "L", "", "LT-L"),
    ]
    result = read_catalog(write_csv(catalog_dir, _shopify_export(rows)))
    (tee,) = result.records
    assert (tee.sku, tee.variant_skus) == ("linen-tee", ("LT-S", "LT-M", "LT-L"))
    assert [c.describe() for c in tee.covered] == ["Size M (SKU LT-M)", "Size L (SKU LT-L)"]


def test_shopify_colour_without_a_photo_of_its_own_is_rejected_not_dropped(
    catalog_dir: Path, write_csv
) -> None:
    rows = [
        _variant("wrap-dress", "Red", "S", "WD-R-S", "img1.png", **_first_row("Wrap", "Dresses", "img1.png")),
        _variant("wrap-dress", "Green", "S", "WD-G-S", "img2.png"),
        _variant("wrap-dress", "Black", "S", "WD-B-S"),  # no Variant Image, and img1 already shows Red
        _variant("wrap-dress", "Black", "M", "WD-B-M"),
    ]
    result = read_catalog(write_csv(catalog_dir, _shopify_export(rows)))
    assert [record.sku for record in result.records] == ["wrap-dress--red", "wrap-dress--green"]
    assert [(r.row, r.sku, r.column) for r in result.rejects] == [
        (4, "WD-B-S", "Variant Image"),
        (5, "WD-B-M", "Variant Image"),
    ]
    assert "Colour 'Black' of 'wrap-dress' has no Variant Image" in result.rejects[0].reason


def test_shopify_colour_without_variant_image_takes_the_free_product_image(
    catalog_dir: Path, write_csv
) -> None:
    rows = [
        _variant("polo", "Sand", "S", "PO-S-S", **_first_row("Polo", "Polos", "img1.png")),
        _variant("polo", "Olive", "S", "PO-O-S", "img2.png"),
    ]
    sand, olive = read_catalog(write_csv(catalog_dir, _shopify_export(rows))).records
    assert (sand.sku, sand.image.path) == ("polo--sand", (catalog_dir / "img1.png").resolve())
    assert (olive.sku, olive.image.path) == ("polo--olive", (catalog_dir / "img2.png").resolve())


MERCHANT_FEED_COLUMNS = (
    "id\ttitle\tdescription\tlink\timage_link\tadditional_image_link\tavailability\tprice\tbrand\t"
    "google_product_category\tproduct_type\tgender\tage_group\tcolor\tsize\titem_group_id\n"
)


def _feed_row(item: str, colour: str, size: str, group: str, image: str, extra: str = "") -> str:
    return "\t".join(
        [item, "Oxford shirt", "Soft cotton", f"https://shop.example/p/{item}", image, extra, "in_stock",
         "39.00 EUR", "Atelier Nord", "Apparel & Accessories > Clothing > Shirts & Tops", "Shirts", "female",
         "adult", colour, size, group]
    ) + "\n"  # fmt: skip


def test_merchant_item_group_sizes_share_one_render_and_colour_splits(catalog_dir: Path, write_csv) -> None:
    feed = (
        MERCHANT_FEED_COLUMNS
        + _feed_row("OX-WHT-S", "White", "S", "OX-1", "img1.png", "img3.png,img4.png")
        + _feed_row("OX-WHT-M", "White", "M", "OX-1", "img1.png", "img3.png")
        + _feed_row("OX-WHT-L", "white", "L", "OX-1", "img1.png")  # colour case differs: the same colour
        + _feed_row("OX-NVY-S", "Navy", "S", "OX-1", "img2.png")
        + _feed_row("TEE-9", "", "", "", "img4.png")  # no group: an item of its own
    )
    result = read_catalog(write_csv(catalog_dir, feed, name="feed.tsv"))
    assert result.rejects == [] and result.dialect == "google_merchant"
    white, navy, tee = result.records
    assert (white.sku, white.variant_skus) == ("OX-1--white", ("OX-WHT-S", "OX-WHT-M", "OX-WHT-L"))
    assert [ref.raw for ref in white.extra_images] == ["img3.png", "img4.png"]
    assert white.identity == {
        "system": "google_merchant",
        "id": "OX-WHT-S",
        "item_group_id": "OX-1",
        "color": "White",
    }
    assert [c.describe() for c in white.covered] == ["size M (SKU OX-WHT-M)", "size L (SKU OX-WHT-L)"]
    assert (navy.sku, navy.variant_skus, navy.row) == ("OX-1--navy", ("OX-NVY-S",), 5)
    assert (tee.sku, tee.covered, tee.identity) == ("TEE-9", (), {"system": "google_merchant", "id": "TEE-9"})


def test_merchant_group_without_colours_splits_by_photo(catalog_dir: Path, write_csv) -> None:
    feed = (
        MERCHANT_FEED_COLUMNS
        + _feed_row("SK-1-S", "", "S", "SK-1", "img1.png")
        + _feed_row("SK-1-M", "", "M", "SK-1", "img1.png")
        + _feed_row("SK-2-S", "", "S", "SK-1", "img2.png")
    )
    first, second = read_catalog(write_csv(catalog_dir, feed, name="feed.tsv")).records
    assert (first.sku, first.variant_skus) == ("SK-1--SK-1-S", ("SK-1-S", "SK-1-M"))
    assert (second.sku, second.variant_skus) == ("SK-1--SK-2-S", ("SK-2-S",))
