"""Per-process caches: models, libraries and stores load once per process (and per Dask worker), never per task."""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.photo_cache import PhotoCache
from catalog.state import SQLJobStore, choose_state_url, open_job_store
from catalog.state import state_url as url_of
from pipelines.poses import Pose, load_pose_library
from pipelines.presets import Preset, load_presets
from pipelines.production.book import ProgressCallback
from pipelines.production.layout import LocalStorage, OutputLayout
from pipelines.production.outcomes import DeviceUsage
from pipelines.production.pool import DevicePool, PoolSettings
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
    """Storage, state store, models and libraries for one output folder, shared by every task of the process.

    The state store is `state_url` (a profile's `run.state_url`), else $ONMODEL_STATE_URL, else the folder's
    state.sqlite.
    """
    storage = LocalStorage(Path(out_dir))
    return Resources(
        storage=storage,
        store=job_store(choose_state_url(storage.state_db, state_url)),
        models=MODELS,
        poses=pose_library(),
        presets=presets(),
        photos=photo_cache(str(storage.local_path(OutputLayout().photo_cache))),
    )


@lru_cache(maxsize=4)
def photo_cache(path: str) -> PhotoCache:
    """One photo cache per output folder per process (what each photo was last run)."""
    return PhotoCache(Path(path))
