"""produce_catalog end to end on generated flat-lays: outputs, metadata, re-runs, determinism."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from flows.produce import run_catalog
from pipelines.image_io import load_image, read_png_text, write_png_atomic
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, object]:
    root = tmp_path_factory.mktemp("catalog")
    rows = write_flatlays(root / "in", 3)
    csv_path = write_csv(root / "in" / "products.csv", rows)
    profile = small_profile(root)
    summary = run_catalog(str(csv_path), str(profile), str(root / "out"), show_progress=False)
    return root, csv_path, profile, summary


def _images(out: Path) -> list[Path]:
    return sorted((out / "images").rglob("*.png"))


def test_every_job_is_produced_with_metadata(first_run: tuple) -> None:
    root, _csv, _profile, summary = first_run
    assert summary.counts == {
        "products": 3,
        "rejected": 0,
        "produced": 12,
        "skipped": 0,
        "failed": 0,
        "jobs": 12,
    }
    assert summary.exit_code == 0
    images = _images(root / "out")
    assert len(images) == 12
    for image_path in images:
        pixels = load_image(image_path)
        assert pixels.shape == (288, 192, 3)
        embedded = json.loads(read_png_text(image_path)["onmodel"])
        sidecar = json.loads(image_path.with_suffix(".json").read_text())
        assert embedded == sidecar
        for key in (
            "sku",
            "pose",
            "variant",
            "seed",
            "renderer",
            "config_fingerprint",
            "code_version",
            "source_sha256",
            "profile",
        ):
            assert key in sidecar, key
        assert image_path.name == f"{sidecar['sku']}__{sidecar['pose']}__v{sidecar['variant']}.png"


def test_outputs_index_sheets_manifest(first_run: tuple) -> None:
    root, _csv, _profile, summary = first_run
    out = root / "out"
    assert sorted(p.name for p in (out / "sheets").iterdir()) == ["SKU-00.jpg", "SKU-01.jpg", "SKU-02.jpg"]
    page = (out / "index.html").read_text()
    for sku in ("SKU-00", "SKU-01", "SKU-02"):
        assert f"sheets/{sku}.jpg" in page
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    assert [r["state"] for r in manifest if r["kind"] == "product"] == ["produced"] * 3
    jobs = [r for r in manifest if r["kind"] == "job"]
    assert len(jobs) == 12 and {r["state"] for r in jobs} == {"produced"}
    assert all((out / r["output"]).exists() for r in jobs)
    assert (out / "runs" / summary.run_id / "manifest.csv").exists()
    sheet = load_image(out / "sheets" / "SKU-00.jpg")
    assert sheet.shape[0] > 200 and sheet.shape[1] > 500


def test_rerun_skips_and_duplicates_nothing(first_run: tuple) -> None:
    root, csv_path, profile, _summary = first_run
    out = root / "out"
    before = {p: p.read_bytes() for p in _images(out)}
    files_before = sorted((out / "images").rglob("*"))
    again = run_catalog(str(csv_path), str(profile), str(out), show_progress=False)
    assert again.counts["skipped"] == 12 and again.counts["produced"] == 0
    after = {p: p.read_bytes() for p in _images(out)}
    assert after == before
    assert sorted((out / "images").rglob("*")) == files_before


def test_same_csv_same_config_gives_identical_pixels(first_run: tuple, tmp_path: Path) -> None:
    root, csv_path, profile, _summary = first_run
    other = run_catalog(str(csv_path), str(profile), str(tmp_path / "out2"), show_progress=False)
    assert other.counts["produced"] == 12
    for image_path in _images(root / "out"):
        twin = tmp_path / "out2" / image_path.relative_to(root / "out")
        assert np.array_equal(load_image(image_path), load_image(twin)), image_path.name


def test_only_and_preset(first_run: tuple, tmp_path: Path) -> None:
    _root, csv_path, profile, _summary = first_run
    summary = run_catalog(
        str(csv_path),
        str(profile),
        str(tmp_path / "out"),
        only=["SKU-01"],
        preset="shopify",
        show_progress=False,
    )
    assert summary.counts["products"] == 1 and summary.counts["produced"] == 4
    images = sorted((tmp_path / "out" / "images" / "shopify" / "SKU-01").glob("*.jpg"))
    assert len(images) == 4
    assert load_image(images[0]).shape == (2048, 2048, 3)


def test_rerun_keeps_the_cutout_quality_flags(tmp_path: Path) -> None:
    """A skipped product is not segmented again, yet its sheet and manifest still show its flags."""
    rows = write_flatlays(tmp_path / "in", 1)
    photo = load_image(tmp_path / "in" / "g00.png")
    height, width = photo.shape[:2]
    write_png_atomic(tmp_path / "in" / "g00.png", photo[height // 4 :, : width * 3 // 4])  # garment cut off
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=1)
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    again = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), show_progress=False)
    assert "touches_border" in first.products[0].flags
    assert again.counts["skipped"] == 2
    assert again.products[0].flags == first.products[0].flags
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert "touches_border" in next(r for r in manifest if r["kind"] == "product")["flags"]
