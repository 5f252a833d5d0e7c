"""Completed products: a product whose every job was found done is taken whole by the next plan, exactly as
the job-by-job plan would have decided, and not once anything it rests on moved."""

from __future__ import annotations

import hashlib
import http.server
import os
import pickle
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from catalog import SQLiteJobStore, read_catalog
from catalog.photo_cache import PhotoCache
from catalog.schema import ProductRecord
from pipelines.poses import load_pose_library
from pipelines.presets import load_presets
from pipelines.production import completed, stages
from pipelines.production.layout import LocalStorage, OutputLayout, read_json, write_json
from pipelines.production.outcomes import ProductOutcome, ReusedJobs, summary_counts
from pipelines.production.profile import load_profile
from pipelines.production.stages import BatchItem, PreparedProduct, Resources, RunContext
from tests.flows.helpers import small_profile, write_csv, write_flatlays
from tests.pipelines.production.pool_helpers import LocalModels

Setup = tuple[RunContext, Resources, list[ProductRecord], Path]


@pytest.fixture()
def setup(tmp_path: Path) -> Setup:
    """Two products rendered by a first run, their files aged as the night before."""
    rows = write_flatlays(tmp_path / "in", 2)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = load_profile(small_profile(tmp_path))
    ctx = RunContext(run_id="night-1", profile=profile, fingerprint="fp", csv_dir=str(tmp_path / "in"))
    storage = LocalStorage(tmp_path / "out")
    res = Resources(
        storage=storage,
        store=SQLiteJobStore(storage.state_db),
        models=LocalModels(),
        poses=load_pose_library(),
        presets=load_presets(),
    )
    records = read_catalog(csv_path, profile.image_policy(str(tmp_path / "in"))).records
    for product in [stages.prepare_product(r, ctx, res) for r in records]:
        stages.render_batch([BatchItem(plan, product) for plan in product.todo], ctx, res)
    _age(tmp_path / "out")
    _age(tmp_path / "in")  # the photos too: a photo changed a moment ago is not trusted by its stamp either
    return ctx, res, records, tmp_path


def _age(out: Path, seconds: float = 3600) -> None:
    """Every file and folder of the output as last written `seconds` ago (a night, not a moment, before)."""
    past = time.time() - seconds
    for folder, _, files in os.walk(out):
        for name in files:
            os.utime(Path(folder) / name, (past, past))
        os.utime(folder, (past, past))


def _plan(records: list[ProductRecord], ctx: RunContext, res: Resources) -> list[PreparedProduct]:
    return list(stages.plan_catalogue(records, ctx, res))


class Unstamped:
    """The local folder without stamps (as an object store): every plan goes job by job."""

    def __init__(self, inner: LocalStorage) -> None:
        self.inner = inner

    def __getattr__(self, name: str) -> Any:
        if name == "stamps":
            raise AttributeError(name)
        return getattr(self.inner, name)


def _by_jobs(records: list[ProductRecord], ctx: RunContext, res: Resources) -> list[PreparedProduct]:
    """What the job-by-job plan decides (no completed record read or written)."""
    return _plan(records, ctx, replace(res, storage=Unstamped(res.storage)))  # type: ignore[arg-type]


def _night(ctx: RunContext, number: int, **changes: Any) -> RunContext:
    return replace(ctx, run_id=f"night-{number}", **changes)


