"""The product pipeline's stages without Prefect: real storage, a real SQLite job store, the draft renderer."""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from catalog import SQLiteJobStore, read_catalog
from catalog.schema import ProductRecord
from pipelines.errors import DeviceBusyError, RenderError
from pipelines.image_io import load_image_bytes
from pipelines.poses import load_pose_library
from pipelines.presets import load_presets
from pipelines.production import stages
from pipelines.production.layout import LocalStorage
from pipelines.production.profile import load_profile
from pipelines.production.stages import BatchItem, Resources, RunContext
from pipelines.renderers.base import RenderedImage, RenderJob
from tests.flows.helpers import small_profile, write_csv, write_flatlays
from tests.pipelines.production.pool_helpers import LocalModels


@pytest.fixture()
def setup(tmp_path: Path) -> tuple[RunContext, Resources, list[ProductRecord]]:
    rows = write_flatlays(tmp_path / "in", 2)
    rows.append({"sku": "GONE", "image": "missing.png", "category": "t-shirt"})
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    (tmp_path / "in" / "missing.png").write_bytes(b"%PDF-1.4 not a photo")
    profile = load_profile(small_profile(tmp_path))
    ctx = RunContext(run_id="r1", profile=profile, fingerprint="fp", csv_dir=str(tmp_path / "in"))
    storage = LocalStorage(tmp_path / "out")
    res = Resources(
        storage=storage,
        store=SQLiteJobStore(storage.state_db),
        models=LocalModels(),
        poses=load_pose_library(),
        presets=load_presets(),
    )
    records = read_catalog(csv_path, profile.image_policy(str(tmp_path / "in"))).records
    return ctx, res, records


def _produce(records: list[ProductRecord], ctx: RunContext, res: Resources) -> list[stages.PreparedProduct]:
    prepared = [stages.prepare_product(r, ctx, res) for r in records]
    for product in prepared:
        if product.todo:
            stages.render_batch([BatchItem(plan, product) for plan in product.todo], ctx, res)
    return prepared


def test_prepare_rejects_bad_photos_with_the_column_and_saves_good_cutouts(setup: tuple) -> None:
    ctx, res, records = setup
    good, _other, bad = [stages.prepare_product(r, ctx, res) for r in records]
    assert bad.rejected is not None and bad.rejected.column == "image" and bad.rejected.product_level
    assert "PDF" in bad.rejected.reason and not bad.todo
    assert good.rejected is None and len(good.todo) == 4 and good.image_hash
    cutout = load_image_bytes(res.storage.read_bytes(good.cutout))
    assert cutout.shape[2] == 4 and cutout[..., 3].any()
    assert res.storage.exists(good.source)


