"""The `produce_catalog` flow: Prefect wiring of the product pipeline (pipelines.production), nothing more."""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.futures import as_completed
from prefect.runtime import deployment
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from catalog.schema import ProductRecord
from catalog.state import STATE_URL_ENV, StateStore
from flows import caches, scale_out
from flows.errors import is_transient, retry_options
from flows.tasks import produce_chunk, produce_chunk_on_worker
from pipelines.production import runs
from pipelines.production.book import (
    CHUNKS_IN_FLIGHT,
    ProgressCallback,
    RunBook,
    chunk_size,
    chunks,
    tapered_chunks,
)
from pipelines.production.fsspec_storage import is_url, local_folder, spool_file, spool_files
from pipelines.production.layout import OutputLayout
from pipelines.production.outcomes import DeviceUsage, RunReport
from pipelines.production.pool import PoolSettings, pool_settings
from pipelines.production.profile import Profile, load_profile
from pipelines.production.report import build_report, publish_report
from pipelines.production.resume import remove_orphaned_temporaries
from pipelines.production.scale_out import WorkerFacts, check_output_location
from pipelines.production.spool import OutcomeSpool, remove_stale_spools
from pipelines.production.validate import (
    RunConfigError,
    RunStart,
    check_run,
    primary_device,
    run_devices,
    run_fingerprint,
    start_run,
)

# Every way of starting the flow (CLI, serve, deployments) gets a bounded thread pool, never Prefect's
# unbounded default. Its threads only wait on chunks: the device pool does the work (its CPU workers are the
# profile's run.max_workers). CHUNKS_IN_FLIGHT (book.py) chunks keep the pool fed across chunk boundaries.
DEFAULT_MAX_WORKERS = CHUNKS_IN_FLIGHT

# Progress goes to whoever started the run (the CLI's bar), never through a flow parameter.
_progress: ContextVar[ProgressCallback | None] = ContextVar("onmodel_progress", default=None)


def thread_pool(workers: int) -> Any:
    """A ThreadPoolTaskRunner with an explicit bound (typed Any: Prefect's generic runner types do not unify)."""
    return ThreadPoolTaskRunner(max_workers=workers)


@contextmanager
def progress_listener(callback: ProgressCallback | None) -> Iterator[None]:
    """Send the run book's progress events of flows started in this context to `callback`."""
    token = _progress.set(callback)
    try:
        yield
    finally:
        _progress.reset(token)


@flow(
    name="produce-catalog",
    log_prints=True,
    persist_result=False,
    task_runner=thread_pool(DEFAULT_MAX_WORKERS),
)
def produce_catalog(
    csv_path: str,
    profile: str = "demo",
    out_dir: str = "outputs",
    only: list[str] | None = None,
    presets: list[str] | None = None,
    device: str | None = None,
    force: bool = False,
    devices: list[str] | None = None,
    dask: str | None = None,
) -> RunReport | State[Any]:
    """Read a product CSV, produce every pose x variant image, publish contact sheets and the run index.

    devices: the device pool (default: --device as a one-device pool, else the profile's run.devices).
    dask: a Dask scheduler (tcp://HOST:8786; default: the profile's run.dask): the chunks run on its workers,
    one device each, and out_dir is a folder every host mounts or an fsspec URL.
    """
    started = time.perf_counter()
    # 1. Validate the run and read the CSV (nothing is loaded or rendered before this passes).
    loaded = load_profile(profile).with_overrides(preset=presets or None)
    address = dask_address(loaded, dask)
    out_dir, pool_devices, workers = run_placement(loaded, out_dir, address, device=device, devices=devices)
    run = start_run(
        csv_path,
        loaded,
        device=primary_device(pool_devices),
        force=force,
        only=only,
        presets=caches.presets(),
        poses=caches.pose_library(),
    )
    ctx = run.ctx
    store = caches.resources(out_dir).store
    trigger = runs.trigger_of(deployment.name)
    runs.record_start(run, store, trigger)
    try:
        full = runs.is_full_catalogue(trigger, only)
        return _produce(run, pool_devices, out_dir, started, store, full, address, workers)
    except BaseException:
        runs.record_crash(ctx.run_id, store)
        raise


def dask_address(profile: Profile, dask: str | None) -> str | None:
    """The Dask scheduler of a run: --dask / the flow parameter, else the profile's run.dask, else none."""
    return dask or str(profile.run.get("dask") or "") or None


