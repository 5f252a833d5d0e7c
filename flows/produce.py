"""The `produce_catalog` flow: Prefect wiring of the product pipeline (pipelines.production), nothing more."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.states import Failed, State
from prefect.task_runners import ThreadPoolTaskRunner

from flows import caches
from flows.errors import is_transient, retry_options
from flows.tasks import prepare_product, publish_sheet, render_batch
from pipelines.production import stages
from pipelines.production.book import ProgressCallback, RunBook
from pipelines.production.outcomes import JobOutcome, RunReport
from pipelines.production.profile import Profile, load_profile
from pipelines.production.report import build_report, publish_report
from pipelines.production.stages import BatchItem
from pipelines.production.validate import check_run, run_fingerprint, start_run

# Every way of starting the flow (CLI, serve, deployments) gets a bounded thread pool, never Prefect's
# unbounded default; run_catalog sizes it from the profile.
DEFAULT_MAX_WORKERS = max(1, min(4, os.cpu_count() or 1))

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
    device: str = "cpu",
    force: bool = False,
) -> RunReport | State[Any]:
    """Read a product CSV, produce every pose x variant image, publish contact sheets and the run index."""
    started = time.perf_counter()
    logger = get_run_logger()
    # 1. Validate the run and read the CSV (nothing is loaded or rendered before this passes).
    run = start_run(
        csv_path,
        load_profile(profile).with_overrides(preset=presets or None),
        device=device,
        force=force,
        only=only,
        presets=caches.presets(),
        poses=caches.pose_library(),
    )
    ctx = run.ctx
    if run.unknown_only:
        logger.warning("--only names SKUs not produced from this CSV: %s", ", ".join(run.unknown_only))
    logger.info(
        "%s: %d products, %d rejected rows (%s)", csv_path, len(run.records), len(run.rejects), run.dialect
    )
    book = RunBook(
        run.records,
        batch_size=ctx.profile.batch_size,
        default_poses=ctx.profile.default_poses,
        rejects=run.rejects,
        on_progress=_progress.get(),
    )
    prepare = prepare_product.with_options(**retry_options(ctx.profile))
    render = render_batch.with_options(**retry_options(ctx.profile))
    renders: dict[PrefectFuture[list[JobOutcome]], list[BatchItem]] = {}
    sheets: dict[str, PrefectFuture[str]] = {}

    def submit_sheets() -> None:
        for product, prepared in book.take_complete():
            sheets[product.sku] = publish_sheet.submit(product, prepared, ctx, out_dir)

    # 2. Prepare every product; submit render micro-batches as they fill.
    preparing = {prepare.submit(record, ctx, out_dir): record for record in run.records}
    for future in as_completed(list(preparing)):
        try:
            prepared = future.result()
        except Exception as error:
            if not is_transient(error):
                raise  # a bug: fail loudly
            book.product_failed(preparing[future], _after_retries("preparation", error, ctx.profile))
            continue
        for batch in book.product_prepared(prepared):
            renders[render.submit(batch, ctx, out_dir)] = batch
        submit_sheets()
    for batch in book.remaining_batches():
        renders[render.submit(batch, ctx, out_dir)] = batch
    # 3. Collect batches; a product's contact sheet goes out once all its jobs are in.
    for rendered in as_completed(list(renders)):
        try:
            outcomes = rendered.result()
        except Exception as error:
            if not is_transient(error):
                raise
            reason = _after_retries("render", error, ctx.profile)
            resources = caches.resources(out_dir)
            outcomes = [stages.record_failed_job(item, reason, ctx, resources) for item in renders[rendered]]
        book.batch_done(outcomes)
        submit_sheets()
    for sku, sheet in sheets.items():
        try:
            book.sheet_done(sku, sheet.result())
        except ValueError as error:  # a step's bad input (an unreadable image): reported, the images stay
            book.sheet_failed(sku, str(error))
    # 4. The run report: manifest, rejects, summary.json, index, then the Prefect artifacts.
    report = build_report(run, book, out_dir, time.perf_counter() - started)
    publish_report(report, caches.resources(out_dir).storage)
    _artifacts(report)
    logger.info("summary: %s", report.counts)
    if report.counts["failed"]:
        # Failed, so Prefect's alerts on failed runs fire; the report is still the state's data.
        return Failed(
            message=f"{report.counts['failed']} job(s) failed; see {report.out_dir}/manifest.csv", data=report
        )
    return report


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
    create_link_artifact(
        (Path(report.out_dir) / "index.html").resolve().as_uri(),
        link_text="run index (contact sheets)",
        key="onmodel-run-index",
        description="Open the run index to review contact sheets.",
    )


def configured_flow(profile: Profile) -> Any:
    """The flow with the profile's worker count (CLI, serve and deployments all start it through this)."""
    workers = int(profile.run.get("max_workers", DEFAULT_MAX_WORKERS))
    return produce_catalog.with_options(task_runner=thread_pool(max(1, workers)))


def run_catalog(
    csv_path: str,
    profile: str = "demo",
    out_dir: str = "outputs",
    *,
    only: list[str] | None = None,
    presets: list[str] | None = None,
    device: str = "cpu",
    force: bool = False,
    on_progress: ProgressCallback | None = None,
) -> RunReport:
    """Run the flow and return its report, also when jobs failed (the flow run then ends Failed).

    The run is checked here first too, so a bad profile, preset or device is one clear error and no flow run.
    """
    loaded = load_profile(profile).with_overrides(preset=presets or None)
    check_run(loaded, device=device, presets=caches.presets(), poses=caches.pose_library())
    run_fingerprint(loaded, device=device, poses=caches.pose_library())  # a missing model, before any work
    with progress_listener(on_progress):
        state = configured_flow(loaded)(
            csv_path=csv_path,
            profile=profile,
            out_dir=out_dir,
            only=only,
            presets=presets,
            device=device,
            force=force,
            return_state=True,
        )
    result = state.result(raise_on_failure=False)
    if isinstance(result, RunReport):
        return result
    if isinstance(result, BaseException):
        raise result
    raise RuntimeError(f"produce-catalog ended {state.type.value} without a run report: {state.message}")
