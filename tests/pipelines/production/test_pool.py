"""The device pool on fake CPU devices: real stages, storage and job store; devices that fail, hang and run out
of memory; no Prefect."""

from __future__ import annotations

import random
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import pytest

from pipelines.errors import DeviceLostError, DeviceOutOfMemoryError, RenderError
from pipelines.production import stages
from pipelines.production.device_locks import DeviceClaim
from pipelines.production.pool import ChunkResult, DevicePool, PoolSettings, pool_settings
from pipelines.production.profile import ProfileError, load_profile
from pipelines.production.stages import Resources, RunContext
from pipelines.renderers.base import RenderJob
from tests.flows.helpers import small_profile
from tests.pipelines.production.pool_helpers import FakeDevice, PoolModels, pool_setup

JOBS_PER_PRODUCT = 4  # small_profile: 2 poses x 2 variants


def settings(tmp_path: Path, devices: Sequence[str], **overrides: object) -> PoolSettings:
    values: dict[str, object] = {
        "devices": tuple(devices),
        "batch_size": 3,
        "cpu_workers": 2,
        "retries": 2,
        "retry_delay_s": 0.001,
        "batch_timeout_s": 60.0,
        "device_failures": 3,
        "lock_dir": str(tmp_path / "locks"),
    }
    values.update(overrides)
    return PoolSettings(**values)  # type: ignore[arg-type]


def run_pool(ctx: RunContext, res: Resources, records: list, pool_settings: PoolSettings) -> ChunkResult:
    with DevicePool(ctx, res, pool_settings) as pool:
        return pool.run_chunk(records)


def job_states(result: ChunkResult) -> Counter[str]:
    return Counter(job.state for product in result.products for job in product.jobs)


def assert_every_job_produced_once(result: ChunkResult, res: Resources, products: int) -> None:
    jobs = [job for product in result.products for job in product.jobs]
    assert len(jobs) == products * JOBS_PER_PRODUCT
    assert len({job.job_id for job in jobs}) == len(jobs)
    assert {job.state for job in jobs} == {"produced"}
    rows = res.store.get_many([job.job_id for job in jobs])
    assert {state.status for state in rows.values()} == {"produced"} and len(rows) == len(jobs)
    for job in jobs:
        assert res.storage.exists(job.output) and res.storage.exists(job.sidecar)
    for product in result.products:
        assert product.state == "produced" and res.storage.exists(product.sheet)


def test_every_job_is_produced_once_with_one_batch_per_device_and_one_load_per_device(tmp_path: Path) -> None:
    models = PoolModels(hold_s=0.02)  # each call holds its device a moment, so overlaps would show
    ctx, res, records = pool_setup(tmp_path, 6, models)
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0", "cpu:1", "cpu:2"]))
    assert_every_job_produced_once(result, res, 6)
    assert models.loads == Counter({"cpu:0": 1, "cpu:1": 1, "cpu:2": 1})
    assert all(device.max_active == 1 for device in models.devices.values())
    # Each job went through a device exactly once; 24 jobs in full batches of 3.
    assert set(models.rendered_jobs().values()) == {1}
    assert sorted(len(call) for d in models.devices.values() for call in d.calls) == [3] * 8
    usage = {u.device: u for u in result.devices}
    assert sum(u.batches for u in usage.values()) == 8 and sum(u.jobs for u in usage.values()) == 24
    assert all(u.state == "active" and u.busy_s > 0 and 0 < u.utilisation <= 1 for u in usage.values())
    assert [p.sku for p in result.products] == [r.sku for r in records]  # CSV order, whatever the batches


def test_a_partial_batch_goes_out_once_nothing_more_can_fill_it(tmp_path: Path) -> None:
    models = PoolModels()
    ctx, res, records = pool_setup(tmp_path, 2, models)  # 8 jobs: batches of 3 + 3 + 2
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0"]))
    assert_every_job_produced_once(result, res, 2)
    assert sorted(len(call) for call in models.devices["cpu:0"].calls) == [2, 3, 3]