def run_placement(
    profile: Profile,
    out_dir: str,
    address: str | None,
    *,
    device: str | None,
    devices: str | list[str] | None,
) -> tuple[str, tuple[str, ...], list[WorkerFacts]]:
    """Where a run writes and renders: (output location, devices, Dask render workers).

    On one host: the devices of --devices / --device / the profile. With a Dask scheduler: one device per GPU
    worker, after the preflight (outputs, state store and Prefect server shared by every worker), and the output
    folder as an absolute path (the workers do not share this process's working directory).
    """
    check_output_location(out_dir, state_configured=bool(os.environ.get(STATE_URL_ENV)))
    if not address:
        return out_dir, run_devices(profile, device=device, devices=devices), []
    if device or devices:
        raise RunConfigError(
            "with --dask every worker renders on its own device (CUDA_VISIBLE_DEVICES=i, or ONMODEL_WORKER_DEVICE); "
            "drop --device / --devices."
        )
    located = out_dir if is_url(out_dir) else str(Path(out_dir).resolve())
    workers = scale_out.render_workers(address, located, caches.run_state_url(located))
    return located, tuple(worker.device for worker in workers), workers


def _produce(
    run: RunStart,
    pool_devices: tuple[str, ...],
    out_dir: str,
    started: float,
    store: StateStore,
    full_catalogue: bool = False,
    address: str | None = None,
    workers: list[WorkerFacts] | None = None,
) -> RunReport | State[Any]:
    """The body of produce_catalog once the run is validated and recorded as started.

    full_catalogue: a run over the whole catalogue records its products and retires the ones it no longer lists.
    """
    logger = get_run_logger()
    ctx = run.ctx
    storage = caches.storage_of(out_dir)
    folder = local_folder(storage)  # None on an object store (whole-object writes)
    if folder is not None and folder.is_dir():  # a run killed earlier (kill -9) may have left temporaries
        for leftover in remove_orphaned_temporaries(folder):
            logger.info("removed %s (a write cut off by an earlier run's crash)", leftover)
    for stale in remove_stale_spools(spool_files(storage, OutputLayout().run_outcomes("*"))):
        logger.info("removed %s (the outcome spool of a run that ended days ago)", stale)
    if run.unknown_only:
        logger.warning("--only names SKUs not produced from this CSV: %s", ", ".join(run.unknown_only))
    settings = pool_settings(ctx.profile, pool_devices)
    size = chunk_size(len(run.records), len(pool_devices), ctx.profile.run.get("chunk_size", "auto"))
    # On Dask each worker renders only the chunks it takes: the last ones are smaller, so the workers end together.
    # A chunk's records are read (from the run's spool on disk) only when it is submitted.
    parts = tapered_chunks(run.records, size, len(pool_devices)) if address else chunks(run.records, size)
    logger.info(
        "%s: %d products in %d chunks of <= %d, %d rejected rows (%s), devices %s",
        run.csv_path,
        len(run.records),
        len(parts),
        size,
        len(run.rejects),
        run.dialect,
        ",".join(pool_devices) if not workers else ", ".join(f"{w.device} on {w.address}" for w in workers),
    )
    book = RunBook(
        run.records,
        batch_size=ctx.profile.batch_size,
        default_poses=ctx.profile.default_poses,
        rejects=run.rejects,
        on_progress=_progress.get() if address else None,  # on Dask, products come back chunk by chunk
        # Final outcomes go to runs/<id>/outcomes.jsonl (memory stays flat); the report reads them back.
        spool=OutcomeSpool(spool_file(storage, OutputLayout().run_outcomes(ctx.run_id))),
    )
    # 2. Chunks of products through this process's device pool (started here so progress reaches the caller),
    #    or through the Dask workers' pools (one device each).
    if not address:
        caches.device_pool(
            ctx, out_dir, settings, on_progress=_progress.get(), expected_products=len(run.records)
        )
    usage: dict[str, DeviceUsage] = {}
    # A full catalogue run records its products chunk by chunk; the ones no longer listed are retired at the end.
    sightings = runs.CatalogueSightings(run, store) if full_catalogue else None
    submitting = ExitStack()  # the Dask task runner's connection, for a run on a cluster
    try:
        submit = submitting.enter_context(_chunk_submitter(address, ctx, out_dir, settings))
        # One host: the flow's thread pool runs CHUNKS_IN_FLIGHT, and one more waits in its queue, so the pool
        # is fed across chunk boundaries while only those chunks' records are in memory. Dask: CHUNKS_PER_GPU per
        # worker, the next one to the worker whose chunk just ended, so a worker that is ahead takes more.
        slots: list[str | None] = (
            scale_out.chunk_slots(workers or []) if address else [None] * (CHUNKS_IN_FLIGHT + 1)
        )
        for future, part in chunks_as_completed(submit, parts, slots):
            try:
                result = future.result()
            except Exception as error:
                lost = scale_out.lost_chunk_reason(error) if address else None
                if lost is None and not is_transient(error):
                    raise  # a bug: fail loudly
                for record in part:
                    book.product_failed(record, lost or _after_retries("chunk", error, ctx.profile))
                if sightings is not None:
                    sightings.chunk_done(part, {})
                continue
            for product in result.products:
                book.product_done(product, result.reject_of(product.sku))
            usage.update(merge_usage(usage, result.devices))
            if sightings is not None:
                sightings.chunk_done(part, result.image_hashes)
    finally:
        submitting.close()
        usage.update(merge_usage(usage, caches.close_device_pool(ctx.run_id)))
        if address:
            usage.update(merge_usage(usage, _finish_on_workers(address, ctx.run_id, out_dir, workers or [])))
    # 3. The run report: manifest, rejects, summary.json, index, then the Prefect artifacts.
    report = build_report(run, book, out_dir, time.perf_counter() - started, devices=list(usage.values()))
    publish_report(report, caches.resources(out_dir).storage)
    if sightings is not None:  # products recorded, the ones no longer listed retired (files kept)
        kept = sightings.finish()
        logger.info(
            "catalogue: %d products recorded, %d listed without a usable photo or row, %d retired%s",
            kept.recorded,
            kept.seen,
            len(kept.retired),
            f" (retirement skipped: {kept.not_retired_because})" if kept.not_retired_because else "",
        )
        if kept.retired:
            logger.info("retired (no longer in the catalogue; files kept): %s", ", ".join(kept.retired[:20]))
    runs.record_end(report, store)
    _artifacts(report)
    logger.info("summary: %s", report.counts)
    for device_usage in report.devices:
        logger.info("device %s", device_usage.describe())
    if report.counts["failed"]:
        # Failed, so Prefect's alerts on failed runs fire; the report is still the state's data.
        return Failed(
            message=f"{report.counts['failed']} job(s) failed; see {report.out_dir}/manifest.csv", data=report
        )
    return report


