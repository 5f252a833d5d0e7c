"""Two device pools of two runs at once over overlapping products, one state store: every job renders once.

Real stages, storage and SQLite store; fake CPU devices count each device call (pool_helpers).
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from pipelines.errors import RenderError
from pipelines.production.pool import ChunkResult, DevicePool
from pipelines.production.stages import Resources, RunContext
from pipelines.renderers.base import RenderJob
from tests.pipelines.production.pool_helpers import FakeDevice, PoolModels, pool_setup
from tests.pipelines.production.test_pool import JOBS_PER_PRODUCT, settings


def _run_pools(
    runs: Sequence[tuple[RunContext, Resources, list, str]], tmp_path: Path, start_gap_s: float = 0.0
) -> dict[str, ChunkResult]:
    """Each (ctx, resources, records, device) as its own pool in its own thread, started together."""
    results: dict[str, ChunkResult] = {}
    errors: list[BaseException] = []

    def run(ctx: RunContext, res: Resources, records: list, device: str) -> None:
        try:
            pool_settings = settings(tmp_path, [device], claim_poll_s=0.05)
            with DevicePool(ctx, res, pool_settings) as pool:
                results[ctx.run_id] = pool.run_chunk(records)
        except BaseException as error:
            errors.append(error)

    threads = [threading.Thread(target=run, args=args) for args in runs]
    for thread in threads:
        thread.start()
        time.sleep(start_gap_s)
    for thread in threads:
        thread.join(120)
    assert errors == []
    return results


def _jobs(result: ChunkResult) -> dict[str, tuple[str, str]]:
    return {job.job_id: (job.state, job.reason) for product in result.products for job in product.jobs}


def test_two_runs_over_overlapping_products_render_each_job_once(tmp_path: Path) -> None:
    nightly_models, upload_models = PoolModels(hold_s=0.05), PoolModels(hold_s=0.05)
    ctx, res, records = pool_setup(tmp_path, 8, nightly_models)
    nightly = (ctx, res, records, "cpu:0")  # the whole catalogue
    upload_ctx = replace(ctx, run_id="r2")
    upload_res = replace(res, models=upload_models)
    upload = (upload_ctx, upload_res, records[2:6], "cpu:1")  # four of its products, uploaded again
    results = _run_pools([nightly, upload], tmp_path)

    # 1. Every job went through a device exactly once, across both runs.
    rendered = nightly_models.rendered_jobs() + upload_models.rendered_jobs()
    assert len(rendered) == 8 * JOBS_PER_PRODUCT and set(rendered.values()) == {1}
    assert upload_models.rendered_jobs(), "the runs did not overlap: the upload rendered nothing"
    # 2. Each run's outcomes cover all of its jobs: produced here, or reused from the other run's render.
    night, day = _jobs(results["r1"]), _jobs(results["r2"])
    assert len(night) == 8 * JOBS_PER_PRODUCT and len(day) == 4 * JOBS_PER_PRODUCT
    for mine, other_run, models in ((night, "r2", nightly_models), (day, "r1", upload_models)):
        for job_id, (state, reason) in mine.items():
            if job_id in models.rendered_jobs():
                assert state == "produced"
            else:
                assert state == "skipped", (job_id, state, reason)
                assert reason == f"rendered by the concurrent run {other_run} with this image and config"
    # 3. The store: every job produced once, by the run that rendered it; no claim left behind.
    states = res.store.get_many(list(night))
    assert {state.status for state in states.values()} == {"produced"}
    for job_id, state in states.items():
        assert state.attempts == 1
        assert state.last_run_id == ("r1" if job_id in nightly_models.rendered_jobs() else "r2")
        assert all(res.storage.exists(key) for key in state.outputs)
    assert res.store.claims_of("r1") == set() and res.store.claims_of("r2") == set()


def test_a_job_the_other_run_fails_is_rendered_by_the_run_that_waited(tmp_path: Path) -> None:
    first_call = threading.Event()

    def fail_slowly(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        first_call.set()
        time.sleep(0.5)  # the second run claims meanwhile, finds these jobs held, and waits
        raise RenderError("the first run's device cannot render these")

    failing, working = PoolModels({"cpu:0": fail_slowly}), PoolModels()
    ctx, res, records = pool_setup(tmp_path, 1, failing)
    results: dict[str, ChunkResult] = {}

    def run(ctx: RunContext, res: Resources, device: str) -> None:
        # One batch of the product's four jobs: the first run claims them all at once.
        pool_settings = settings(tmp_path, [device], batch_size=JOBS_PER_PRODUCT, claim_poll_s=0.05)
        with DevicePool(ctx, res, pool_settings) as pool:
            results[ctx.run_id] = pool.run_chunk(records)

    first = threading.Thread(target=run, args=(ctx, res, "cpu:0"))
    first.start()
    assert first_call.wait(30)
    second = threading.Thread(
        target=run, args=(replace(ctx, run_id="r2"), replace(res, models=working), "cpu:1")
    )
    second.start()
    first.join(60)
    second.join(60)
    assert Counter(state for state, _ in _jobs(results["r1"]).values()) == Counter(
        {"failed": JOBS_PER_PRODUCT}
    )
    assert Counter(state for state, _ in _jobs(results["r2"]).values()) == Counter(
        {"produced": JOBS_PER_PRODUCT}
    )
    # The second run rendered them only after the first run's claims ended (it waited, then took over).
    assert set(working.rendered_jobs().values()) == {1} and len(working.rendered_jobs()) == JOBS_PER_PRODUCT
    states = res.store.get_many(list(_jobs(results["r2"])))
    assert {(state.status, state.last_run_id, state.attempts) for state in states.values()} == {
        ("produced", "r2", 2)
    }
