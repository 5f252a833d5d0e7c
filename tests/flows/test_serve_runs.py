"""Served runs against a real `prefect server` on 127.0.0.1: nightly runs render only what changed, and a
nightly and an upload run started together over overlapping products produce each job once.

Renders are counted from what runs leave behind: each run's manifest (produced / skipped per job), the job
records (attempts, the run of the latest attempt) and the image files (their sidecars name the run, their
mtimes show rewrites).
"""

from __future__ import annotations

import csv
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from catalog.state import RunState, open_job_store
from flows.serve import NIGHTLY
from pipelines.image_io import load_image_bytes
from tests.flows.helpers import write_flatlays
from tests.serving import UPLOAD_TOKEN, PrefectServer, ServedCatalogue, wait_until

NEVER = "0 3 29 2 1"  # 03:00 on 29 February when it is a Monday: no run fires during the tests
PHOTOS = 24
JOBS_PER_PRODUCT = 2  # the served profile: two poses, one variant


@pytest.fixture(scope="module")
def served_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCatalogue]:
    """Its own server and `onmodel serve` (the session's serve has an every-minute schedule that would fire)."""
    root = tmp_path_factory.mktemp("served-runs")
    server = PrefectServer(home=root / "server").start()
    served = ServedCatalogue(server, root / "served", cron=NEVER).prepare(photos=PHOTOS)
    try:
        yield served.start()
    finally:
        served.stop()
        server.stop()


def _catalogue(served: ServedCatalogue, name: str, indices: list[int]) -> Path:
    skus = [f"{name.upper()}-{index:02d}" for index in indices]
    return served.upload_csv(served.root / f"{name}.csv", skus, indices)


def _run_nightly(served: ServedCatalogue, catalogue: Path) -> RunState:
    """Trigger the served nightly-catalog deployment over this CSV, wait for it; its onmodel run record."""
    flow_run = served.wait_for_run(served.trigger(NIGHTLY, {"csv_path": str(catalogue)}), timeout_s=180)
    assert flow_run.state.is_completed(), served.log[-3000:]
    return _latest_run(served, "nightly", str(catalogue))


def _latest_run(served: ServedCatalogue, trigger: str, csv_path: str) -> RunState:
    with open_job_store(served.out / "state.sqlite") as store:
        runs = [run for run in store.list_runs() if run.trigger == trigger and run.csv.endswith(csv_path)]
    assert runs, f"no {trigger} run of {csv_path} recorded"
    return runs[-1]


def _manifest_jobs(served: ServedCatalogue, run_id: str) -> dict[str, dict[str, str]]:
    path = served.out / "runs" / run_id / "manifest.csv"
    return {row["job_id"]: row for row in csv.DictReader(path.open()) if row["kind"] == "job"}


def _masters(served: ServedCatalogue, skus: list[str]) -> dict[Path, int]:
    """Every master image of these products, with its mtime (a rewrite changes it)."""
    root = served.out / "images" / "master"
    return {path: path.stat().st_mtime_ns for sku in skus for path in (root / sku).glob("*.png")}


def test_a_second_nightly_renders_nothing_and_a_third_only_the_three_changed_rows(
    served_runs: ServedCatalogue, tmp_path: Path
) -> None:
    served = served_runs
    indices = list(range(10))
    catalogue = _catalogue(served, "night", indices)
    skus = [f"NIGHT-{index:02d}" for index in indices]
    # 1. The first nightly renders the catalogue.
    first = _run_nightly(served, catalogue)
    jobs = _manifest_jobs(served, first.run_id)
    assert len(jobs) == 10 * JOBS_PER_PRODUCT and {row["state"] for row in jobs.values()} == {"produced"}
    masters = _masters(served, skus)
    assert len(masters) == 10 * JOBS_PER_PRODUCT
    # 2. Unchanged: the second renders nothing, rewrites nothing, records no attempt.
    second = _run_nightly(served, catalogue)
    assert {row["state"] for row in _manifest_jobs(served, second.run_id).values()} == {"skipped"}
    assert second.counts["produced"] == 0 and second.counts["skipped"] == 10 * JOBS_PER_PRODUCT
    assert _masters(served, skus) == masters
    with open_job_store(served.out / "state.sqlite") as store:
        assert {state.attempts for state in store.get_many(list(jobs)).values()} == {1}
    # 3. Three photos replaced (new bytes at the same paths): exactly their products' jobs render.
    replacements = write_flatlays(tmp_path / "new", 3, seed=99)
    changed = [1, 4, 7]
    for index, row in zip(changed, replacements, strict=True):
        shutil.copyfile(tmp_path / "new" / row["image"], served.photos / f"g{index:02d}.png")
    third = _run_nightly(served, catalogue)
    states = {job_id: row["state"] for job_id, row in _manifest_jobs(served, third.run_id).items()}
    rendered = sorted(job_id for job_id, state in states.items() if state == "produced")
    assert rendered == sorted(job_id for job_id in jobs if jobs[job_id]["sku"] in {skus[i] for i in changed})
    assert len(rendered) == 3 * JOBS_PER_PRODUCT
    assert {state for job_id, state in states.items() if job_id not in rendered} == {"skipped"}
    now = _masters(served, skus)
    assert {path.parent.name for path in now if now[path] != masters[path]} == {skus[i] for i in changed}