ChunkSubmitter = Callable[[list[ProductRecord], str | None], Any]


def chunks_as_completed(
    submit: ChunkSubmitter, parts: Iterable[list[ProductRecord]], slots: list[str | None]
) -> Iterator[tuple[Any, list[ProductRecord]]]:
    """(future, chunk) as each chunk ends, in chunk order submitted to at most len(slots) at once: a slot (a
    worker, or None: anywhere) takes the next chunk when its own ends. A chunk is taken from `parts` only when
    it is submitted (a run's chunks read their records then)."""
    waiting = iter(parts)
    running: dict[Any, tuple[list[ProductRecord], str | None]] = {}
    free = deque(slots or [None])
    more = True
    while more or running:
        while more and free:
            part = next(waiting, None)
            if part is None:
                more = False
                break
            slot = free.popleft()
            running[submit(part, slot)] = (part, slot)
        for future in as_completed(list(running)):
            part, slot = running.pop(future)
            free.append(slot)
            yield future, part
            if more:  # its slot takes the next chunk; then wait on the new set
                break


@contextmanager
def _chunk_submitter(
    address: str | None, ctx: Any, out_dir: str, settings: PoolSettings
) -> Iterator[ChunkSubmitter]:
    """submit(chunk, worker) -> a Prefect future: the flow's thread pool (this process's device pool), or the
    cluster (on that worker while it lives)."""
    if not address:
        produce = produce_chunk.with_options(**retry_options(ctx.profile))
        yield lambda part, _worker: produce.submit(part, ctx, out_dir, settings)
        return
    on_worker = produce_chunk_on_worker.with_options(**retry_options(ctx.profile))
    state_url = caches.run_state_url(out_dir)  # the run's store, whatever the workers' environment says
    with scale_out.chunk_runner(address) as runner:
        yield lambda part, worker: scale_out.submit_chunk(
            runner,
            on_worker,
            {"records": part, "ctx": ctx, "out_dir": out_dir, "settings": settings, "state_url": state_url},
            worker,
        )


