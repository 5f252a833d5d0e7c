"""produce_catalog end to end on generated flat-lays: outputs, metadata, re-runs, determinism."""

from __future__ import annotations

import csv
import inspect
import json
import threading
import time
from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from flows.cli import main
from flows.produce import produce_catalog, run_catalog
from pipelines.image_io import load_image, read_png_text, write_png_atomic
from pipelines.production.book import ProgressEvent
from tests.flows.helpers import small_profile, write_csv, write_flatlays


@pytest.fixture(scope="module")
def first_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path, object]:
    root = tmp_path_factory.mktemp("catalog")
    rows = write_flatlays(root / "in", 3)
    csv_path = write_csv(root / "in" / "products.csv", rows)
    profile = small_profile(root)
    summary = run_catalog(str(csv_path), str(profile), str(root / "out"))
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
        "derived": 0,
        "covered": 0,
    }
    assert summary.exit_code() == 0
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
    again = run_catalog(str(csv_path), str(profile), str(out))
    assert again.counts["skipped"] == 12 and again.counts["produced"] == 0
    after = {p: p.read_bytes() for p in _images(out)}
    assert after == before
    assert sorted((out / "images").rglob("*")) == files_before


def test_same_csv_same_config_gives_identical_pixels(first_run: tuple, tmp_path: Path) -> None:
    root, csv_path, profile, _summary = first_run
    other = run_catalog(str(csv_path), str(profile), str(tmp_path / "out2"))
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
        presets=["shopify"],
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
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    again = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert "touches_border" in first.products[0].flags
    assert again.counts["skipped"] == 2
    assert again.products[0].flags == first.products[0].flags
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    assert "touches_border" in next(r for r in manifest if r["kind"] == "product")["flags"]


def test_rerun_keeps_job_flags_and_the_used_seed(tmp_path: Path) -> None:
    """Skipped jobs report the flags and seed they were produced with, in the report, manifest and sheet."""
    rows = write_flatlays(
        tmp_path / "in", 1, size=64
    )  # a small photo on a larger canvas: upscaled (a job flag)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=1, canvas={"width": 384, "height": 576})
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    again = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert again.counts["skipped"] == 2 and again.counts["produced"] == 0
    produced = {j.job_id: (j.flags, j.seed) for j in first.products[0].jobs}
    skipped = {j.job_id: (j.flags, j.seed) for j in again.products[0].jobs}
    assert all("garment_upscaled" in flags for flags, _seed in produced.values())
    assert skipped == produced
    manifest = list(csv.DictReader((tmp_path / "out" / "manifest.csv").open()))
    jobs = [r for r in manifest if r["kind"] == "job"]
    assert {r["state"] for r in jobs} == {"skipped"}
    assert all("garment_upscaled" in r["flags"].split("|") for r in jobs)
    assert {r["job_id"]: int(r["seed"]) for r in jobs} == {k: seed for k, (_f, seed) in produced.items()}


def test_deleted_output_is_produced_again(first_run: tuple, tmp_path: Path) -> None:
    root, csv_path, profile, _summary = first_run
    out = tmp_path / "copy"
    again = run_catalog(str(csv_path), str(profile), str(out))
    victim = _images(out)[0]
    victim.unlink()
    third = run_catalog(str(csv_path), str(profile), str(out))
    assert third.counts["produced"] == 1 and third.counts["skipped"] == 11
    assert victim.exists() and again.counts["produced"] == 12


