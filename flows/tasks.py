"""Prefect tasks: a chunk of products per task (the run's device pool inside), keys and small records in and out,
never images. The per-product and per-batch tasks stay for callers that drive the stages one by one."""

from __future__ import annotations

from collections.abc import Callable
from typing import ParamSpec, TypeVar

from prefect import Task, task
from prefect.cache_policies import NO_CACHE

from catalog.schema import ProductRecord
from flows import caches, scale_out
from flows.errors import retry_only_transient
from pipelines.production import stages
from pipelines.production.outcomes import JobOutcome, ProductOutcome
from pipelines.production.pool import ChunkResult, PoolSettings
from pipelines.production.stages import BatchItem, PreparedProduct, RunContext

_P = ParamSpec("_P")
_R = TypeVar("_R")


def onmodel_task(name: str, task_run_name: str) -> Callable[[Callable[_P, _R]], Task[_P, _R]]:
    """Prefect's task decorator with onmodel's fixed options: only transient faults retry (counts and delays are
    set per run from the profile, flows.errors.retry_options), no result cache, no persisted results."""
    return task(
        name=name,
        task_run_name=task_run_name,
        retry_condition_fn=retry_only_transient,
        cache_policy=NO_CACHE,
        persist_result=False,
    )


@onmodel_task("produce-chunk", "chunk-{records[0].sku}")
def produce_chunk(
    records: list[ProductRecord], ctx: RunContext, out_dir: str, settings: PoolSettings
) -> ChunkResult:
    """Prepare, render and finish a chunk of products on this process's device pool; per-product outcomes."""
    return caches.device_pool(ctx, out_dir, settings).run_chunk(records)


@onmodel_task("produce-chunk", "chunk-{records[0].sku}")
def produce_chunk_on_worker(
    records: list[ProductRecord], ctx: RunContext, out_dir: str, settings: PoolSettings, state_url: str
) -> ChunkResult:
    """The same chunk on a Dask worker: the worker process's own resident pool on its one device, the run's
    state store by URL (the worker's environment may name another). It frees its worker thread first: it only
    waits on the pool, and the worker's next chunk should be prepared meanwhile (scale_out.CHUNKS_PER_GPU)."""
    scale_out.leave_worker_threads()
    return caches.run_chunk_on_worker(records, ctx, out_dir, settings, state_url)


@onmodel_task("prepare-product", "prepare-{record.sku}")
def prepare_product(record: ProductRecord, ctx: RunContext, out_dir: str) -> PreparedProduct:
    """Fetch, segment and save the cutout of one product."""
    return stages.prepare_product(record, ctx, caches.resources(out_dir))


@onmodel_task("render-batch", "render-{items[0].plan.job_id}")
def render_batch(items: list[BatchItem], ctx: RunContext, out_dir: str) -> list[JobOutcome]:
    """Place, render and finish a micro-batch of jobs."""
    return stages.render_batch(items, ctx, caches.resources(out_dir))


@onmodel_task("publish-sheet", "sheet-{product.sku}")
def publish_sheet(product: ProductOutcome, prepared: PreparedProduct, ctx: RunContext, out_dir: str) -> str:
    """Write one product's contact sheet."""
    return stages.publish_sheet(product, prepared, ctx, caches.resources(out_dir))