def test_a_partial_batch_waits_while_the_device_has_work_so_a_later_chunk_fills_it(tmp_path: Path) -> None:
    # A Dask worker's next chunk comes only once one of its chunks ends: a partial batch sent at once would cost
    # its device a whole batch's time for 2 jobs.
    models = PoolModels(hold_s=1.0)
    ctx, res, records = pool_setup(tmp_path, 3, models)
    results: dict[str, ChunkResult] = {}
    with DevicePool(ctx, res, settings(tmp_path, ["cpu:0"])) as pool:
        first = threading.Thread(target=lambda: results.__setitem__("first", pool.run_chunk(records[:2])))
        first.start()  # 8 jobs: 3 + 3 + a partial 2, while the device holds each batch 1 s
        deadline = time.monotonic() + 60
        while not models.devices.get("cpu:0") or not models.devices["cpu:0"].calls:
            assert time.monotonic() < deadline, "the first batch never reached the device"
            time.sleep(0.01)
        time.sleep(0.3)  # the first chunk is prepared by now; its second batch still waits for the device
        results["second"] = pool.run_chunk(records[2:])  # 4 more jobs, which complete the partial batch
        first.join(60)
    assert job_states(results["first"]) == Counter({"produced": 8})
    assert job_states(results["second"]) == Counter({"produced": 4})
    assert [len(call) for call in models.devices["cpu:0"].calls] == [3, 3, 3, 3]  # no partial batch at all


