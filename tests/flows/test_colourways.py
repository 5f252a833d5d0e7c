"""Colourways end to end: a Shopify export and a Merchant feed render once per colour, every row accounted for."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from flows.produce import run_catalog
from tests.flows.helpers import small_profile, write_flatlays

SHOPIFY_HEADER = (
    "Handle,Title,Type,Option1 Name,Option1 Value,Option2 Name,Option2 Value,Variant SKU,Image Src,"
    "Image Position,Variant Image\n"
)


def test_a_shopify_export_renders_each_colour_once_and_covers_every_size(tmp_path: Path) -> None:
    write_flatlays(tmp_path / "in", 2)  # g00.png (the white tee), g01.png (the navy tee)
    csv_path = tmp_path / "in" / "shopify.csv"
    csv_path.write_text(
        SHOPIFY_HEADER + "crew-tee,Crew Tee,T-Shirts,Color,White,Size,S,CT-W-S,g00.png,1,g00.png\n"  # row 2
        "crew-tee,,,,White,,M,CT-W-M,,,g00.png\n"  # row 3
        "crew-tee,,,,White,,L,CT-W-L,,,g00.png\n"  # row 4
        "crew-tee,,,,Navy,,S,CT-N-S,,,g01.png\n"  # row 5
        "crew-tee,,,,Navy,,M,CT-N-M,,,g01.png\n"  # row 6
        "crew-tee,,,,,,,,g01.png,2,\n"  # row 7: image-only row
    )
    profile = small_profile(tmp_path, variants=1)
    report = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert report.exit_code() == 0
    assert [p.sku for p in report.products] == ["crew-tee--white", "crew-tee--navy"]
    assert (
        report.counts["produced"] == 4 and report.counts["covered"] == 4
    )  # 2 colours x 2 poses; 4 rows folded
    out = tmp_path / "out"
    assert {p.name for p in (out / "images" / "master").iterdir()} == {"crew-tee--white", "crew-tee--navy"}
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    # Every one of the six rows ends in exactly one state.
    by_row = {}
    for row in manifest:
        if row["kind"] in ("product", "covered", "row"):
            assert row["row"] not in by_row, row
            by_row[row["row"]] = (row["kind"], row["sku"], row["state"])
    assert by_row == {
        "2": ("product", "crew-tee--white", "produced"),
        "3": ("covered", "CT-W-M", "covered"),
        "4": ("covered", "CT-W-L", "covered"),
        "5": ("product", "crew-tee--navy", "produced"),
        "6": ("covered", "CT-N-M", "covered"),
        "7": ("covered", "", "covered"),
    }
    covered = next(r for r in manifest if r["row"] == "6")
    assert (
        covered["reason"]
        == "covered by product crew-tee--navy (row 5, produced): Color Navy, Size M (SKU CT-N-M)"
    )
    product = next(r for r in manifest if r["row"] == "5" and r["kind"] == "product")
    assert product["source_identity"] == "shopify handle=crew-tee Color=Navy"
    assert product["variant_skus"] == "CT-N-S|CT-N-M"
    sidecar = json.loads(next((out / "images" / "master" / "crew-tee--navy").glob("*.json")).read_text())
    assert sidecar["source_identity"] == {"system": "shopify", "handle": "crew-tee", "Color": "Navy"}
    assert sidecar["variant_skus"] == ["CT-N-S", "CT-N-M"]
    assert sidecar["attributes"]["color"] == "Navy"


def test_a_merchant_feed_renders_sizes_that_share_a_photo_once(tmp_path: Path) -> None:
    write_flatlays(tmp_path / "in", 1)
    feed = tmp_path / "in" / "feed.tsv"
    feed.write_text(
        "id\ttitle\timage_link\tproduct_type\tcolor\tsize\titem_group_id\n"
        "TEE-S\tTee\tg00.png\tT-Shirts\tCream\tS\tTEE\n"
        "TEE-M\tTee\tg00.png\tT-Shirts\tCream\tM\tTEE\n"
        "TEE-L\tTee\tg00.png\tT-Shirts\tCream\tL\tTEE\n"
    )
    profile = small_profile(tmp_path, variants=1)
    report = run_catalog(str(feed), str(profile), str(tmp_path / "out"))
    (product,) = report.products
    assert product.sku == "TEE--cream" and report.counts["produced"] == 2  # not 6: one render per colour
    assert product.variant_skus == ["TEE-S", "TEE-M", "TEE-L"]
    assert product.source_identity == {
        "system": "google_merchant",
        "id": "TEE-S",
        "item_group_id": "TEE",
        "color": "Cream",
    }