def test_a_completed_product_is_taken_whole_exactly_as_the_job_by_job_plan_decides(
    setup: Setup, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, res, records, _ = setup
    assert res.store.get_completed([r.sku for r in records]) == {}
    by_jobs = _by_jobs(records, _night(ctx, 2), res)  # the reference: every job decided from its row
    assert all(not p.todo and not p.needs_cutout and isinstance(p.skipped, list) for p in by_jobs)
    recording = _plan(records, _night(ctx, 2), res)  # finds every job done: records the products
    assert all(isinstance(p.skipped, ReusedJobs) for p in recording)  # from the record, compact
    assert [list(p.skipped) for p in recording] == [p.skipped for p in by_jobs]
    recorded = res.store.get_completed([r.sku for r in records])
    assert set(recorded) == {r.sku for r in records} and {r.run_id for r in recorded.values()} == {"night-2"}

    asked: list[list[str]] = []
    real_get_many = res.store.get_many
    monkeypatch.setattr(res.store, "get_many", lambda ids: asked.append(list(ids)) or real_get_many(ids))
    whole = _plan(records, _night(ctx, 3), res)
    assert asked == []  # no job row read, no listing: the record was enough
    for new, old in zip(whole, by_jobs, strict=True):
        assert isinstance(new.skipped, ReusedJobs)
        assert list(new.skipped) == old.skipped  # every field of every outcome, in plan order
        assert (new.image_hash, new.cutout, new.source, new.flags) == (
            old.image_hash,
            old.cutout,
            old.source,
            old.flags,
        )
        assert not new.todo and not new.needs_cutout and new.rejected is None
        for job in new.skipped:
            assert res.storage.exists(job.output) and res.storage.exists(job.sidecar)


def test_a_product_taken_whole_reports_like_one_planned_job_by_job(setup: Setup) -> None:
    """The book, the counts and the JSON of summary.json / catalogue.json see the same product."""
    from pipelines.production.book import RunBook

    ctx, res, records, _ = setup
    _plan(records, _night(ctx, 2), res)  # records the products
    outcomes: dict[str, list[ProductOutcome]] = {}
    for name, plan in (("by jobs", _by_jobs), ("whole", _plan)):
        book = RunBook(records, batch_size=3, default_poses=ctx.profile.default_poses)
        for prepared in plan(records, _night(ctx, 3), res):
            assert book.product_prepared(prepared) == []
        outcomes[name] = book.products()
    old, new = outcomes["by jobs"], outcomes["whole"]
    assert all(isinstance(p.jobs, ReusedJobs) for p in new) and all(isinstance(p.jobs, list) for p in old)
    assert [p.to_dict() for p in new] == [p.to_dict() for p in old]
    assert summary_counts(new, []) == summary_counts(old, []) and summary_counts(new, [])["skipped"] == 8
    assert [p.state for p in new] == ["skipped", "skipped"]
    restored = pickle.loads(pickle.dumps(new))  # travels to Dask workers and Prefect results
    assert restored == new and list(restored[0].jobs) == list(old[0].jobs)


def test_a_changed_photo_renders_again(setup: Setup) -> None:
    ctx, res, records, tmp_path = setup
    _plan(records, _night(ctx, 2), res)
    photo = tmp_path / "in" / records[0].image.raw
    photo.write_bytes(photo.read_bytes() + b"\0")  # a new file behind the same name
    first, second = _plan(records, _night(ctx, 3), res)
    assert len(first.todo) == 4 and isinstance(second.skipped, ReusedJobs)


def test_a_changed_config_or_force_renders_everything_again(setup: Setup) -> None:
    ctx, res, records, _ = setup
    _plan(records, _night(ctx, 2), res)
    assert [len(p.todo) for p in _plan(records, _night(ctx, 3, fingerprint="other"), res)] == [4, 4]
    assert [len(p.todo) for p in _plan(records, _night(ctx, 4, force=True), res)] == [4, 4]
    assert all(isinstance(p.skipped, ReusedJobs) for p in _plan(records, _night(ctx, 5), res))


def test_changed_render_fields_or_poses_plan_job_by_job(setup: Setup) -> None:
    ctx, res, records, _ = setup
    _plan(records, _night(ctx, 2), res)
    retitled = [replace(records[0], title="A new title"), records[1]]
    first, second = _plan(retitled, _night(ctx, 3), res)
    assert len(first.todo) == 4 and isinstance(second.skipped, ReusedJobs)
    one_pose = [replace(records[0], poses=("front",)), records[1]]
    first, second = _plan(one_pose, _night(ctx, 4), res)
    assert [j.pose for j in first.skipped] == ["front", "front"]  # the new plan, not the record's
    assert isinstance(second.skipped, ReusedJobs)


def test_a_deleted_output_renders_that_job_again(setup: Setup) -> None:
    ctx, res, records, _ = setup
    by_jobs = _plan(records, _night(ctx, 2), res)
    gone = by_jobs[0].skipped[1]
    res.storage.local_path(gone.sidecar).unlink()
    first, second = _plan(records, _night(ctx, 3), res)
    assert [plan.job_id for plan in first.todo] == [gone.job_id]
    assert isinstance(second.skipped, ReusedJobs)


def test_a_replaced_cutout_record_is_read_again(setup: Setup) -> None:
    ctx, res, records, _ = setup
    _plan(records, _night(ctx, 2), res)
    key = res.layout.cutout_record(records[0].sku)
    data = read_json(res.storage, key)
    write_json(res.storage, key, {**data, "flags": [*data["flags"], "checked_by_hand"]})
    first, _ = _plan(records, _night(ctx, 3), res)
    assert "checked_by_hand" in first.flags  # read again, not taken from the record


def test_review_decisions_since_the_record_are_honoured(setup: Setup) -> None:
    ctx, res, records, _ = setup
    by_jobs = _plan(records, _night(ctx, 2), res)
    rejected, approved = by_jobs[0].skipped[0], by_jobs[1].skipped[2]
    res.store.record_decision(
        rejected.job_id, "reject", reviewer="ana", reason="hands", image_key=rejected.render_id
    )
    res.store.record_decision(approved.job_id, "approve", reviewer="ana", image_key=approved.render_id)
    first, second = _plan(records, _night(ctx, 3), res)
    assert [plan.job_id for plan in first.todo] == [rejected.job_id]
    assert first.todo[0].seed != rejected.seed  # a rejected render gets a new seed
    assert second.skipped[2].reason.startswith("approved by a reviewer")
    assert res.store.get_completed([records[1].sku])[records[1].sku].run_id == "night-3"  # recorded again
    again = _plan(records[1:], _night(ctx, 4), res)[0]
    assert isinstance(again.skipped, ReusedJobs)
    assert list(again.skipped) == _by_jobs(records[1:], _night(ctx, 4), res)[0].skipped
    assert list(again.skipped)[2].reason.startswith("approved by a reviewer")


def test_a_job_written_by_another_run_is_planned_again(setup: Setup) -> None:
    ctx, res, records, _ = setup
    by_jobs = _plan(records, _night(ctx, 2), res)
    job = by_jobs[0].skipped[3]
    res.store.record_failed(
        job.job_id, sku=job.sku, image_hash="h", fingerprint="fp", reason="OOM", seed=job.seed
    )
    first, second = _plan(records, _night(ctx, 3), res)
    assert [plan.job_id for plan in first.todo] == [job.job_id]
    assert isinstance(second.skipped, ReusedJobs)


def test_a_preset_added_to_the_run_is_derived_then_taken_whole(setup: Setup) -> None:
    ctx, res, records, _ = setup
    _plan(records, _night(ctx, 2), res)
    with_amazon = _night(ctx, 3, profile=ctx.profile.with_overrides(preset=["master", "amazon"]))
    derived = _plan(records, with_amazon, res)
    assert all(isinstance(p.skipped, list) for p in derived)
    assert {tuple(job.derived) for p in derived for job in p.skipped} == {("amazon",)}
    assert res.store.get_completed([records[0].sku])[records[0].sku].run_id == "night-2"  # not re-recorded
    _age(res.storage.local_path("images"))  # the derived files of a moment ago, as the night before
    _plan(records, _night(ctx, 4, profile=with_amazon.profile), res)  # records them
    by_jobs = _by_jobs(records, _night(ctx, 5, profile=with_amazon.profile), res)
    whole = _plan(records, _night(ctx, 5, profile=with_amazon.profile), res)
    assert all(isinstance(p.skipped, ReusedJobs) for p in whole)
    assert [list(p.skipped) for p in whole] == [p.skipped for p in by_jobs]
    assert all(set(job.outputs) == {"master", "amazon"} for p in whole for job in p.skipped)
    assert {job.output.split("/")[1] for p in whole for job in p.skipped} == {"master"}
    # Back to the master alone: amazon stays current (its files are never left older than their master).
    back = _plan(records, _night(ctx, 6), res)
    assert all(isinstance(p.skipped, ReusedJobs) for p in back)
    assert [list(p.skipped) for p in back] == [p.skipped for p in _by_jobs(records, _night(ctx, 6), res)]
    assert {job.output.split("/")[1] for p in back for job in p.skipped} == {"master"}


def test_a_folder_changed_a_moment_ago_is_not_recorded(setup: Setup) -> None:
    """Within the filesystem's timestamp granularity a second change could leave a stamp as it was (git's
    "racily clean" entries): such a product is planned job by job until its folders settle."""
    ctx, res, records, _ = setup
    key = res.layout.cutout(records[0].sku)
    res.storage.write_bytes(key, res.storage.read_bytes(key))  # rewritten just now
    _plan(records, _night(ctx, 2), res)
    assert set(res.store.get_completed([r.sku for r in records])) == {records[1].sku}


def test_a_touched_photo_is_hashed_again_and_a_photo_changed_a_moment_ago_is_not_recorded(
    setup: Setup,
) -> None:
    ctx, res, records, tmp_path = setup
    _plan(records, _night(ctx, 2), res)
    photo = tmp_path / "in" / records[0].image.raw
    photo.write_bytes(photo.read_bytes())  # the same bytes, written again just now: a new stamp
    first, second = _plan(records, _night(ctx, 3), res)
    assert not first.todo  # the same bytes: nothing to render
    kept = res.store.get_completed([r.sku for r in records])
    assert kept[records[0].sku].run_id == "night-2"  # not recorded again while the photo is that fresh
    assert kept[records[1].sku].run_id == "night-2"
    _age(tmp_path / "in")
    _plan(records, _night(ctx, 4), res)  # settled: recorded with the photo's new stamp
    assert res.store.get_completed([records[0].sku])[records[0].sku].run_id == "night-4"
    again = _plan(records, _night(ctx, 5), res)
    assert list(again[0].skipped) == _by_jobs(records, _night(ctx, 5), res)[0].skipped
    assert res.store.get_completed([records[0].sku])[records[0].sku].run_id == "night-4"


def test_storage_that_cannot_stamp_never_records(setup: Setup) -> None:
    ctx, res, records, _ = setup
    for night in (2, 3):
        planned = _by_jobs(records, _night(ctx, night), res)
        assert all(isinstance(p.skipped, list) and not p.todo for p in planned)
    assert res.store.get_completed([r.sku for r in records]) == {}


def test_stamp_keys_are_the_output_folders_and_cutout_files() -> None:
    from pipelines.production.layout import OutputLayout

    keys = completed.stamp_keys("SKU-1", ["master", "amazon"], OutputLayout())
    assert keys == ["images/master/SKU-1", "images/amazon/SKU-1", "cutouts/SKU-1.png", "cutouts/SKU-1.json"]


def test_the_plan_key_tells_every_field_pose_and_variant_count_apart() -> None:
    fields = {"title": "Shirt", "color": "navy", "prompt": ""}
    base = completed.ProductFacts("S", "h", "fp", fields, ("front", "back"), 2)
    keys = {
        completed.plan_key(base),
        completed.plan_key(base._replace(render_fields={**fields, "color": "red"})),
        completed.plan_key(base._replace(render_fields={**fields, "prompt": "navy"})),
        completed.plan_key(base._replace(poses=("back", "front"))),
        completed.plan_key(base._replace(variants=1)),
        completed.plan_key(base._replace(render_fields={"title": "Shirt", "colour": "navy", "prompt": ""})),
    }
    assert len(keys) == 6
    # A cell holding the separator cannot make two different products read alike.
    tricky = base._replace(render_fields={**fields, "title": "Shirt\x1fnavy", "color": ""})
    assert completed.plan_key(tricky) != completed.plan_key(base)
    assert completed.plan_key(tricky) == completed.plan_key(tricky._replace(sku="other"))  # sku is not in it


class _PhotoServer(http.server.BaseHTTPRequestHandler):
    """Serves photos with an ETag and answers 304 to a matching If-None-Match (as a shop's CDN does)."""

    photos: dict[str, bytes]

    def log_message(self, *args: object) -> None:
        pass

    def do_GET(self) -> None:
        body = self.photos[self.path]
        etag = f'"{hashlib.sha256(body).hexdigest()[:16]}"'
        if self.headers.get("If-None-Match") == etag:
            self.send_response(304)
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("ETag", etag)
        self.end_headers()
        self.wfile.write(body)


def test_products_with_remote_photos_are_taken_whole_while_the_server_says_not_modified(
    tmp_path: Path,
) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    photos = {f"/{row['image']}": (tmp_path / "in" / row["image"]).read_bytes() for row in rows}
    handler = type("Handler", (_PhotoServer,), {"photos": photos})
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}"
        linked = [{**row, "image": f"{base}/{row['image']}"} for row in rows]
        csv_path = write_csv(tmp_path / "in" / "products.csv", linked)
        profile = load_profile(small_profile(tmp_path, images={"allowed_hosts": ["127.0.0.1"]}))
        ctx = RunContext(run_id="night-1", profile=profile, fingerprint="fp", csv_dir=str(tmp_path / "in"))
        storage = LocalStorage(tmp_path / "out")
        res = Resources(
            storage=storage, store=SQLiteJobStore(storage.state_db), models=LocalModels(),
            poses=load_pose_library(), presets=load_presets(),
            photos=PhotoCache(storage.local_path(OutputLayout().photo_cache)),
        )  # fmt: skip
        records = read_catalog(csv_path, profile.image_policy(str(tmp_path / "in"))).records
        assert all(record.image.url for record in records)
        for product in [stages.prepare_product(r, ctx, res) for r in records]:
            stages.render_batch([BatchItem(plan, product) for plan in product.todo], ctx, res)
        _age(tmp_path / "out")
        _plan(records, _night(ctx, 2), res)  # records them
        whole = _plan(records, _night(ctx, 3), res)
        assert all(isinstance(p.skipped, ReusedJobs) for p in whole)
        assert [list(p.skipped) for p in whole] == [p.skipped for p in _by_jobs(records, _night(ctx, 3), res)]
        kept = res.store.get_completed([r.sku for r in records])
        assert {record.run_id for record in kept.values()} == {"night-2"}  # taken whole, not recorded again
        photos[f"/{rows[0]['image']}"] += b"\0"  # the shop replaced the first photo
        first, second = _plan(records, _night(ctx, 4), res)
        assert len(first.todo) == 4 and isinstance(second.skipped, ReusedJobs)
    finally:
        httpd.shutdown()
        httpd.server_close()
