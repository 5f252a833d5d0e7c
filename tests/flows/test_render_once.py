"""Render once, derive every preset: a preset change never renders again; dropped poses are retired."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.produce import run_catalog
from pipelines.image_io import load_image
from tests.flows.helpers import small_profile, write_csv, write_flatlays


def _files(out: Path, preset: str) -> dict[str, bytes]:
    folder = out / "images" / preset
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def _profile(folder: Path, **overrides: object) -> Path:
    folder.mkdir()
    return small_profile(folder, **overrides)


@pytest.fixture
def catalogue(tmp_path: Path) -> tuple[Path, Path]:
    rows = write_flatlays(tmp_path / "in", 2)
    return write_csv(tmp_path / "in" / "products.csv", rows), small_profile(tmp_path)


def test_switching_presets_derives_from_the_master_without_rendering(catalogue, tmp_path: Path) -> None:
    csv_path, profile = catalogue
    out = tmp_path / "out"
    first = run_catalog(str(csv_path), str(profile), str(out))
    masters = _files(out, "master")
    stamps = {p: p.stat().st_mtime_ns for p in (out / "images" / "master").rglob("*.png")}
    assert first.counts["produced"] == 8 and len(masters) == 16  # 8 PNGs + 8 sidecars

    second = run_catalog(str(csv_path), str(profile), str(out), presets=["amazon", "shopify"])
    # Nothing rendered: every job skipped, both presets derived, the masters untouched.
    assert (second.counts["produced"], second.counts["skipped"], second.counts["derived"]) == (0, 8, 16)
    assert _files(out, "master") == masters
    assert {p: p.stat().st_mtime_ns for p in stamps} == stamps
    amazon = sorted((out / "images" / "amazon").rglob("*.jpg"))
    assert len(amazon) == 8 and load_image(amazon[0]).shape == (2134, 1600, 3)
    job = second.products[0].jobs[0]
    assert job.output.startswith("images/amazon/") and set(job.outputs) == {"master", "amazon", "shopify"}
    assert "amazon, shopify derived from its stored master" in job.reason
    sidecar = json.loads(amazon[0].with_suffix(".json").read_text())
    assert (sidecar["preset"], sidecar["format"]) == ("amazon", "jpeg")

    # A derivative made later from the stored master is byte-identical to one made right after rendering.
    fresh = tmp_path / "fresh"
    together = run_catalog(str(csv_path), str(profile), str(fresh), presets=["master", "amazon", "shopify"])
    assert together.counts["produced"] == 8 and together.counts["derived"] == 0
    for preset in ("master", "amazon", "shopify"):
        made_later, made_together = _files(out, preset), _files(fresh, preset)
        assert made_later.keys() == made_together.keys()
        for name in made_later:
            if name.endswith(".json"):  # the same render record; only the run (and its preset list) differ
                later, together = json.loads(made_later[name]), json.loads(made_together[name])
                for record in (later, together):
                    record.pop("run_id"), record["profile"].pop("preset")
                assert later == together, name
            else:
                a, b = out / "images" / preset / name, fresh / "images" / preset / name
                assert np.array_equal(load_image(a), load_image(b)), name

    third = run_catalog(str(csv_path), str(profile), str(out), presets=["amazon"])
    assert (third.counts["produced"], third.counts["derived"]) == (0, 0)


def test_a_new_render_keeps_every_earlier_preset_current(catalogue, tmp_path: Path) -> None:
    csv_path, profile = catalogue
    out = tmp_path / "out"
    run_catalog(str(csv_path), str(profile), str(out), presets=["amazon"])
    before = _files(out, "amazon")
    reseeded = _profile(tmp_path / "reseeded", seed=99)
    again = run_catalog(str(csv_path), str(reseeded), str(out))  # master only, but a new render
    assert again.counts["produced"] == 8
    after = _files(out, "amazon")
    assert after.keys() == before.keys() and after != before  # re-derived from the new masters
    for name, data in after.items():
        if name.endswith(".json"):
            assert json.loads(data)["config_fingerprint"] == again.fingerprint


def test_export_derives_a_preset_from_existing_masters(catalogue, tmp_path: Path, capsys) -> None:
    csv_path, profile = catalogue
    out = tmp_path / "out"
    run_catalog(str(csv_path), str(profile), str(out))
    assert main(["export", "--preset", "zalando", "--out", str(out)]) == 0
    assert "zalando: 8 images derived from their masters, 0 already current" in capsys.readouterr().out
    zalando = sorted((out / "images" / "zalando").rglob("*.jpg"))
    assert len(zalando) == 8 and load_image(zalando[0]).shape == (2600, 1801, 3)
    assert main(["export", "--preset", "zalando", "--out", str(out)]) == 0
    assert "0 images derived from their masters, 8 already current" in capsys.readouterr().out
    # The run then knows the preset: nothing to derive, nothing to render.
    again = run_catalog(str(csv_path), str(profile), str(out), presets=["zalando"])
    assert (again.counts["produced"], again.counts["derived"]) == (0, 0)
    # Into another folder (for an upload), only the chosen product.
    upload = tmp_path / "upload"
    assert (
        main(["export", "--preset", "shopify", "--out", str(out), "--only", "SKU-01", "--to", str(upload)])
        == 0
    )
    assert {p.parent.name for p in (upload / "images" / "shopify").rglob("*.jpg")} == {"SKU-01"}
    assert not (out / "images" / "shopify").exists()


def test_export_refuses_an_unknown_preset_and_a_folder_without_runs(tmp_path: Path, capsys) -> None:
    assert main(["export", "--preset", "amazon", "--out", str(tmp_path)]) == 2
    assert "holds no onmodel catalogue" in capsys.readouterr().err


def test_fewer_poses_or_variants_retire_the_stale_images(catalogue, tmp_path: Path, capsys) -> None:
    csv_path, profile = catalogue
    out = tmp_path / "out"
    run_catalog(str(csv_path), str(profile), str(out), presets=["master", "amazon"])
    fewer = _profile(tmp_path / "fewer", variants=1)
    report = run_catalog(str(csv_path), str(fewer), str(out))
    assert report.counts["produced"] == 0 and report.counts["skipped"] == 4
    # Only v0 images remain current; the v1 files of both presets moved under retired/<run id>/.
    assert all("__v0" in name for preset in ("master", "amazon") for name in _files(out, preset))
    retired = sorted((out / "retired" / report.run_id / "images").rglob("*__v1.*"))
    assert len(retired) == 16  # 4 jobs x (master png + json + amazon jpg + json)
    assert len(list((out / "retired" / report.run_id / "masks").rglob("*__v1.png"))) == 4  # and their masks
    assert not list((out / "masks").rglob("*__v1.png"))
    assert sorted(report.products[0].retired_jobs) == ["SKU-00__front__v1", "SKU-00__three_quarter_left__v1"]
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    assert sorted(r["job_id"] for r in manifest if r["state"] == "retired")[:2] == [
        "SKU-00__front__v1",
        "SKU-00__three_quarter_left__v1",
    ]
    assert not any(r["state"] != "retired" and "__v1" in r["job_id"] for r in manifest)
    assert main(["prune", "--out", str(out), "--dry-run"]) == 0
    assert "would remove 20 retired files" in capsys.readouterr().out
    assert main(["prune", "--out", str(out)]) == 0
    assert not (out / "retired").exists()
    # Putting the variant back renders it again (its files were retired, not left to look current).
    again = run_catalog(str(csv_path), str(profile), str(out))
    assert again.counts["produced"] == 4 and again.counts["skipped"] == 4


def test_several_presets_from_the_command_line(catalogue, tmp_path: Path) -> None:
    csv_path, profile = catalogue
    out = tmp_path / "out"
    code = main(["run", str(csv_path), "--config", str(profile), "--out", str(out), "--preset", "master,amazon",
                 "--preset", "shopify", "--no-progress"])  # fmt: skip
    assert code == 0
    assert {p.name for p in (out / "images").iterdir()} == {"master", "amazon", "shopify"}
    masters = sorted((out / "images" / "master").rglob("*.png"))
    amazon = sorted((out / "images" / "amazon").rglob("*.jpg"))
    assert len(masters) == len(amazon) == 8
    assert np.asarray(load_image(masters[0])).shape == (288, 192, 3)