def test_a_nightly_and_an_upload_started_together_produce_each_job_once(
    served_runs: ServedCatalogue,
) -> None:
    served = served_runs
    # The nightly lists products 10..23; the upload 14..19 (all in the nightly too), in reverse order, so the two
    # runs reach the shared products from both ends.
    catalogue = _catalogue(served, "both", list(range(10, PHOTOS)))
    upload = served.upload_csv(
        served.root / "both-upload.csv",
        [f"BOTH-{index:02d}" for index in reversed(range(14, 20))],
        list(reversed(range(14, 20))),
    )
    # 1. Both at once: the nightly triggered, the upload sent to the endpoint.
    nightly_id = served.trigger(NIGHTLY, {"csv_path": str(catalogue)})
    answer = httpx.post(
        served.upload_url,
        params={"name": "both-upload.csv"},
        content=upload.read_bytes(),
        headers={"Authorization": f"Bearer {UPLOAD_TOKEN}", "Content-Type": "text/csv"},
        trust_env=False,
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    upload_id = answer.json()["flow_run_id"]
    for flow_run_id in (nightly_id, upload_id):
        flow_run = served.wait_for_run(flow_run_id, timeout_s=240)
        assert flow_run.state.is_completed(), served.log[-3000:]
    nightly = _latest_run(served, "nightly", str(catalogue))
    uploaded = wait_until(
        lambda: next(
            (r for r in _store_runs(served) if r.trigger == "upload" and "both-upload" in r.csv), None
        ),
        10,
        "the upload's run record",
    )
    # The two runs overlapped in time (otherwise this would test nothing).
    assert nightly.finished_at and uploaded.finished_at
    assert uploaded.started_at < nightly.finished_at and nightly.started_at < uploaded.finished_at

    # 2. Each job produced by exactly one of the runs; the other run's manifest lists it as skipped.
    night_jobs, day_jobs = _manifest_jobs(served, nightly.run_id), _manifest_jobs(served, uploaded.run_id)
    assert len(night_jobs) == 14 * JOBS_PER_PRODUCT and len(day_jobs) == 6 * JOBS_PER_PRODUCT
    producers: dict[str, list[str]] = {}
    for run, jobs in ((nightly, night_jobs), (uploaded, day_jobs)):
        for job_id, row in jobs.items():
            assert row["state"] in {"produced", "skipped"}, row
            if row["state"] == "produced":
                producers.setdefault(job_id, []).append(run.run_id)
    assert sorted(producers) == sorted(night_jobs)
    assert {job_id: runs for job_id, runs in producers.items() if len(runs) > 1} == {}
    for job_id, row in day_jobs.items():
        if row["state"] == "skipped":
            assert producers[job_id] == [nightly.run_id], row
            assert row["reason"] in (
                f"rendered by the concurrent run {nightly.run_id} with this image and config",
                "already rendered with this image and config",  # the nightly had finished it before the plan
            )

    # 3. The state: one attempt per job, by the run that produced it; images whole and saying so; no claims.
    with open_job_store(served.out / "state.sqlite") as store:
        states = store.get_many(list(night_jobs))
        assert store.claims_of(nightly.run_id) == set() and store.claims_of(uploaded.run_id) == set()
    for job_id, state in states.items():
        assert (state.status, state.attempts, state.last_run_id) == ("produced", 1, producers[job_id][0])
        master = next(
            key for key in state.outputs if key.startswith("images/master/") and key.endswith(".png")
        )
        sidecar: dict[str, Any] = json.loads((served.out / master).with_suffix(".json").read_text())
        assert sidecar["run_id"] == producers[job_id][0]
        load_image_bytes((served.out / master).read_bytes(), name=master)  # decodes: not torn
    concurrent = [
        row for row in (*night_jobs.values(), *day_jobs.values()) if "concurrent run" in row["reason"]
    ]
    print(f"jobs reused from the other run's concurrent render: {len(concurrent)}")


def _store_runs(served: ServedCatalogue) -> list[RunState]:
    with open_job_store(served.out / "state.sqlite") as store:
        return store.list_runs()