def test_produced_jobs_are_skipped_without_decoding_and_keep_seed_and_flags(
    setup: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    ctx, res, records = setup
    [first] = _produce(records[:1], ctx, res)
    states = res.store.get_many([p.job_id for p in first.todo])
    assert {s.status for s in states.values()} == {"produced"}

    def no_decode(*args: object, **kwargs: object) -> None:
        raise AssertionError("a product with nothing to do must not be decoded or segmented")

    monkeypatch.setattr(stages, "prepare_cutout", no_decode)
    again = stages.prepare_product(records[0], ctx, res)
    assert again.todo == [] and len(again.skipped) == 4
    assert again.flags == first.flags
    for job in again.skipped:
        assert job.seed == states[job.job_id].seed and job.flags == list(states[job.job_id].flags)
        assert res.storage.exists(job.output) and res.storage.exists(job.sidecar)


def test_deleted_output_changed_config_or_force_render_again(setup: tuple) -> None:
    ctx, res, records = setup
    [first] = _produce(records[:1], ctx, res)
    state = res.store.get(first.todo[0].job_id)
    assert state is not None
    res.storage.local_path(state.outputs[0]).unlink()
    assert [p.job_id for p in stages.prepare_product(records[0], ctx, res).todo] == [first.todo[0].job_id]
    changed = RunContext(run_id="r2", profile=ctx.profile, fingerprint="other", csv_dir=ctx.csv_dir)
    assert len(stages.prepare_product(records[0], changed, res).todo) == 4
    forced = RunContext(run_id="r3", profile=ctx.profile, fingerprint="fp", force=True, csv_dir=ctx.csv_dir)
    assert len(stages.prepare_product(records[0], forced, res).todo) == 4


def test_placement_is_built_once_per_pose(setup: tuple, monkeypatch: pytest.MonkeyPatch) -> None:
    ctx, res, records = setup
    prepared = stages.prepare_product(records[0], ctx, res)
    calls: list[str] = []
    original = stages.build_render_jobs.__globals__["build_render_job"]

    def counting(**kwargs: Any) -> Any:
        calls.append(kwargs["pose"].name)
        return original(**kwargs)

    monkeypatch.setitem(stages.build_render_jobs.__globals__, "build_render_job", counting)
    placed, failed = stages.place_jobs([BatchItem(p, prepared) for p in prepared.todo], ctx, res)
    assert failed == [] and len(placed) == 4
    assert sorted(calls) == ["front", "three_quarter_left"]  # 2 poses x 2 variants: placed twice
    seeds = {p.job.job_id: p.job.seed for p in placed}
    assert seeds == {p.job_id: p.seed for p in prepared.todo}


class _Picky:
    """A renderer that refuses one SKU (a RenderError), or raises what it is told."""

    name = "picky"

    def __init__(self, bad_sku: str = "", error: BaseException | None = None) -> None:
        self.bad_sku, self.error, self.calls = bad_sku, error, []

    def describe(self) -> dict[str, Any]:
        return {"renderer": self.name}

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        self.calls.append(len(jobs))
        if self.error is not None:
            raise self.error
        if any(job.sku == self.bad_sku for job in jobs):
            raise RenderError(f"cannot render {self.bad_sku}")
        return [RenderedImage(job.job_id, np.zeros((*job.size[::-1], 3), np.uint8), job.seed) for job in jobs]


def _jobs(setup: tuple) -> list[RenderJob]:
    ctx, res, records = setup
    items = []
    for record in records[:2]:
        prepared = stages.prepare_product(record, ctx, res)
        items += [BatchItem(p, prepared) for p in prepared.todo[:2]]
    placed, _failed = stages.place_jobs(items, ctx, res)
    return [p.job for p in placed]


def test_render_on_device_isolates_the_job_that_breaks(setup: tuple) -> None:
    jobs = _jobs(setup)
    renderer = _Picky(bad_sku=jobs[-1].sku)
    rendered, failures = stages.render_on_device(renderer, threading.Lock(), jobs)
    assert renderer.calls == [4, 1, 1, 1, 1]
    assert set(rendered) == {j.job_id for j in jobs[:2]}
    assert set(failures) == {j.job_id for j in jobs[2:]}
    assert all("cannot render" in reason for reason in failures.values())


@pytest.mark.parametrize("error", [DeviceBusyError("cuda:0 is held"), KeyError("a bug")])
def test_render_on_device_raises_transient_faults_and_bugs(setup: tuple, error: BaseException) -> None:
    renderer = _Picky(error=error)
    with pytest.raises(type(error)):
        stages.render_on_device(renderer, threading.Lock(), _jobs(setup))
    assert renderer.calls == [4]  # no one-by-one pass: not the job's fault


def test_render_batch_writes_images_sidecars_and_state(setup: tuple) -> None:
    ctx, res, records = setup
    prepared = stages.prepare_product(records[0], ctx, res)
    outcomes = stages.render_batch([BatchItem(p, prepared) for p in prepared.todo], ctx, res)
    assert [o.state for o in outcomes] == ["produced"] * 4
    assert [o.job_id for o in outcomes] == [p.job_id for p in prepared.todo]
    for outcome in outcomes:
        assert outcome.output == f"images/master/{outcome.sku}/{outcome.job_id}.png"
        assert res.storage.exists(outcome.output) and res.storage.exists(outcome.sidecar)
        assert set(outcome.timings) == {"place_masks", "render", "write"}
        state = res.store.get(outcome.job_id)
        mask = f"masks/{outcome.sku}/{outcome.job_id}.png"
        assert state is not None and state.outputs == (outcome.output, outcome.sidecar, mask)
        # The placed garment's mask: canvas size, named in the sidecar, with the fit that placed it.
        sidecar = json.loads(res.storage.read_bytes(outcome.sidecar))
        assert sidecar["garment_mask"] == mask and sidecar["fit"]["method"] in ("panels", "rigid")
        pixels = load_image_bytes(res.storage.read_bytes(mask), name=mask)
        assert pixels.shape[:2] == (ctx.profile.canvas[1], ctx.profile.canvas[0])
        assert set(np.unique(pixels)) <= {0, 255} and pixels.max() == 255
