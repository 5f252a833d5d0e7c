"""The flow with its outputs behind an fsspec URL (memory://, as an object store would be): images, sidecars,
manifest, index and run report land there; a rerun skips; a URL without a state store is refused."""

from __future__ import annotations

import csv
import io
import json
import uuid
from collections.abc import Iterator
from pathlib import Path

import fsspec
import pytest

from flows import caches
from flows.produce import run_catalog
from pipelines.production.fsspec_storage import FsspecStorage
from pipelines.production.validate import RunConfigError
from tests.flows.helpers import small_profile, write_csv, write_flatlays

PRODUCTS = 3
JOBS = PRODUCTS * 4


@pytest.fixture
def memory_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    caches._renderer.cache_clear()
    monkeypatch.setenv("ONMODEL_LOCK_DIR", str(tmp_path / "locks"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # the photo cache of an object-store folder
    name = f"onmodel-flow-{uuid.uuid4().hex[:8]}"
    yield f"memory://{name}/out"
    memory = fsspec.filesystem("memory")
    if memory.exists(f"/{name}"):
        memory.rm(f"/{name}", recursive=True)


def test_a_run_into_memory_storage_writes_every_output_there(
    tmp_path: Path, memory_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ONMODEL_STATE_URL", f"sqlite:///{tmp_path / 'state.sqlite'}")
    csv_path = write_csv(
        tmp_path / "in" / "products.csv", write_flatlays(tmp_path / "in", PRODUCTS, size=256)
    )
    profile = small_profile(tmp_path, run={"max_workers": 2})
    report = run_catalog(str(csv_path), str(profile), memory_url)
    assert report.counts["produced"] == JOBS and report.counts["failed"] == 0
    storage = FsspecStorage(memory_url)
    with io.StringIO(storage.read_bytes("manifest.csv").decode()) as text:
        jobs = [row for row in csv.DictReader(text) if row["job_id"]]
    assert sorted(row["state"] for row in jobs) == ["produced"] * JOBS
    for row in jobs:
        master = f"images/master/{row['sku']}/{row['job_id']}.png"
        assert storage.read_bytes(master).startswith(b"\x89PNG")
        assert json.loads(storage.read_bytes(master.removesuffix(".png") + ".json"))["seed"] == int(
            row["seed"]
        )
    summary = json.loads(storage.read_bytes(f"runs/{report.run_id}/summary.json"))
    assert summary["run_id"] == report.run_id and summary["out_dir"] == memory_url
    assert b"<html" in storage.read_bytes("index.html").lower()
    assert storage.exists("catalogue.json") and storage.exists(f"sheets/{jobs[0]['sku']}.jpg")
    assert not (tmp_path / "memory:").exists() and not list(Path.cwd().glob("memory:*"))  # nothing local
    # The same catalogue again: every job found done in the shared state store and the storage.
    again = run_catalog(str(csv_path), str(profile), memory_url)
    assert again.counts["produced"] == 0 and again.counts["skipped"] == JOBS


def test_an_object_store_output_without_a_state_store_url_is_refused(
    tmp_path: Path, memory_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ONMODEL_STATE_URL", raising=False)
    csv_path = write_csv(tmp_path / "in" / "products.csv", write_flatlays(tmp_path / "in", 1, size=256))
    with pytest.raises(RunConfigError, match="set ONMODEL_STATE_URL to a PostgreSQL database"):
        run_catalog(str(csv_path), str(small_profile(tmp_path)), memory_url)
