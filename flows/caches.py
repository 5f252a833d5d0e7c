"""Per-process caches: models, libraries and stores load once per process (and per Dask worker), never per task."""

from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import replace
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.photo_cache import PhotoCache
from catalog.state import STATE_URL_ENV, SQLJobStore, choose_state_url, open_job_store
from catalog.state import state_url as url_of
from pipelines.poses import Pose, load_pose_library
from pipelines.presets import Preset, load_presets
from pipelines.production.book import ProgressCallback
from pipelines.production.fsspec_storage import host_cache_path, local_folder, open_storage
from pipelines.production.layout import OutputLayout, Storage
from pipelines.production.outcomes import DeviceUsage
from pipelines.production.pool import ChunkResult, DevicePool, PoolSettings
from pipelines.production.scale_out import worker_device
from pipelines.production.stages import Resources, RunContext
from pipelines.renderers import create_renderer
from pipelines.renderers.base import Renderer
from pipelines.segmentation import get_segmenter
from pipelines.segmentation.base import Segmenter

_renderer_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@lru_cache(maxsize=4)
def pose_library(directory: str = "") -> dict[str, Pose]:
    """The pose library (the config root's poses/ by default), read once."""
    return load_pose_library(Path(directory) if directory else None)


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """presets.yaml, read once per process (not once per image)."""
    return load_presets()


@lru_cache(maxsize=4)
def _segmenter(backend: str, options_json: str, device: str) -> Segmenter:
    return get_segmenter(backend, device=device, **json.loads(options_json))


# One resident renderer per device (a pool of 8 GPUs keeps 8), and room for a second configuration.
@lru_cache(maxsize=16)
def _renderer(name: str, options_json: str, device: str) -> Renderer:
    return create_renderer(name, json.loads(options_json), device)


class ProcessModels:
    """The `Models` the pipeline stages use: one segmenter and one resident renderer per device and process."""

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Segmenter:
        return _segmenter(backend, json.dumps(dict(options), sort_keys=True), device)

    def renderer(self, name: str, options: Mapping[str, Any], device: str) -> tuple[Renderer, threading.Lock]:
        """The resident renderer for a device and the lock that keeps two batches off it at once."""
        key = f"{name}|{device}"
        with _locks_guard:
            lock = _renderer_locks.setdefault(key, threading.Lock())
        with lock:  # loading is serialised too: two threads must not load one model twice
            loaded = _renderer(name, json.dumps(dict(options), sort_keys=True), device)
        return loaded, lock


MODELS = ProcessModels()

_pools: dict[str, DevicePool] = {}
_pools_guard = threading.Lock()


def device_pool(
    ctx: RunContext,
    out_dir: str,
    settings: PoolSettings,
    *,
    on_progress: ProgressCallback | None = None,
    expected_products: int = 0,
) -> DevicePool:
    """This process's device pool for a run, started on first use (every chunk task of the run shares it)."""
    with _pools_guard:
        pool = _pools.get(ctx.run_id)
        if pool is None:
            pool = DevicePool(
                ctx,
                resources(out_dir),
                settings,
                on_progress=on_progress,
                expected_products=expected_products,
            )
            _pools[ctx.run_id] = pool.start()
        return pool


# Dask workers ------------------------------------------------------------------------------------------------
# A worker process renders on its one device (scale_out.worker_device) with a resident pool per run, started by
# the run's first chunk there and reused by every later one; the renderer itself stays loaded for the process's
# life (_renderer). The flow closes the pool at the run's end; a pool left idle (its flow died) closes itself.
WORKER_POOL_IDLE_S = float(os.environ.get("ONMODEL_WORKER_POOL_IDLE_S", "600"))
_worker_pools: dict[str, DevicePool] = {}
_worker_pool_use: dict[str, list[float]] = {}  # run id -> [chunks running, last used (monotonic)]
_reaper: threading.Thread | None = None


def run_chunk_on_worker(
    records: list[Any], ctx: RunContext, out_dir: str, settings: PoolSettings, state_url: str
) -> ChunkResult:
    """A chunk on this worker process's own pool (its one device), started on the run's first chunk here."""
    pool = _worker_pool(ctx, out_dir, settings, state_url)
    try:
        return pool.run_chunk(records)
    finally:
        with _pools_guard:
            use = _worker_pool_use.get(ctx.run_id)
            if use is not None:
                use[0] -= 1
                use[1] = time.monotonic()