def _finish_on_workers(
    address: str, run_id: str, out_dir: str, workers: list[WorkerFacts]
) -> list[DeviceUsage]:
    """The workers' pools of the run closed (their final counters); a cluster gone by now costs only those."""
    try:
        return scale_out.finish_on_workers(address, run_id, out_dir, {worker.address for worker in workers})
    except Exception as error:
        get_run_logger().warning("could not close the run's pools on the Dask workers: %s", error)
        return []


def merge_usage(known: dict[str, DeviceUsage], snapshots: list[DeviceUsage]) -> dict[str, DeviceUsage]:
    """Per (process, device), the latest of the cumulative snapshots chunks bring back."""
    merged = dict(known)
    for snapshot in snapshots:
        key = f"{snapshot.worker}|{snapshot.device}"
        if key not in merged or snapshot.wall_s >= merged[key].wall_s:
            merged[key] = snapshot
    return merged


def _after_retries(stage: str, error: BaseException, profile: Profile) -> str:
    return (
        f"{stage} failed after {retry_options(profile)['retries']} retries: {type(error).__name__}: {error}"
    )


def _artifacts(report: RunReport) -> None:
    create_table_artifact(
        [{"state": name, "count": value} for name, value in report.counts.items()],
        key="onmodel-run-summary",
        description=f"onmodel run {report.run_id} of {Path(report.csv).name}",
    )
    create_table_artifact(
        [
            {
                "device": usage.device,
                "worker": usage.worker,
                "state": usage.state,
                "utilisation": f"{100 * usage.utilisation:.1f}%",
                "busy_s": round(usage.busy_s, 2),
                "batches": usage.batches,
                "jobs": usage.jobs,
                "errors": usage.errors,
                "reason": usage.reason,
            }
            for usage in report.devices
        ],
        key="onmodel-device-utilisation",
        description="Per device: busy time / the run's wall time; devices taken out and why.",
    )
    create_link_artifact(
        f"{report.out_dir.rstrip('/')}/index.html"
        if is_url(report.out_dir)
        else (Path(report.out_dir) / "index.html").resolve().as_uri(),
        link_text="run index (contact sheets)",
        key="onmodel-run-index",
        description="Open the run index to review contact sheets.",
    )


def configured_flow(profile: Profile) -> Any:
    """The flow as the CLI, serve and deployments start it (chunks in flight: CHUNKS_IN_FLIGHT)."""
    return produce_catalog.with_options(task_runner=thread_pool(CHUNKS_IN_FLIGHT))


def run_catalog(
    csv_path: str,
    profile: str = "demo",
    out_dir: str = "outputs",
    *,
    only: list[str] | None = None,
    presets: list[str] | None = None,
    device: str | None = None,
    force: bool = False,
    on_progress: ProgressCallback | None = None,
    devices: str | list[str] | None = None,
    dask: str | None = None,
) -> RunReport:
    """Run the flow and return its report, also when jobs failed (the flow run then ends Failed).

    device: one device (cpu, cuda:1); devices: a pool ("cuda:0,cuda:1", [cuda:0, cuda:1] or auto); neither: the
    profile's run.devices. dask: a scheduler address (tcp://HOST:8786): the chunks run on its GPU workers.
    The run is checked here first too, so a bad profile, preset or device (or a cluster that cannot share the
    outputs, state store and Prefect server) is one clear error and no flow run.
    """
    loaded = load_profile(profile).with_overrides(preset=presets or None)
    address = dask_address(loaded, dask)
    out_dir, pool_devices, _workers = run_placement(loaded, out_dir, address, device=device, devices=devices)
    primary = primary_device(pool_devices)
    check_run(loaded, device=primary, presets=caches.presets(), poses=caches.pose_library())
    for other in pool_devices:  # each device's renderer options (dtype per device kind)
        check_run(
            loaded, device=primary_device([other]), presets=caches.presets(), poses=caches.pose_library()
        )
    pool_settings(loaded, pool_devices)  # run settings of the pool: a ProfileError naming the key
    run_fingerprint(loaded, device=primary, poses=caches.pose_library())  # a missing model, before any work
    with progress_listener(on_progress):
        state = configured_flow(loaded)(
            csv_path=csv_path,
            profile=profile,
            out_dir=out_dir,
            only=only,
            presets=presets,
            device=device,
            force=force,
            devices=list(pool_devices) if devices else None,
            dask=dask,
            return_state=True,
        )
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunReport):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"produce-catalog ended {state.type.value} without a run report: {state.message}")
