"""The `produce_catalog` flow: product CSV in, images, contact sheets, manifest and run index out."""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from prefect import flow, get_run_logger
from prefect.artifacts import create_link_artifact, create_table_artifact
from prefect.futures import PrefectFuture, as_completed
from prefect.task_runners import ThreadPoolTaskRunner
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from catalog import read_catalog
from catalog.schema import Reject
from flows import caches
from flows.outputs import (
    MANIFEST_COLUMNS,
    REJECT_COLUMNS,
    JobOutcome,
    OutputLayout,
    ProductOutcome,
    csv_text,
    manifest_rows,
    product_state,
    render_index_html,
    summary_counts,
    write_json_atomic,
    write_text_atomic,
)
from flows.profile import Profile, load_profile
from flows.tasks import (
    BatchItem,
    PreparedProduct,
    RunContext,
    failed_outcome,
    image_policy,
    prepare_product,
    publish_sheet,
    render_batch,
)


@dataclass
class RunSummary:
    """What a run did, for the CLI, tests and the Prefect artifact."""

    run_id: str
    out_dir: str
    counts: dict[str, int]
    index: str
    manifest: str
    rejects: str
    products: list[ProductOutcome] = field(default_factory=list)
    csv_rejects: list[dict[str, Any]] = field(default_factory=list)
    seconds: float = 0.0
    stage_seconds: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        """Non-zero when anything failed (rejected rows are reported, not failures)."""
        return 1 if self.counts.get("failed", 0) else 0


def _new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


def _reject_dict(reject: Reject, product_level: bool = False) -> dict[str, Any]:
    return {
        "row": reject.row,
        "sku": reject.sku,
        "column": reject.column,
        "reason": reject.reason,
        "product_level": product_level,
    }