def test_chunks_run_concurrently_share_batches_and_get_their_own_products(tmp_path: Path) -> None:
    models = PoolModels()
    ctx, res, records = pool_setup(tmp_path, 5, models)
    results: dict[int, ChunkResult] = {}
    with DevicePool(ctx, res, settings(tmp_path, ["cpu:0", "cpu:1"])) as pool:
        parts = [records[:2], records[2:]]
        threads = [
            threading.Thread(target=lambda i=i, part=part: results.__setitem__(i, pool.run_chunk(part)))
            for i, part in enumerate(parts)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
    assert [p.sku for p in results[0].products] == [r.sku for r in records[:2]]
    assert [p.sku for p in results[1].products] == [r.sku for r in records[2:]]
    for i, part in enumerate(parts):
        assert job_states(results[i]) == Counter({"produced": len(part) * JOBS_PER_PRODUCT})
    # 20 jobs in batches of 3 across both chunks: one partial batch in all, not one per chunk.
    sizes = sorted(len(call) for d in models.devices.values() for call in d.calls)
    assert sizes == [2] + [3] * 6


def test_a_failing_device_is_taken_out_and_its_jobs_go_to_the_others(tmp_path: Path) -> None:
    def lost(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        raise DeviceLostError(f"{device.device} fell off the bus")

    models = PoolModels({"cpu:1": lost}, hold_s=0.01)
    ctx, res, records = pool_setup(tmp_path, 6, models)
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0", "cpu:1"], retries=4, device_failures=2))
    assert_every_job_produced_once(result, res, 6)
    usage = {u.device: u for u in result.devices}
    assert usage["cpu:1"].state == "taken out" and usage["cpu:1"].batches == 0
    assert "2 errors in a row" in usage["cpu:1"].reason and "fell off the bus" in usage["cpu:1"].reason
    assert len(models.devices["cpu:1"].calls) == 2  # drained: no third call after it was taken out
    assert usage["cpu:0"].state == "active" and usage["cpu:0"].jobs == 24


def test_thirty_percent_of_render_calls_failing_transiently_still_produce_every_job(tmp_path: Path) -> None:
    chance = random.Random(30)
    failures = Counter[str]()
    guard = threading.Lock()

    def flaky(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        with guard:
            fail = chance.random() < 0.3
            failures[str(fail)] += 1
        if fail:
            raise TimeoutError(f"{device.device} did not answer")

    models = PoolModels({"cpu:0": flaky, "cpu:1": flaky})
    ctx, res, records = pool_setup(tmp_path, 8, models)
    result = run_pool(
        ctx, res, records, settings(tmp_path, ["cpu:0", "cpu:1"], retries=8, device_failures=10)
    )
    assert_every_job_produced_once(result, res, 8)
    assert failures["True"] >= 3  # the faults really happened
    assert failures["True"] / (failures["True"] + failures["False"]) > 0.15
    assert sum(u.errors for u in result.devices) == failures["True"]


def test_a_hung_device_times_out_and_its_jobs_move(tmp_path: Path) -> None:
    release = threading.Event()

    def hang(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        release.wait(60)

    models = PoolModels({"cpu:1": hang}, hold_s=0.02)
    ctx, res, records = pool_setup(tmp_path, 4, models)
    try:
        result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0", "cpu:1"], batch_timeout_s=1.0))
    finally:
        release.set()
    assert_every_job_produced_once(result, res, 4)
    usage = {u.device: u for u in result.devices}
    assert usage["cpu:1"].state == "taken out" and "hung" in usage["cpu:1"].reason
    assert len(models.devices["cpu:1"].calls) == 1
    hung_batch = models.devices["cpu:1"].calls[0]
    produced_by_cpu0 = {job for call in models.devices["cpu:0"].calls for job in call}
    assert set(hung_batch) <= produced_by_cpu0  # the hung batch was rendered again elsewhere


def test_out_of_memory_frees_the_cache_and_splits_the_batch(tmp_path: Path) -> None:
    def small_batches_only(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        if len(jobs) > 1:
            raise DeviceOutOfMemoryError(f"{len(jobs)} images do not fit")

    models = PoolModels({"cpu:0": small_batches_only})
    ctx, res, records = pool_setup(tmp_path, 1, models)  # 4 jobs: a batch of 3 and one of 1
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0"], device_failures=10))
    assert_every_job_produced_once(result, res, 1)
    device = models.devices["cpu:0"]
    assert sorted(len(call) for call in device.calls) == [1, 1, 1, 1, 2, 3]  # 3 -> 1 + 2 -> 1 + 1
    assert device.freed == 2


def test_bad_input_is_never_retried_and_fails_only_its_jobs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = PoolModels()
    ctx, res, records = pool_setup(tmp_path, 3, models)
    bad_sku = records[1].sku

    def refuses(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        if any(job.sku == bad_sku for job in jobs):
            raise RenderError(f"cannot render {bad_sku}")

    models.behaviours["cpu:0"] = refuses
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0"]))
    states = {p.sku: p.state for p in result.products}
    assert states == {records[0].sku: "produced", bad_sku: "failed", records[2].sku: "produced"}
    calls = models.rendered_jobs()
    bad_jobs = [job for job in calls if job.startswith(bad_sku + "__")]
    # Each bad job: its batch once, then alone once (the split that finds it), never a retry.
    assert len(bad_jobs) == JOBS_PER_PRODUCT and all(calls[job] == 2 for job in bad_jobs)
    assert all(
        u.errors == 0 and u.state == "active" for u in result.devices
    )  # bad input is not the device's fault


def test_a_transient_preparation_fault_retries_and_an_unusable_photo_is_rejected_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    models = PoolModels()
    ctx, res, records = pool_setup(tmp_path, 2, models)
    (Path(ctx.csv_dir) / "g01.png").write_bytes(b"%PDF-1.4 not a photo")
    original = stages.prepare_product
    tries = Counter[str]()

    def flaky_prepare(record, ctx, res, planned=None):  # type: ignore[no-untyped-def]
        tries[record.sku] += 1
        if record.sku == records[0].sku and tries[record.sku] == 1:
            raise TimeoutError("the photo server timed out")
        return original(record, ctx, res, planned)

    monkeypatch.setattr(stages, "prepare_product", flaky_prepare)
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0"]))
    assert tries == Counter({records[0].sku: 2, records[1].sku: 1})
    states = {p.sku: p.state for p in result.products}
    assert states == {records[0].sku: "produced", records[1].sku: "rejected"}
    assert [r.sku for r in result.rejects] == [records[1].sku]


def test_with_every_device_gone_the_jobs_fail_with_the_reason_and_are_recorded(tmp_path: Path) -> None:
    def lost(device: FakeDevice, jobs: Sequence[RenderJob]) -> None:
        raise DeviceLostError("gone")

    models = PoolModels({"cpu:0": lost})
    ctx, res, records = pool_setup(tmp_path, 2, models)
    result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0"], retries=5, device_failures=2))
    jobs = [job for product in result.products for job in product.jobs]
    assert {job.state for job in jobs} == {"failed"} and len(jobs) == 8
    assert all("DeviceLostError: gone" in job.reason for job in jobs)
    assert any("no device left" in job.reason for job in jobs)
    assert {s.status for s in res.store.get_many([j.job_id for j in jobs]).values()} == {"failed"}


def test_the_queues_stay_bounded_whatever_the_catalogue(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A slow device and fast preparation: work waiting for the device never exceeds the bound."""
    models = PoolModels(hold_s=0.05)
    ctx, res, records = pool_setup(tmp_path, 8, models)
    pool = DevicePool(ctx, res, settings(tmp_path, ["cpu:0"], batches_ahead=2))
    seen: list[tuple[int, int]] = []
    original = stages.prepare_product

    def watching(record, ctx, res, planned=None):  # type: ignore[no-untyped-def]
        with pool._cond:
            seen.append((len(pool._ready) + len(pool._to_place) + pool._placing, len(pool._to_finish)))
        return original(record, ctx, res, planned)

    monkeypatch.setattr(stages, "prepare_product", watching)
    with pool:
        result = pool.run_chunk(records)
    assert job_states(result) == Counter({"produced": 32})
    assert len(seen) == 8 and max(waiting for waiting, _ in seen) <= 2 + 2 and max(f for _, f in seen) <= 2


def test_a_device_claimed_by_another_process_is_left_alone(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    holder = hold_claim_in_subprocess("cpu:1", lock_dir)
    try:
        models = PoolModels()
        ctx, res, records = pool_setup(tmp_path, 2, models)
        result = run_pool(ctx, res, records, settings(tmp_path, ["cpu:0", "cpu:1"]))
    finally:
        holder.kill()
        holder.wait()
    assert_every_job_produced_once(result, res, 2)
    assert set(models.loads) == {"cpu:0"}  # never loaded onto the claimed device


def test_a_claim_dies_with_its_process_even_by_kill_9(tmp_path: Path) -> None:
    lock_dir = tmp_path / "locks"
    holder = hold_claim_in_subprocess("cuda:0", lock_dir)
    claim = DeviceClaim("cuda:0", lock_dir)
    try:
        assert not claim.acquire(blocking=False)
        assert not claim.acquire(timeout=0.2)
    finally:
        holder.kill()  # SIGKILL: no cleanup code runs in the holder
        holder.wait()
    assert claim.acquire(timeout=10)
    claim.release()
    assert DeviceClaim("cpu", lock_dir).acquire(blocking=False)  # plain cpu is shared: never locked


def hold_claim_in_subprocess(device: str, lock_dir: Path) -> subprocess.Popen[str]:
    code = (
        "import sys, time\n"
        "from pipelines.production.device_locks import DeviceClaim\n"
        f"claim = DeviceClaim({device!r}, {str(lock_dir)!r})\n"
        "assert claim.acquire(blocking=False)\n"
        "print('held', flush=True)\n"
        "time.sleep(120)\n"
    )
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        cwd=Path(__file__).resolve().parents[3],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None and process.stdout.readline().strip() == "held"
    return process


def test_pool_settings_come_from_the_profile_and_bad_values_are_refused(tmp_path: Path) -> None:
    profile = load_profile(
        small_profile(tmp_path, run={"max_workers": 3, "task_retries": 4, "batch_timeout_s": 30})
    )
    got = pool_settings(profile, ["cuda:0", "cuda:1"])
    assert (got.devices, got.cpu_workers, got.retries, got.batch_timeout_s, got.batch_size) == (
        ("cuda:0", "cuda:1"),
        3,
        4,
        30.0,
        3,
    )
    with pytest.raises(ProfileError, match="batch_timeout_s must be > 0"):
        pool_settings(profile.with_overrides(run={"batch_timeout_s": 0}), ["cpu"])
    with pytest.raises(ProfileError, match="device_failures"):
        pool_settings(profile.with_overrides(run={"device_failures": 0}), ["cpu"])
