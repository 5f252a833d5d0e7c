"""Models for stage and pool tests: the real ones loaded on demand (LocalModels), and fake devices (the draft
renderer behind a device name, recording every call)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from catalog import SQLiteJobStore, read_catalog
from catalog.schema import ProductRecord
from pipelines.poses import load_pose_library
from pipelines.presets import load_presets
from pipelines.production.layout import LocalStorage
from pipelines.production.profile import load_profile
from pipelines.production.stages import Resources, RunContext
from pipelines.renderers import create_renderer
from pipelines.renderers.base import RenderedImage, Renderer, RenderJob
from pipelines.renderers.draft import DraftRenderer
from pipelines.segmentation import get_segmenter
from pipelines.segmentation.base import Segmenter
from tests.flows.helpers import small_profile, write_csv, write_flatlays


class LocalModels:
    """Models loaded on demand, counted, as a worker's cache would hold them."""

    def __init__(self) -> None:
        self.segmenters = 0
        self.lock = threading.Lock()

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Segmenter:
        self.segmenters += 1
        return get_segmenter(backend, device=device, **options)

    def renderer(self, name: str, options: Mapping[str, Any], device: str) -> tuple[Renderer, threading.Lock]:
        return create_renderer(name, options, device), self.lock


Behaviour = Callable[["FakeDevice", Sequence[RenderJob]], None]


class FakeDevice:
    """A resident renderer on a pretend device: the draft renderer, plus a cue to fail, hang or hold."""

    name = "draft"

    def __init__(self, device: str, behave: Behaviour | None = None, hold_s: float = 0.0) -> None:
        self.device = device
        self.inner = DraftRenderer.from_options({}, "cpu")
        self.behave = behave
        self.hold_s = hold_s
        self.calls: list[list[str]] = []
        self.active = 0
        self.max_active = 0
        self.freed = 0
        self._lock = threading.Lock()

    def describe(self) -> dict[str, Any]:
        return self.inner.describe()

    def free_memory(self) -> None:
        self.freed += 1

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        with self._lock:
            self.active += 1
            self.max_active = max(self.max_active, self.active)
            self.calls.append([job.job_id for job in jobs])
        try:
            if self.behave is not None:
                self.behave(self, jobs)
            if self.hold_s:
                time.sleep(self.hold_s)
            return self.inner(jobs)
        finally:
            with self._lock:
                self.active -= 1


class PoolModels:
    """A process's model cache as the pool sees it: one renderer per device, loads counted."""

    def __init__(self, behaviours: Mapping[str, Behaviour] | None = None, hold_s: float = 0.0) -> None:
        self.behaviours = dict(behaviours or {})
        self.hold_s = hold_s
        self.loads: Counter[str] = Counter()
        self.devices: dict[str, FakeDevice] = {}
        self.leases: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()
        self._segmenter: Segmenter | None = None

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Segmenter:
        with self._guard:
            if self._segmenter is None:
                self._segmenter = get_segmenter(backend, device="cpu", **options)
            return self._segmenter

    def renderer(
        self, name: str, options: Mapping[str, Any], device: str
    ) -> tuple[FakeDevice, threading.Lock]:
        with self._guard:
            if device not in self.devices:
                self.loads[device] += 1
                self.devices[device] = FakeDevice(device, self.behaviours.get(device), self.hold_s)
                self.leases[device] = threading.Lock()
            return self.devices[device], self.leases[device]

    def rendered_jobs(self) -> Counter[str]:
        """How many times each job went through a successful-or-not device call."""
        return Counter(job for device in self.devices.values() for call in device.calls for job in call)


def pool_setup(
    tmp_path: Path, products: int, models: PoolModels, **profile_overrides: object
) -> tuple[RunContext, Resources, list[ProductRecord]]:
    """A generated catalogue, a small profile (4 jobs per product, batches of 3), real storage and job store."""
    rows = write_flatlays(tmp_path / "in", products, size=256)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = load_profile(small_profile(tmp_path, **profile_overrides))
    ctx = RunContext(run_id="r1", profile=profile, fingerprint="fp", csv_dir=str(tmp_path / "in"))
    storage = LocalStorage(tmp_path / "out")
    res = Resources(
        storage=storage,
        store=SQLiteJobStore(storage.state_db),
        models=models,
        poses=load_pose_library(),
        presets=load_presets(),
    )
    records = read_catalog(csv_path, profile.image_policy(str(tmp_path / "in"))).records
    return ctx, res, records