def test_jpeg_preset_image_reproduces_identically(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`reproduce --check` compares like with like: the lossy file against the same encoding of the re-render."""
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    one_pose = {"upper_body": ["front"], "lower_body": ["front"], "full_body": ["front"]}
    profile = small_profile(tmp_path, variants=1, poses=one_pose)
    run_catalog(str(csv_path), str(profile), str(tmp_path / "out"), presets=["shopify"])
    [image] = sorted((tmp_path / "out" / "images" / "shopify").rglob("*.jpg"))
    assert json.loads(image.with_suffix(".json").read_text())["format"] == "jpeg"
    assert main(["reproduce", str(image), "--check"]) == 0
    assert "identical" in capsys.readouterr().out
    assert np.array_equal(load_image(image.with_name(f"{image.stem}.reproduced.jpg")), load_image(image))


def test_progress_reaches_the_callback_of_whoever_started_the_run(tmp_path: Path) -> None:
    """Progress is a callback of the caller (the CLI's bar), not a flow parameter."""
    rows = write_flatlays(tmp_path / "in", 2)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    events: list[ProgressEvent] = []
    run_catalog(
        str(csv_path),
        str(small_profile(tmp_path, variants=1)),
        str(tmp_path / "out"),
        on_progress=events.append,
    )
    assert [(e.done, e.total) for e in events if e.stage == "prepare"][-1] == (2, 2)
    assert [(e.done, e.total) for e in events if e.stage == "render"][-1] == (4, 4)
    assert "on_progress" not in inspect.signature(produce_catalog.fn).parameters


def test_only_and_a_second_csv_never_make_products_vanish_from_the_index(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 3)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = str(small_profile(tmp_path, variants=1))
    out = tmp_path / "out"
    first = run_catalog(str(csv_path), profile, str(out))
    only = run_catalog(str(csv_path), profile, str(out), only=["SKU-01"], force=True)
    assert [p.sku for p in only.products] == ["SKU-01"]
    other = write_csv(tmp_path / "in" / "more.csv", [{**rows[0], "sku": "EXTRA-1"}])
    run_catalog(str(other), profile, str(out))
    page = (out / "index.html").read_text()
    for sku in ("SKU-00", "SKU-01", "SKU-02", "EXTRA-1"):
        assert f'data-sku="{sku}"' in page, sku
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    runs = {r["sku"]: r["run_id"] for r in manifest if r["kind"] == "product"}
    assert runs["SKU-00"] == first.run_id and runs["SKU-01"] == only.run_id and len(runs) == 4
    assert len(list((out / "runs").glob("*/index.html"))) == 3
    only_page = (out / "runs" / only.run_id / "index.html").read_text()
    assert 'data-sku="SKU-01"' in only_page and 'data-sku="SKU-00"' not in only_page


def test_the_run_is_recorded_in_the_state_store_with_its_trigger_counts_and_jobs(first_run: tuple) -> None:
    from catalog.state import open_job_store

    root, _csv, _profile, summary = first_run
    store = open_job_store(root / "out" / "state.sqlite")
    run = store.get_run(summary.run_id)
    assert run is not None
    assert (run.trigger, run.status, run.profile) == ("cli", "completed", "demo")
    assert run.finished_at and dict(run.counts)["produced"] == 12
    jobs = store.all_rows()
    assert len(jobs) == 12 and {job.last_run_id for job in jobs} == {summary.run_id}
    assert {job.render_fingerprint for job in jobs} == {summary.fingerprint}


def test_a_changed_title_renders_that_product_again_and_nothing_else(tmp_path: Path) -> None:
    """The product fields a prompt is made of are recorded with each render: changing one re-renders its jobs."""
    rows = write_flatlays(tmp_path / "in", 2, size=96)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=1)
    first = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert first.counts["produced"] == 4
    rows[1] = {**rows[1], "title": rows[1].get("title", "") + " (new season)"}
    write_csv(csv_path, rows)
    again = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    states = {p.sku: {j.state for j in p.jobs} for p in again.products}
    assert states == {rows[0]["sku"]: {"skipped"}, rows[1]["sku"]: {"produced"}}
    third = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert third.counts["skipped"] == 4 and third.counts["produced"] == 0


def test_a_night_after_a_night_takes_finished_products_whole_and_reports_them_alike(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Night 2 finds every job done and records the products complete; night 3 takes them whole (no job-by-job
    plan) and its report, manifest and catalogue say exactly what night 2's did."""
    import os

    from catalog.state import open_job_store
    from pipelines.production import stages

    rows = write_flatlays(tmp_path / "in", 2, size=96)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile, out = small_profile(tmp_path, variants=1), tmp_path / "out"
    assert run_catalog(str(csv_path), str(profile), str(out)).counts["produced"] == 4
    past = time.time() - 3600  # the files as the night before
    for folder, _, files in [*os.walk(out), *os.walk(tmp_path / "in")]:
        for name in [*files, "."]:
            os.utime(Path(folder) / name, (past, past))
    second = run_catalog(str(csv_path), str(profile), str(out))
    store = open_job_store(out / "state.sqlite")
    recorded = store.get_completed([row["sku"] for row in rows])
    assert {record.run_id for record in recorded.values()} == {second.run_id} and len(recorded) == 2
    planned_by_jobs: list[str] = []
    by_jobs = stages._plan_one
    monkeypatch.setattr(
        stages,
        "_plan_one",
        lambda record, *args: planned_by_jobs.append(record.sku) or by_jobs(record, *args),
    )
    third = run_catalog(str(csv_path), str(profile), str(out))
    assert planned_by_jobs == []
    assert third.counts == second.counts and third.counts["skipped"] == 4
    assert [p.to_dict() for p in third.products] == [p.to_dict() for p in second.products]

    def manifest(run_id: str) -> list[dict[str, str]]:
        with open(out / "runs" / run_id / "manifest.csv", newline="") as handle:
            return [{**row, "run_id": ""} for row in csv.DictReader(handle)]

    assert manifest(third.run_id) == manifest(second.run_id)
    catalogue = json.loads((out / "catalogue.json").read_text())["entries"]
    assert [catalogue[row["sku"]]["run_id"] for row in rows] == [third.run_id] * 2
    assert all(len(catalogue[row["sku"]]["product"]["jobs"]) == 2 for row in rows)


def test_chunks_go_to_the_slot_whose_chunk_ended_at_most_one_per_slot_at_once() -> None:
    from prefect import task
    from prefect.task_runners import ThreadPoolTaskRunner

    from flows.produce import chunks_as_completed

    lock = threading.Lock()
    running: Counter[str] = Counter()
    most: Counter[str] = Counter()
    taken: list[tuple[str, int]] = []

    @task
    def chunk(part: list[int], slot: str) -> list[int]:
        with lock:
            running[slot] += 1
            most[slot] = max(most[slot], running[slot])
        time.sleep(0.05 if slot == "fast" else 0.6)
        with lock:
            running[slot] -= 1
        return part

    parts = [[index] for index in range(12)]
    with ThreadPoolTaskRunner(max_workers=8) as runner:

        def submit(part: list[int], slot: str | None) -> object:
            taken.append((str(slot), part[0]))
            return runner.submit(chunk, {"part": part, "slot": str(slot)})

        done = [part for _future, part in chunks_as_completed(submit, parts, ["fast", "slow"])]  # type: ignore[arg-type]
    assert sorted(done) == parts  # every chunk once
    assert [index for _slot, index in taken] == list(range(12))  # submitted in chunk order
    assert most == Counter({"fast": 1, "slow": 1})  # never two at once in one slot
    per_slot = Counter(slot for slot, _index in taken)
    assert per_slot["fast"] >= 2 * per_slot["slow"], taken  # the faster slot took more chunks
