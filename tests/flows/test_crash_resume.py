"""Crash loop: `onmodel run` killed with SIGKILL at random moments, then run again, ends with the catalogue a clean
run makes: every job once, no half-written or extra files, the same pixels, a manifest that covers every row."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
from prefect.settings import PREFECT_API_URL

from catalog import SQLiteJobStore
from pipelines.image_io import load_image_bytes
from pipelines.production.layout import STATE_DB_NAME, LocalStorage
from tests.flows.helpers import small_profile, write_csv, write_flatlays

ROOT = Path(__file__).resolve().parents[2]
PRODUCTS = 12
JOBS = PRODUCTS * 4
KILLS = 10
# What only says which run wrote it (run folders, the run-level records); everything else must match.
RUN_RECORDS = {"catalogue.json", "manifest.csv", "rejects.csv", "index.html"}


def onmodel_run(csv_path: Path, profile: Path, out: Path, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-m", "flows.cli", "run", str(csv_path), "--config", str(profile), "--out", str(out),
         "--no-progress", "--devices", "cpu:0,cpu:1"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, stdin=subprocess.DEVNULL,
    )  # fmt: skip


def catalogue_files(out: Path) -> dict[str, Path]:
    """Every file of the catalogue itself (images, sidecars, cutouts, sources, sheets), by relative path."""
    files = {}
    for path in out.rglob("*"):
        relative = path.relative_to(out)
        if (
            path.is_dir()
            or relative.parts[0] in {"runs", ".locks", ".cache"}  # run records, locks, the photo cache
            or relative.name.startswith(STATE_DB_NAME)
        ):
            continue
        if relative.as_posix() in RUN_RECORDS:
            continue
        files[relative.as_posix()] = path
    return files


def count(folder: Path, pattern: str) -> int:
    return sum(1 for _ in folder.rglob(pattern)) if folder.is_dir() else 0


def same_content(clean: Path, resumed: Path) -> bool:
    """Pixels equal for images; metadata equal but for the run id; anything else byte for byte."""
    if clean.suffix in {".png", ".jpg"}:
        return np.array_equal(
            load_image_bytes(clean.read_bytes(), name=str(clean)),
            load_image_bytes(resumed.read_bytes(), name=str(resumed)),
        )
    if clean.suffix == ".json":
        first, second = json.loads(clean.read_text()), json.loads(resumed.read_text())
        for record in (first, second):
            record.pop("run_id", None)
        return bool(first == second)
    return clean.read_bytes() == resumed.read_bytes()


def test_killed_at_random_moments_then_rerun_the_catalogue_equals_a_clean_run(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", PRODUCTS, size=256)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, run={"max_workers": 2, "chunk_size": 3, "retry_delay_s": 0})
    api_url = PREFECT_API_URL.value()  # the test session's Prefect server on 127.0.0.1
    env = {**os.environ, "PREFECT_API_URL": api_url, "ONMODEL_LOCK_DIR": str(tmp_path / "locks")}

    # 1. A clean run: the reference catalogue, and how long a whole run takes.
    started = time.perf_counter()
    clean = onmodel_run(csv_path, profile, tmp_path / "clean", env)
    output, _ = clean.communicate(timeout=300)
    whole_run_s = time.perf_counter() - started
    assert clean.returncode == 0, output

    # 2. Kill -9 at random moments, 10 times: during start-up, while products are being prepared (cutouts
    # appearing) and while jobs are rendered and written (images appearing), other writes in flight.
    chance = random.Random(8)
    resumed = tmp_path / "resumed"
    kills: list[str] = []
    attempts = 0
    while len(kills) < KILLS and attempts < 3 * KILLS:
        attempts += 1
        moment = chance.choice(["start-up", "preparation", "rendering", "rendering"])
        folder, pattern = {"preparation": ("cutouts", "*.png"), "rendering": ("images/master", "*.png")}.get(
            moment, ("", "")
        )
        target = count(resumed / folder, pattern) + chance.randint(1, 3) if folder else 0
        deadline = time.perf_counter() + (chance.uniform(0.1, 0.6) * whole_run_s if not folder else 120)
        run = onmodel_run(csv_path, profile, resumed, env)
        while run.poll() is None and time.perf_counter() < deadline:
            if folder and count(resumed / folder, pattern) >= target:
                break
            time.sleep(0.005)
        if run.poll() is None:
            run.kill()  # SIGKILL: no cleanup of any kind in the run
            kills.append(f"{moment}: {count(resumed / 'images' / 'master', '*.png')} images")
        run.communicate(timeout=60)
    assert len(kills) == KILLS, kills
    # The kills cut the catalogue off part way, several times (not only after it was already complete).
    assert sum(not kill.endswith(f" {JOBS} images") for kill in kills) >= KILLS // 2, kills

    # 3. The same command again finishes the catalogue.
    final = onmodel_run(csv_path, profile, resumed, env)
    output, _ = final.communicate(timeout=300)
    assert final.returncode == 0, output
    assert "failed 0" in output

    # Nothing half-written anywhere (temporaries of the killed runs removed), nothing extra, nothing missing.
    assert not [p for p in resumed.rglob("*.tmp")], "temporaries of killed runs left behind"
    clean_files, resumed_files = catalogue_files(tmp_path / "clean"), catalogue_files(resumed)
    assert sorted(resumed_files) == sorted(clean_files)
    assert (
        len([name for name in clean_files if name.startswith("images/master/")]) == 2 * JOBS
    )  # image + sidecar
    different = [name for name in clean_files if not same_content(clean_files[name], resumed_files[name])]
    assert different == []

    # Every job recorded produced once, with its outputs in place.
    states = SQLiteJobStore(LocalStorage(resumed).state_db).all_rows()
    assert len(states) == JOBS and {s.status for s in states} == {"produced"}
    assert all((resumed / key).is_file() for s in states for key in s.outputs)

    # The finishing run's own manifest covers every row, also the jobs produced before the crashes (skipped).
    final_run = max(
        (resumed / "runs").glob("*/summary.json"), key=lambda p: p.parent.name
    )  # ids sort by time
    manifest = list(csv.DictReader((final_run.parent / "manifest.csv").open()))
    products = [row for row in manifest if row["kind"] == "product"]
    jobs = [row for row in manifest if row["kind"] == "job"]
    assert sorted(row["sku"] for row in products) == sorted(row["sku"] for row in rows)
    assert len(jobs) == len({row["job_id"] for row in jobs}) == JOBS
    assert {row["state"] for row in jobs} <= {"produced", "skipped"}
    top = list(csv.DictReader((resumed / "manifest.csv").open()))
    assert len([row for row in top if row["kind"] == "job"]) == JOBS
