"""The bad-input corpus: every broken row or photo is rejected with its exact reason, good rows are produced.

Each case is one kind of broken input placed in a CSV beside good rows; the flow runs once per file and every
reject is checked by spreadsheet row, column and a key phrase of its reason.
"""

from __future__ import annotations

import codecs
import csv
import io
from pathlib import Path

import pytest
from PIL import Image

from flows.produce import run_catalog
from tests.flows.helpers import small_profile, write_flatlays

HEADER = "sku,image,category,title,poses,variants"
# (kind, CSV line, column, phrase of the reason); rows are numbered from 2 in the order listed.
ROW_CASES: list[tuple[str, str, str, str]] = [
    ("empty sku", ",g01.png,t-shirt,no sku,,", "sku", "The SKU is empty"),
    ("unknown category", "BAD-CAT,g01.png,scarf,x,,", "category", "'scarf' is not a garment category"),
    (
        "variants out of range",
        "BAD-VAR,g01.png,dress,,,99",
        "variants",
        "not a whole number of variants from 1 to 16",
    ),
    ("variants not a number", "BAD-VAR2,g01.png,dress,,,two", "variants", "'two' is not a whole number"),
    ("unknown pose", "BAD-POSE,g01.png,dress,,moonwalk,", "poses", "'moonwalk' are not known"),
    ("duplicate sku", "GOOD-1,g01.png,dress,duplicate,,", "sku", "already appears in row 2"),
    ("slash in sku", "BAD/SLASH,g01.png,dress,,,", "sku", "cannot be used in a file name"),
    ("no image", "NOIMG,,dress,,,", "image", "No image is given"),
    ("missing image file", "MISSING,nope.png,dress,,,", "image", "'nope.png' does not exist"),
    (
        "path escaping the CSV folder",
        "ESCAPE,../../etc/passwd,dress,,,",
        "image",
        "leads outside the allowed image folders",
    ),
    (
        "absolute path outside roots",
        "ABS,/etc/hostname,dress,,,",
        "image",
        "leads outside the allowed image folders",
    ),
    ("ftp scheme", "FTP,ftp://example.com/a.jpg,dress,,,", "image", "'ftp:' image links are not accepted"),
    (
        "host not allow-listed",
        "HOST,https://evil.example.com/a.jpg,dress,,,",
        "image",
        "'evil.example.com' is not on the allow-list",
    ),
    (
        "internal address",
        "LOCAL,http://127.0.0.1:9/a.jpg,dress,,,",
        "image",
        "'127.0.0.1' is not on the allow-list",
    ),
    ("stray delimiter", "STRAY,g01.png,dress,Shirt, with comma,,", "", "stray delimiter"),
    ("empty image file", "EMPTYIMG,empty.jpg,dress,,,", "image", "the file is empty"),
    ("text file named .jpg", "TEXTIMG,text.jpg,dress,,,", "image", "a text file, not an image file"),
    ("truncated PNG", "TRUNCPNG,trunc.png,dress,,,", "image", "truncated"),
    ("truncated JPEG", "TRUNCJPG,trunc.jpg,dress,,,", "image", "truncated"),
    ("decompression bomb", "BOMB,bomb.png,dress,,,", "image", "over the"),
    ("fully transparent PNG", "TRANSP,transparent.png,dress,,,", "image", "fully transparent"),
    ("blank photo, no garment", "BLANK,blank.png,dress,,,", "image", "no garment found"),
]
GOOD_ROWS = ["GOOD-1,g00.png,t-shirt,ok one,,", "GOOD-2,g01.png,skirt,ok two,,"]


