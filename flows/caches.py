"""Per-process caches: models and libraries load once per process (and per Dask worker), never per task."""

from __future__ import annotations

import hashlib
import json
import threading
from functools import lru_cache
from pathlib import Path
from typing import Any

from catalog.state import StateStore
from pipelines.poses import Pose, load_pose_library
from pipelines.presets import Preset, load_presets
from pipelines.renderers import create_renderer
from pipelines.renderers.base import Renderer
from pipelines.segmentation import get_segmenter
from pipelines.segmentation.base import Segmenter

_renderer_locks: dict[str, threading.Lock] = {}
_locks_guard = threading.Lock()


@lru_cache(maxsize=4)
def pose_library(directory: str = "") -> dict[str, Pose]:
    """The pose library (configs/poses by default), read once."""
    return load_pose_library(Path(directory) if directory else None)


def pose_library_digest(directory: str = "") -> str:
    """A stable digest of the pose keypoints (part of the config fingerprint)."""
    poses = pose_library(directory)
    blob = json.dumps({name: pose.keypoints.round(5).tolist() for name, pose in sorted(poses.items())})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


@lru_cache(maxsize=4)
def _segmenter(backend: str, options_json: str, device: str) -> Segmenter:
    return get_segmenter(backend, device=device, **json.loads(options_json))


def segmenter(backend: str, options: dict[str, Any], device: str = "cpu") -> Segmenter:
    """One segmenter per (backend, options, device) per process."""
    return _segmenter(backend, json.dumps(options, sort_keys=True), device)


@lru_cache(maxsize=2)
def _renderer(name: str, options_json: str, device: str) -> Renderer:
    return create_renderer(name, json.loads(options_json), device)


def renderer(name: str, options: dict[str, Any], device: str = "cpu") -> tuple[Renderer, threading.Lock]:
    """The resident renderer for a device and the lock that keeps two batches off it at once."""
    key = f"{name}|{device}"
    with _locks_guard:
        lock = _renderer_locks.setdefault(key, threading.Lock())
    with lock:  # loading is serialised too: two threads must not load one model twice
        loaded = _renderer(name, json.dumps(options, sort_keys=True), device)
    return loaded, lock


@lru_cache(maxsize=1)
def presets() -> dict[str, Preset]:
    """configs/presets.yaml, read once per process (not once per image)."""
    return load_presets()


@lru_cache(maxsize=4)
def state_store(path: str) -> StateStore:
    """One state store connection holder per output folder per process."""
    return StateStore(Path(path))