@flow(name="produce-catalog", log_prints=True)
def produce_catalog(
    csv_path: str,
    profile: str = "demo",
    out_dir: str = "outputs",
    only: list[str] | None = None,
    preset: str | None = None,
    device: str = "cpu",
    force: bool = False,
    show_progress: bool = True,
) -> RunSummary:
    """Read a product CSV, produce every pose x variant image, and publish contact sheets and the run index."""
    started = time.perf_counter()
    logger = get_run_logger()
    run_id = _new_run_id()
    loaded: Profile = load_profile(profile).with_overrides(preset=preset)
    layout = OutputLayout(Path(out_dir))
    poses = caches.pose_library()
    ctx = RunContext(
        run_id=run_id,
        out_dir=str(layout.root),
        profile=loaded,
        fingerprint=loaded.fingerprint(caches.pose_library_digest()),
        device=device,
        force=force,
    )

    # 1. Read and validate the CSV: good rows go on, every problem becomes a reject row.
    csv_dir = str(Path(csv_path).resolve().parent)
    result = read_catalog(Path(csv_path), image_policy(loaded, csv_dir), known_poses=set(poses))
    wanted = set(only or ())
    records = [r for r in result.records if not wanted or r.sku in wanted]
    if missing := wanted - {r.sku for r in records}:
        logger.warning(
            "--only names SKUs that are not produced from this CSV: %s", ", ".join(sorted(missing))
        )
    csv_rejects = [_reject_dict(r) for r in result.rejects]
    logger.info(
        "%s: %d products, %d rejected rows (%s)", csv_path, len(records), len(csv_rejects), result.dialect
    )

    # Retries for transient faults only (retry_only_transient); counts and delay come from the profile.
    retries = int(loaded.run.get("task_retries", 2))
    delay = float(loaded.run.get("retry_delay_s", 1))
    prepare = prepare_product.with_options(retries=retries, retry_delay_seconds=delay)
    render = render_batch.with_options(retries=retries, retry_delay_seconds=delay)

    # 2. Prepare every product (load, segment, cutout) and render jobs in micro-batches as they come in.
    prepared: dict[str, PreparedProduct] = {}
    outcomes: dict[str, list[JobOutcome]] = defaultdict(list)
    remaining: dict[str, int] = {}
    render_futures: list[PrefectFuture[list[JobOutcome]]] = []
    sheet_futures: dict[str, PrefectFuture[str]] = {}
    products: dict[str, ProductOutcome] = {}
    pending: list[BatchItem] = []
    batch_of: dict[int, list[BatchItem]] = {}
    with _progress(show_progress) as progress:
        prep_bar = progress.add_task("prepare", total=len(records))
        job_bar = progress.add_task("render", total=0)
        prep_futures = {prepare.submit(record, ctx, csv_dir): record for record in records}
        for future in as_completed(list(prep_futures)):
            record = prep_futures[future]
            progress.advance(prep_bar)
            try:
                item = future.result()
            except Exception as error:  # noqa: BLE001 - retries ran out: record and go on
                products[record.sku] = ProductOutcome(
                    record.sku,
                    record.row,
                    "failed",
                    reason=f"preparation failed: {error}",
                    title=record.title,
                    source_rows=list(record.source_rows),
                )
                continue
            prepared[record.sku] = item
            if item.rejected_reason:
                products[record.sku] = ProductOutcome(
                    record.sku,
                    record.row,
                    "rejected",
                    reason=item.rejected_reason,
                    column=item.rejected_column,
                    title=record.title,
                    source_rows=list(record.source_rows),
                )
                csv_rejects.append(
                    _reject_dict(
                        Reject(record.row, record.sku, item.rejected_column, item.rejected_reason),
                        product_level=True,
                    )
                )
                continue
            outcomes[record.sku].extend(item.skipped)
            remaining[record.sku] = len(item.todo)
            progress.update(job_bar, total=progress.tasks[job_bar].total + len(item.todo) + len(item.skipped))
            progress.advance(job_bar, len(item.skipped))
            pending.extend(BatchItem(plan, item) for plan in item.todo)
            while len(pending) >= loaded.batch_size:
                batch, pending = pending[: loaded.batch_size], pending[loaded.batch_size :]
                render_futures.append(render.submit(batch, ctx))
                batch_of[id(render_futures[-1])] = batch
            if not item.todo:
                sheet_futures[record.sku] = _submit_sheet(record.sku, prepared, outcomes, products, ctx)
        for start in range(0, len(pending), loaded.batch_size):
            batch = pending[start : start + loaded.batch_size]
            render_futures.append(render.submit(batch, ctx))
            batch_of[id(render_futures[-1])] = batch

        # 3. As batches finish, publish each product's contact sheet once all its jobs are in.
        for future in as_completed(render_futures):
            try:
                results = future.result()
            except Exception as error:  # noqa: BLE001 - the whole batch failed after its retries
                results = [
                    failed_outcome(item, f"render failed after retries: {error}", ctx)
                    for item in batch_of[id(future)]
                ]
            for job in results:
                outcomes[job.sku].append(job)
                remaining[job.sku] -= 1
                progress.advance(job_bar)
                if remaining[job.sku] == 0:
                    sheet_futures[job.sku] = _submit_sheet(job.sku, prepared, outcomes, products, ctx)
        for sku, sheet_future in sheet_futures.items():
            try:
                products[sku].sheet = sheet_future.result()
            except Exception as error:  # noqa: BLE001 - a missing sheet is reported, images stay
                products[sku].flags.append(f"contact sheet failed: {error}")

    # 4. Manifest, rejects, run index and the Prefect artifacts.
    ordered = sorted(products.values(), key=lambda p: (p.row, p.sku))
    summary = _publish_run(ordered, csv_rejects, ctx, csv_path, result.dialect, time.perf_counter() - started)
    logger.info("summary: %s", summary.counts)
    return summary