def _broken_images(folder: Path) -> None:
    (folder / "empty.jpg").write_bytes(b"")
    (folder / "text.jpg").write_text("sku,image\nthis is a CSV saved with the wrong name\n")
    good_png = (folder / "g00.png").read_bytes()
    (folder / "trunc.png").write_bytes(good_png[: len(good_png) // 3])
    buffer = io.BytesIO()
    Image.new("RGB", (256, 256), (200, 30, 30)).save(buffer, "JPEG", quality=95)
    (folder / "trunc.jpg").write_bytes(buffer.getvalue()[: len(buffer.getvalue()) // 2])
    buffer = io.BytesIO()
    Image.new("1", (9000, 9000)).save(buffer, "PNG")  # 81 MP in a few kB: over the 40 MP cap
    (folder / "bomb.png").write_bytes(buffer.getvalue())
    Image.new("RGB", (300, 400), (250, 250, 250)).save(folder / "blank.png")
    Image.new("RGBA", (300, 400), (0, 0, 0, 0)).save(folder / "transparent.png")


@pytest.fixture(scope="module")
def corpus_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, object]:
    root = tmp_path_factory.mktemp("corpus")
    write_flatlays(root / "in", 2)
    _broken_images(root / "in")
    lines = [HEADER, GOOD_ROWS[0], *(case[1] for case in ROW_CASES), GOOD_ROWS[1]]
    csv_path = root / "in" / "products.csv"
    csv_path.write_text("\n".join(lines) + "\n")
    profile = small_profile(root, variants=1)
    summary = run_catalog(str(csv_path), str(profile), str(root / "out"))
    return root / "out", summary


def _rejects(out: Path) -> dict[int, dict[str, str]]:
    return {int(row["row"]): row for row in csv.DictReader((out / "rejects.csv").open())}


def test_every_broken_row_is_counted_once_as_rejected(corpus_run: tuple) -> None:
    """CSV rejects and photo rejects (found while preparing) are each counted and reported exactly once."""
    out, summary = corpus_run
    assert summary.counts["rejected"] == len(ROW_CASES)
    assert sorted(_rejects(out)) == list(range(3, len(ROW_CASES) + 3))


@pytest.mark.parametrize(("index", "case"), list(enumerate(ROW_CASES)), ids=[c[0] for c in ROW_CASES])
def test_each_broken_row_is_rejected_with_its_reason(corpus_run: tuple, index: int, case: tuple) -> None:
    out, _summary = corpus_run
    _kind, line, column, phrase = case
    row = index + 3  # header is row 1, GOOD-1 row 2
    reject = _rejects(out).get(row)
    assert reject is not None, f"row {row} ({line}) was not rejected"
    assert reject["column"] == column
    assert phrase in reject["reason"], reject["reason"]


def test_good_rows_still_produced_and_every_row_has_one_state(corpus_run: tuple) -> None:
    out, summary = corpus_run
    assert summary.counts["produced"] == 4 and summary.counts["failed"] == 0
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    produced = {r["sku"] for r in manifest if r["kind"] == "product" and r["state"] == "produced"}
    assert produced == {"GOOD-1", "GOOD-2"}
    # Every data row of the CSV appears exactly once as a row reject or a product.
    rows = [int(r["row"]) for r in manifest if r["kind"] in ("row", "product")]
    assert sorted(rows) == list(range(2, len(ROW_CASES) + 4))
    page = (out / "index.html").read_text()
    assert "is not a garment category" in page


def _utf16(text: str) -> bytes:
    return codecs.BOM_UTF16_LE + text.encode("utf-16-le")


# File-level cases: (kind, file bytes, expected good SKUs, {row: phrase})
FILE_CASES: list[tuple[str, bytes, set[str], dict[int, str]]] = [
    (
        "utf-16 with a bad row",
        _utf16(f"{HEADER}\r\nU-1,g00.png,t-shirt,Tee,,\r\nU-2,g01.png,hat,,,\r\n"),
        {"U-1"},
        {3: "'hat' is not a garment category"},
    ),
    (
        "latin-1 accents",
        f"{HEADER}\nL-1,g00.png,t-shirt,Café crème tee,,\nL-2,g01.png,,,,\n".encode("latin-1"),
        {"L-1"},
        {3: "category"},
    ),
    (
        "utf-8 BOM, semicolons",
        ("\ufeff" + HEADER.replace(",", ";") + "\nS-1;g00.png;dress;;;\n").encode(),
        {"S-1"},
        {},
    ),
    (
        "shopify export, product without image",
        b"Handle,Title,Type,Tags,Variant SKU,Image Src,Image Position\n"
        b"tee-a,Tee A,T-Shirts,,TEE-A-S,g00.png,1\ntee-a,,,,TEE-A-M,,\ntee-b,Tee B,T-Shirts,,TEE-B-S,,\n",
        {"tee-a"},  # the product key: its Handle (sizes share one render)
        {4: "image"},
    ),
    (
        "merchant feed TSV with an unknown category",
        b"id\ttitle\timage_link\tproduct_type\tgender\tcolor\n"
        b"M-1\tDress\tg01.png\tApparel > Clothing > Dresses\tfemale\tred\n"
        b"M-2\tHat\tg00.png\tApparel > Hats\tmale\tblue\n",
        {"M-1"},
        {3: "not a garment category"},
    ),
]


@pytest.mark.parametrize("case", FILE_CASES, ids=[c[0] for c in FILE_CASES])
def test_file_level_cases_reject_bad_rows_and_produce_good_ones(case: tuple, tmp_path: Path) -> None:
    _kind, data, good, expected = case
    write_flatlays(tmp_path / "in", 2)
    csv_path = tmp_path / "in" / "products.csv"
    csv_path.write_bytes(data)
    profile = small_profile(
        tmp_path, variants=1, poses={"upper_body": ["front"], "lower_body": ["front"], "full_body": ["front"]}
    )
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    produced = {r["sku"] for r in manifest if r["kind"] == "product" and r["state"] == "produced"}
    assert produced == good
    rejects = _rejects(tmp_path / "out")
    for row, phrase in expected.items():
        assert row in rejects, f"row {row} not rejected: {rejects}"
        assert phrase in rejects[row]["reason"] + rejects[row]["column"]
    assert summary.counts["failed"] == 0