def _worker_pool(ctx: RunContext, out_dir: str, settings: PoolSettings, state_url: str) -> DevicePool:
    global _reaper
    idle_others: list[DevicePool] = []
    with _pools_guard:
        pool = _worker_pools.get(ctx.run_id)
        if pool is None:
            # Another run's idle pool holds this worker's device: let it go first (its flow's later chunks
            # start a new one), else the two would wait for each other's device lock.
            for run_id in [run for run, use in _worker_pool_use.items() if use[0] == 0]:
                idle_others.append(_worker_pools.pop(run_id))
                _worker_pool_use.pop(run_id)
            own = replace(settings, devices=(worker_device(os.environ),))
            pool = DevicePool(ctx, resources(out_dir, state_url), own)
            _worker_pools[ctx.run_id] = pool
            _worker_pool_use[ctx.run_id] = [0, time.monotonic()]
        _worker_pool_use[ctx.run_id][0] += 1
        if _reaper is None or not _reaper.is_alive():
            _reaper = threading.Thread(
                target=_close_idle_worker_pools, name="onmodel-pool-reaper", daemon=True
            )
            _reaper.start()
    for other in idle_others:
        other.close()
    return pool.start()


def close_worker_pool(run_id: str) -> list[DeviceUsage]:
    """The flow's end of a run on this worker: the pool's final counters ([] if none), its device released."""
    with _pools_guard:
        pool = _worker_pools.pop(run_id, None)
        _worker_pool_use.pop(run_id, None)
    if pool is None:
        return []
    usage = pool.usage()
    pool.close()
    return usage


def _close_idle_worker_pools() -> None:
    while True:
        time.sleep(min(30.0, WORKER_POOL_IDLE_S))
        now = time.monotonic()
        with _pools_guard:
            idle = [
                run
                for run, use in _worker_pool_use.items()
                if use[0] == 0 and now - use[1] > WORKER_POOL_IDLE_S
            ]
        for run_id in idle:
            close_worker_pool(run_id)


def close_device_pool(run_id: str) -> list[DeviceUsage]:
    """Stop a run's pool (its device claims are released); its final per-device counters ([] if none)."""
    with _pools_guard:
        pool = _pools.pop(run_id, None)
    if pool is None:
        return []
    usage = pool.usage()
    pool.close()
    return usage


def job_store(path_or_url: str) -> SQLJobStore:
    """One state store per database per process (a pool of connections inside): a SQLite path or a URL."""
    return _job_store(url_of(path_or_url))


@lru_cache(maxsize=4)
def _job_store(url: str) -> SQLJobStore:
    return open_job_store(url)


def resources(out_dir: str, state_url: str | None = None) -> Resources:
    """Storage, state store, models and libraries for one output location (a folder or an fsspec URL), shared by
    every task of the process.

    The state store is `state_url` (the run's, given to a Dask worker with each chunk), else $ONMODEL_STATE_URL,
    else the folder's state.sqlite.
    """
    storage = storage_of(out_dir)
    return Resources(
        storage=storage,
        store=job_store(run_state_url(out_dir, state_url)),
        models=MODELS,
        poses=pose_library(),
        presets=presets(),
        photos=photo_cache(str(_photo_cache_path(out_dir, storage))),
    )


@lru_cache(maxsize=8)
def storage_of(out_dir: str) -> Storage:
    """The storage of an output location, once per process (an fsspec URL opens its file system once)."""
    return open_storage(out_dir)


def run_state_url(out_dir: str, state_url: str | None = None) -> str:
    """The state store's URL for an output location (the folder's state.sqlite only when nothing is configured:
    an object store has none, and says so)."""
    if state_url or os.environ.get(STATE_URL_ENV):
        return choose_state_url("", state_url)
    return choose_state_url(storage_of(out_dir).state_db)  # type: ignore[attr-defined]


def _photo_cache_path(out_dir: str, storage: Storage) -> Path:
    """Beside the outputs in a folder; in this host's cache for an object store (it is only a cache)."""
    folder = local_folder(storage)
    if folder is not None:
        return folder / OutputLayout().photo_cache
    return host_cache_path(out_dir, "photos.sqlite")


@lru_cache(maxsize=4)
def photo_cache(path: str) -> PhotoCache:
    """One photo cache per output folder per process (what each photo was last run)."""
    return PhotoCache(Path(path))