def _submit_sheet(
    sku: str,
    prepared: dict[str, PreparedProduct],
    outcomes: dict[str, list[JobOutcome]],
    products: dict[str, ProductOutcome],
    ctx: RunContext,
) -> PrefectFuture[str]:
    item = prepared[sku]
    record = item.record
    pose_order = {
        pose: i
        for i, pose in enumerate(record.poses or ctx.profile.default_poses(record.garment_class.value))
    }
    jobs = sorted(outcomes[sku], key=lambda j: (pose_order.get(j.pose, 99), j.pose, j.variant))
    products[sku] = ProductOutcome(
        sku,
        record.row,
        product_state(jobs),
        title=record.title,
        flags=list(item.flags),
        source_rows=list(record.source_rows),
        jobs=jobs,
        reason="; ".join(j.reason for j in jobs if j.state == "failed")[:500],
    )
    return publish_sheet.submit(products[sku], item, ctx)


def _publish_run(
    products: list[ProductOutcome],
    csv_rejects: list[dict[str, Any]],
    ctx: RunContext,
    csv_path: str,
    dialect: str,
    seconds: float,
) -> RunSummary:
    layout = ctx.layout
    counts = summary_counts(products, sum(1 for r in csv_rejects if not r.get("product_level")))
    rows = manifest_rows(
        products,
        csv_rejects,
        renderer=ctx.profile.renderer_name,
        fingerprint=ctx.fingerprint,
        run_id=ctx.run_id,
        root=layout.root,
    )
    manifest = csv_text(MANIFEST_COLUMNS, rows)
    rejects = csv_text(REJECT_COLUMNS, csv_rejects)
    index = render_index_html(
        title=f"onmodel · {Path(csv_path).name}",
        run_id=ctx.run_id,
        counts=counts,
        products=products,
        rejects=csv_rejects,
        root=layout.root,
        details={
            "profile": ctx.profile.name,
            "renderer": ctx.profile.renderer_name,
            "preset": ctx.profile.preset,
            "fingerprint": ctx.fingerprint,
            "seconds": f"{seconds:.1f}",
        },
    )
    run_dir = layout.run_dir(ctx.run_id)
    for folder in (layout.root, run_dir):
        write_text_atomic(folder / "manifest.csv", manifest)
        write_text_atomic(folder / "rejects.csv", rejects)
    write_text_atomic(layout.index, index)
    summary = RunSummary(
        run_id=ctx.run_id,
        out_dir=str(layout.root),
        counts=counts,
        index=str(layout.index),
        manifest=str(layout.manifest),
        rejects=str(layout.rejects),
        products=products,
        csv_rejects=csv_rejects,
        seconds=seconds,
    )
    write_json_atomic(
        run_dir / "summary.json",
        {
            "counts": counts,
            "csv": csv_path,
            "dialect": dialect,
            "profile": ctx.profile.name,
            "fingerprint": ctx.fingerprint,
            "seconds": seconds,
            "products": [asdict(p) for p in products],
        },
    )
    create_table_artifact(
        [{"state": name, "count": value} for name, value in counts.items()],
        key="onmodel-run-summary",
        description=f"onmodel run {ctx.run_id} of {Path(csv_path).name}",
    )
    create_link_artifact(
        layout.index.resolve().as_uri(),
        link_text="run index (contact sheets)",
        key="onmodel-run-index",
        description="Open the run index to review contact sheets.",
    )
    return summary


def _progress(show: bool) -> Progress:
    return Progress(
        TextColumn("{task.description:>8}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        disable=not show,
    )


def run_catalog(
    csv_path: str,
    profile: str = "demo",
    out_dir: str = "outputs",
    *,
    only: list[str] | None = None,
    preset: str | None = None,
    device: str = "cpu",
    force: bool = False,
    show_progress: bool = True,
) -> RunSummary:
    """Run the flow with the profile's worker count (ThreadPoolTaskRunner always gets an explicit max_workers)."""
    workers = int(load_profile(profile).run.get("max_workers", 2))
    configured = produce_catalog.with_options(task_runner=ThreadPoolTaskRunner(max_workers=workers))
    return configured(
        csv_path=csv_path,
        profile=profile,
        out_dir=out_dir,
        only=only,
        preset=preset,
        device=device,
        force=force,
        show_progress=show_progress,
    )
