"""The device pool: one resident renderer per device, CPU stages overlapping the devices through bounded queues,
faults survived. No Prefect: the flow's chunk task (and a Dask worker, the same function) calls `run_chunk`.

Mechanism (chosen by measurement, see docs/PERFORMANCE.md "Device pool"): threads and a scheduler of our own in
one process. The CPU stages release the GIL in their heavy parts (OpenCV, zlib/libjpeg, NumPy) and the device
call waits on the device, so threads feed the devices without pickling pixels between processes.

- One device thread per device: it claims the device (an OS file lock, `device_locks`), loads the resident
  renderer once, then takes placed batches and renders each holding the in-process render lease only around
  the call, under a watchdog (a batch that does not finish in `batch_timeout_s` is a hung device).
- A few CPU worker threads: finish (preset, encode, atomic writes, job record) first, then placement, then
  contact sheets, then preparation of new products: work in flight drains before new work enters.
- Bounded: placed batches waiting for a device and rendered batches waiting for the CPU are each at most
  `batches_ahead` x devices; products enter preparation only while there is room, so memory holds a fixed
  number of batches whatever the catalogue's size.
- Jobs are micro-batched by resolution across products and chunks; a partial batch goes out only when no
  product is being prepared and a device is about to run dry (until then a chunk that comes could fill it).
- Faults: transient errors retry with exponential backoff; out of memory frees the device cache and splits
  the batch; a device with `device_failures` errors in a row, or a hung one, is taken out for the rest of the
  run and its batches go to the others (the usage records say so); bad input is never retried.
- Two runs at once: a device claims its batch's jobs in the state store before rendering it (`claims`); a
  job another live run holds waits for that claim to end and is then reused or rendered here.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from functools import partial
from typing import Any

from catalog.schema import ProductRecord
from catalog.state import JobState
from pipelines.errors import DeviceOutOfMemoryError
from pipelines.production import claims, stages
from pipelines.production.book import ProgressCallback, ProgressEvent, RunBook
from pipelines.production.device_locks import DeviceClaim
from pipelines.production.faults import backoff_s, describe_error, is_transient
from pipelines.production.outcomes import DeviceUsage, JobOutcome, ProductOutcome, RejectRecord
from pipelines.production.profile import Profile, ProfileError
from pipelines.production.stages import BatchItem, PlacedJob, PreparedProduct, Resources, RunContext
from pipelines.renderers.base import RenderedImage, Renderer

MAX_WAIT_S = 0.5
CLAIM_POLL_S = 0.2


@dataclass(frozen=True)
class PoolSettings:
    """How the pool runs (from the profile's `run` section and --devices); small and picklable."""

    devices: tuple[str, ...] = ("cpu",)
    batch_size: int = 8
    cpu_workers: int = 2  # threads for prepare, placement, finish and sheets (run.max_workers)
    batches_ahead: int = 2  # per device: placed batches waiting, and rendered batches waiting for the CPU
    retries: int = 2  # transient faults, per product preparation and per batch (run.task_retries)
    retry_delay_s: float = 1.0  # backoff: delay, 2 x delay, 4 x delay ...
    batch_timeout_s: float = 600.0  # watchdog: a batch that takes longer is a hung device
    device_failures: int = 5  # errors in a row that take a device out for the rest of the run
    lock_dir: str = ""  # device lock files (device_locks.default_lock_dir)
    claim_lease_s: float = claims.DEFAULT_LEASE_S  # a job claim's lease, renewed every third of it
    claim_poll_s: float = claims.DEFAULT_POLL_S  # jobs another run holds are looked at again this often


def check_inputs(settings: PoolSettings, source: str = "profile") -> None:
    """Raise a ProfileError naming the run setting that cannot work."""
    if not settings.devices:
        raise ProfileError(f"{source}: run.devices names no device; use auto, cpu or cuda:0,cuda:1.")
    if settings.batch_size < 1:
        raise ProfileError(f"{source}: renderer.batch_size must be >= 1; got {settings.batch_size}.")
    if settings.cpu_workers < 1:
        raise ProfileError(f"{source}: run.max_workers must be >= 1; got {settings.cpu_workers}.")
    if settings.batches_ahead < 1:
        raise ProfileError(f"{source}: run.batches_ahead must be >= 1; got {settings.batches_ahead}.")
    if settings.retries < 0 or settings.retry_delay_s < 0:
        raise ProfileError(f"{source}: run.task_retries and run.retry_delay_s must be >= 0.")
    if settings.batch_timeout_s <= 0:
        raise ProfileError(
            f"{source}: run.batch_timeout_s must be > 0 seconds (the longest a batch may take); "
            f"got {settings.batch_timeout_s}."
        )
    if settings.device_failures < 1:
        raise ProfileError(f"{source}: run.device_failures must be >= 1; got {settings.device_failures}.")
    if settings.claim_lease_s <= 0 or settings.claim_poll_s <= 0:
        raise ProfileError(
            f"{source}: run.claim_lease_s (how long a job claim outlives a run on another host) and "
            f"run.claim_poll_s must be > 0 seconds; got {settings.claim_lease_s} and {settings.claim_poll_s}."
        )


def pool_settings(profile: Profile, devices: Sequence[str]) -> PoolSettings:
    """The pool settings of a run: the profile's run section, with the run's resolved devices."""
    run = profile.run
    settings = PoolSettings(
        devices=tuple(devices),
        batch_size=profile.batch_size,
        cpu_workers=int(run.get("max_workers", 2)),
        batches_ahead=int(run.get("batches_ahead", 2)),
        retries=int(run.get("task_retries", 2)),
        retry_delay_s=float(run.get("retry_delay_s", 1)),
        batch_timeout_s=float(run.get("batch_timeout_s", 600)),
        device_failures=int(run.get("device_failures", 5)),
        lock_dir=str(run.get("lock_dir") or ""),
        claim_lease_s=float(run.get("claim_lease_s", claims.DEFAULT_LEASE_S)),
        claim_poll_s=float(run.get("claim_poll_s", claims.DEFAULT_POLL_S)),
    )
    check_inputs(settings, str(profile.path or profile.name))
    return settings


@dataclass
class ChunkResult:
    """What a chunk of products came to: every product's outcome (jobs included), product-level rejects, and a
    snapshot of this process's devices (cumulative since the pool started)."""

    products: list[ProductOutcome]
    rejects: list[RejectRecord]
    devices: list[DeviceUsage]
    image_hashes: dict[str, str] = field(default_factory=dict)  # sku -> its photo's hash, as planned

    def reject_of(self, sku: str) -> RejectRecord | None:
        return next((reject for reject in self.rejects if reject.sku == sku), None)


# Work items (internal) ---------------------------------------------------------------------------------------


@dataclass
class _Chunk:
    book: RunBook
    done: threading.Event = field(default_factory=threading.Event)
    sheets_pending: int = 0


@dataclass
class _Prepare:
    chunk: _Chunk
    record: ProductRecord
    attempt: int = 0
    not_before: float = 0.0
    planned: stages.PreparedProduct | None = None  # from the chunk's plan (one state-store read per chunk)


@dataclass
class _Batch:
    items: list[BatchItem]
    placed: list[PlacedJob] = field(default_factory=list)
    attempt: int = 0
    not_before: float = 0.0
    place_s: float = 0.0  # per job


@dataclass
class _Rendered:
    batch: _Batch
    images: dict[str, RenderedImage]
    failures: dict[str, str]  # job id -> reason
    renderer_info: dict[str, Any]
    render_s: float = 0.0  # per job
    reused: list[tuple[PlacedJob, JobState]] = field(
        default_factory=list
    )  # rendered by another run meanwhile


@dataclass
class _Device:
    name: str
    usage: DeviceUsage
    consecutive_errors: int = 0
    rendering: int = 0  # batches inside the device call now (never more than one)
    claimed: bool = False

    @property
    def active(self) -> bool:
        return self.usage.state == "active"


def _size(item: BatchItem, ctx: RunContext) -> tuple[int, int]:
    """The render resolution of a job: micro-batches never mix sizes."""
    return ctx.profile.canvas


def free_device_memory(renderer: Renderer, device: str) -> None:
    """After an out-of-memory: the renderer's own hook if it has one, else torch's CUDA cache (if loaded)."""
    hook = getattr(renderer, "free_memory", None)
    if callable(hook):
        hook()
        return
    torch = sys.modules.get("torch")
    if torch is not None and device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.empty_cache()


class DevicePool:
    """Renders a run's jobs on its devices; `run_chunk` may be called from several threads at once."""

    def __init__(
        self,
        ctx: RunContext,
        res: Resources,
        settings: PoolSettings,
        *,
        on_progress: ProgressCallback | None = None,
        expected_products: int = 0,
    ) -> None:
        check_inputs(settings)
        self.ctx, self.res, self.settings = ctx, res, settings
        self._on_progress = on_progress
        self._expected = expected_products
        self._cond = threading.Condition()
        worker = f"{socket.gethostname()} pid {os.getpid()}"
        self._devices = [_Device(name, DeviceUsage(name, worker=worker)) for name in settings.devices]
        self._prepare: deque[_Prepare] = deque()
        self._preparing = 0
        self._pending: dict[tuple[int, int], list[BatchItem]] = {}
        self._to_place: deque[_Batch] = deque()
        self._placing = 0
        self._ready: deque[_Batch] = deque()
        self._to_finish: deque[_Rendered] = deque()
        self._sheets: deque[tuple[_Chunk, ProductOutcome, PreparedProduct]] = deque()
        self._waiting: list[BatchItem] = []  # jobs another live run holds a claim on
        self._recheck_at = 0.0
        self._rechecking = False
        self._renewer = claims.LeaseRenewer(res, ctx.run_id, settings.claim_lease_s)
        self._chunk_of: dict[str, _Chunk] = {}
        self._chunks: list[_Chunk] = []
        self._error: BaseException | None = None
        self._stopping = False
        self._threads: list[threading.Thread] = []
        self._started_at = 0.0
        self._submitted = self._prepared = self._jobs_total = self._jobs_done = 0

    # Life cycle -------------------------------------------------------------------------------------------

    def start(self) -> DevicePool:
        """Start the device threads (each claims its device and loads its renderer) and the CPU workers."""
        with self._cond:
            if self._threads:
                return self
            self._started_at = time.perf_counter()
            self._renewer.start()
            for device in self._devices:
                self._spawn(f"onmodel-device-{device.name}", self._device_loop, device)
            for index in range(self.settings.cpu_workers):
                self._spawn(f"onmodel-cpu-{index}", self._cpu_loop)
        return self

    def close(self, timeout_s: float = 10.0) -> None:
        """Stop every thread (a hung device's call is left behind: its thread is a daemon)."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        deadline = time.monotonic() + timeout_s
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._renewer.stop()

    def __enter__(self) -> DevicePool:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _spawn(self, name: str, target: Callable[..., None], *args: Any) -> None:
        thread = threading.Thread(target=self._guard, args=(target, *args), name=name, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _guard(self, target: Callable[..., None], *args: Any) -> None:
        try:
            target(*args)
        except BaseException as error:  # a bug: every waiting chunk raises it
            self._fail(error)

    def _fail(self, error: BaseException) -> None:
        with self._cond:
            if self._error is None:
                self._error = error
            self._stopping = True
            for chunk in self._chunks:
                chunk.done.set()
            self._cond.notify_all()

    # The entry point --------------------------------------------------------------------------------------

    def run_chunk(self, records: Sequence[ProductRecord]) -> ChunkResult:
        """Prepare, render and finish these products (their contact sheets too); blocks until all are done."""
        self.start()
        chunk = _Chunk(RunBook(list(records), batch_size=1, default_poses=self.ctx.profile.default_poses))
        try:  # the whole chunk planned at once; a product whose planning fails plans again alone, with retries
            planned = {p.record.sku: p for p in stages.plan_catalogue(records, self.ctx, self.res)}
        except Exception as error:
            if not is_transient(error):
                raise
            planned = {}
        with self._cond:
            self._raise_if_failed()
            clash = [record.sku for record in records if record.sku in self._chunk_of]
            if clash:
                raise ValueError(f"products {clash[:5]} are already being produced by this pool.")
            self._chunks.append(chunk)
            for record in records:
                self._chunk_of[record.sku] = chunk
                self._prepare.append(_Prepare(chunk, record, planned=planned.get(record.sku)))
            self._submitted += len(records)
            self._check_done(chunk)
            self._cond.notify_all()
        chunk.done.wait()
        with self._cond:
            self._chunks.remove(chunk)
            for record in records:
                self._chunk_of.pop(record.sku, None)
            self._raise_if_failed()
        hashes = {sku: product.image_hash for sku, product in planned.items() if product.image_hash}
        # The chunk's book keeps its outcomes (MemorySpool): they travel back whole, pickled on Dask.
        return ChunkResult(list(chunk.book.products()), list(chunk.book.rejects), self.usage(), hashes)

    def usage(self) -> list[DeviceUsage]:
        """Each device's counters so far (wall_s: since the pool started)."""
        with self._cond:
            wall = time.perf_counter() - self._started_at if self._started_at else 0.0
            return [replace(device.usage, wall_s=wall) for device in self._devices]

    def _raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    # CPU workers ------------------------------------------------------------------------------------------

    def _cpu_loop(self) -> None:
        while True:
            with self._cond:
                work = self._next_cpu_work()
                while work is None:
                    if self._stopping:
                        return
                    self._cond.wait(self._wait_s())
                    work = self._next_cpu_work()
            work()

    def _room(self) -> int:
        """How many batches may wait for a device (and for the CPU after it)."""
        return self.settings.batches_ahead * max(1, sum(d.active for d in self._devices))

    def _next_cpu_work(self) -> Callable[[], None] | None:
        """Downstream first: finish, place, sheets, then a new product if the queues have room (lock held)."""
        if self._stopping:
            return None
        if self._to_finish:
            rendered = self._to_finish.popleft()
            return lambda: self._finish(rendered)
        if self._waiting and not self._rechecking and time.perf_counter() >= self._recheck_at:
            self._rechecking = True
            return self._recheck
        if self._to_place and len(self._ready) + self._placing < self._room():
            batch = self._to_place.popleft()
            self._placing += 1
            return lambda: self._place(batch)
        if self._sheets:
            chunk, product, prepared = self._sheets.popleft()
            return lambda: self._sheet(chunk, product, prepared)
        in_flight = len(self._ready) + len(self._to_place) + self._placing
        if self._prepare and in_flight < self._room() and len(self._to_finish) < self._room():
            now = time.perf_counter()
            for index, work in enumerate(self._prepare):
                if work.not_before <= now:
                    del self._prepare[index]
                    self._preparing += 1
                    return lambda: self._prepare_one(work)
        if not self._prepare and not self._preparing and any(self._pending.values()) and not self._fed():
            # Nothing being prepared could fill the partial batches, and a device is about to run dry: send them
            # as they are. Until then another chunk may still come (on a Dask worker: once one of its chunks in
            # flight ends) and fill them: a partial batch costs its device a whole batch's time.
            for size, items in self._pending.items():
                for start in range(0, len(items), self.settings.batch_size):
                    self._to_place.append(_Batch(items[start : start + self.settings.batch_size]))
                self._pending[size] = []
            return self._next_cpu_work()
        return None

    def _fed(self) -> bool:
        """Every active device has a batch queued behind the one it renders (lock held)."""
        queued = len(self._ready) + len(self._to_place) + self._placing
        return queued >= max(1, sum(d.active for d in self._devices))

    def _wait_s(self) -> float:
        """Until the next delayed retry is due (or a while: every state change notifies anyway)."""
        due = [w.not_before for w in self._prepare] + [b.not_before for b in self._ready]
        if self._waiting and not self._rechecking:
            due.append(self._recheck_at)
        if not due:
            return MAX_WAIT_S
        return min(MAX_WAIT_S, max(0.001, min(due) - time.perf_counter()))

    def _prepare_one(self, work: _Prepare) -> None:
        record = work.record
        try:
            prepared = stages.prepare_product(record, self.ctx, self.res, planned=work.planned)
        except Exception as error:
            work.planned = None  # a retry plans the product again
            if not is_transient(error):
                raise
            with self._cond:
                self._preparing -= 1
                if work.attempt < self.settings.retries:
                    work.attempt += 1
                    work.not_before = time.perf_counter() + backoff_s(
                        self.settings.retry_delay_s, work.attempt
                    )
                    self._prepare.appendleft(work)
                else:
                    reason = (
                        f"preparation failed after {self.settings.retries} retries: {describe_error(error)}"
                    )
                    work.chunk.book.product_failed(record, reason)
                    self._count_prepared()
                    self._check_done(work.chunk)
                self._cond.notify_all()
            return
        with self._cond:
            self._preparing -= 1
            self._count_prepared()
            book = work.chunk.book
            self._jobs_total += len(prepared.todo) + len(prepared.skipped)
            self._jobs_done += len(prepared.skipped)
            for single in book.product_prepared(prepared):  # the chunk's book hands out jobs one by one
                self._queue_items(single)
            self._take_complete(work.chunk)
            self._emit_render()
            self._cond.notify_all()

    def _queue_items(self, items: Sequence[BatchItem]) -> None:
        """Jobs into the micro-batches of their size; full batches go to placement (lock held)."""
        for item in items:
            self._pending.setdefault(_size(item, self.ctx), []).append(item)
        for size, pending in self._pending.items():
            while len(pending) >= self.settings.batch_size:
                self._to_place.append(_Batch(pending[: self.settings.batch_size]))
                del pending[: self.settings.batch_size]
            self._pending[size] = pending

    def _recheck(self) -> None:
        """Jobs that waited for another run's claim: reuse what it produced, render here what it did not."""
        with self._cond:
            waiting, self._waiting = self._waiting, []
        try:
            result = claims.recheck_waiting(waiting, self.ctx, self.res, self.settings.claim_lease_s)
            outcomes = [self._reuse_meanwhile(item, state) for item, state in result.reused]
            self.res.store.release([item.plan.job_id for item, _ in result.reused], self.ctx.run_id)
        except BaseException:
            with self._cond:
                self._waiting.extend(waiting)
                self._rechecking = False
            raise
        with self._cond:
            self._rechecking = False
            self._waiting.extend(result.held)
            self._recheck_at = time.perf_counter() + self.settings.claim_poll_s
            self._queue_items(result.render)  # claimed: they render here (placed again)
            if outcomes:
                self._deliver(outcomes)
            self._cond.notify_all()

    def _reuse_meanwhile(self, item: BatchItem, state: JobState) -> JobOutcome:
        """A job another run rendered while this one had it planned, finished as reused (with retries)."""
        reuse = partial(
            stages.reuse_render,
            item.plan,
            state,
            item.product,
            self.ctx,
            self.res,
            reason=claims.reuse_reason(state),
        )
        return self._with_retries(reuse)

    def _place(self, batch: _Batch) -> None:
        started = time.perf_counter()
        placed, failed = self._with_retries(lambda: stages.place_jobs(batch.items, self.ctx, self.res))
        batch.place_s = (time.perf_counter() - started) / max(1, len(batch.items))
        batch.placed = placed
        for outcome in failed:
            outcome.timings.update(place_masks=batch.place_s)
        with self._cond:
            self._placing -= 1
            if failed:
                self._deliver(failed)
            if placed:
                self._route_ready(batch)
            self._cond.notify_all()

    def _finish(self, rendered: _Rendered) -> None:
        started = time.perf_counter()
        outcomes: list[JobOutcome] = []
        for placed in rendered.batch.placed:
            job_id = placed.item.plan.job_id
            reason = rendered.failures.get(job_id)
            if reason is None:
                image = rendered.images[job_id]
                try:
                    outcome = self._with_retries(
                        partial(stages.finish_job, placed, image, rendered.renderer_info, self.ctx, self.res)
                    )
                except Exception as error:
                    if not is_transient(error):
                        raise
                    reason = f"writing failed after {self.settings.retries} retries: {describe_error(error)}"
            if reason is not None:
                outcome = stages.record_failed_job(placed.item, reason, self.ctx, self.res)
            outcomes.append(outcome)
        outcomes.extend(self._reuse_meanwhile(placed.item, state) for placed, state in rendered.reused)
        # Finished or failed: the claims go (one statement), and a run waiting for them takes over.
        self.res.store.release(
            [placed.item.plan.job_id for placed in rendered.batch.placed]
            + [placed.item.plan.job_id for placed, _ in rendered.reused],
            self.ctx.run_id,
        )
        finish_s = (time.perf_counter() - started) / max(1, len(outcomes))
        for outcome in outcomes:
            outcome.timings.update(place_masks=rendered.batch.place_s)
            if outcome.state == "produced":
                outcome.timings.update(render=rendered.render_s, write=finish_s)
        with self._cond:
            self._deliver(outcomes)
            self._cond.notify_all()

    def _sheet(self, chunk: _Chunk, product: ProductOutcome, prepared: PreparedProduct) -> None:
        try:
            key = self._with_retries(lambda: stages.publish_sheet(product, prepared, self.ctx, self.res))
        except ValueError as error:  # an unreadable image: reported on the product, its images stay
            failure: str | None = str(error)
        except Exception as error:
            if not is_transient(error):
                raise
            failure = describe_error(error)
        else:
            failure = None
        with self._cond:
            if failure is None:
                chunk.book.sheet_done(product.sku, key)
            else:
                chunk.book.sheet_failed(product.sku, failure)
            chunk.sheets_pending -= 1
            self._check_done(chunk)
            self._cond.notify_all()

    def _with_retries(self, call: Callable[[], Any]) -> Any:
        """A CPU stage with transient faults (storage timeouts) retried in place, with backoff."""
        for attempt in range(self.settings.retries + 1):
            try:
                return call()
            except Exception as error:
                if not is_transient(error) or attempt == self.settings.retries:
                    raise
                time.sleep(backoff_s(self.settings.retry_delay_s, attempt + 1))
        raise AssertionError("unreachable")

    # Bookkeeping (lock held) ------------------------------------------------------------------------------

    def _deliver(self, outcomes: Sequence[JobOutcome]) -> None:
        """Job outcomes to their chunks' books; complete products get their sheets."""
        by_chunk: dict[int, tuple[_Chunk, list[JobOutcome]]] = {}
        for outcome in outcomes:
            chunk = self._chunk_of[outcome.sku]
            by_chunk.setdefault(id(chunk), (chunk, []))[1].append(outcome)
        for chunk, group in by_chunk.values():
            chunk.book.batch_done(group)
            self._take_complete(chunk)
        self._jobs_done += len(outcomes)
        self._emit_render()

    def _take_complete(self, chunk: _Chunk) -> None:
        for product, prepared in chunk.book.take_complete():
            chunk.sheets_pending += 1
            self._sheets.append((chunk, product, prepared))
        self._check_done(chunk)

    def _check_done(self, chunk: _Chunk) -> None:
        if chunk.book.finished and chunk.sheets_pending == 0:
            chunk.done.set()

    def _route_ready(self, batch: _Batch) -> None:
        """A placed batch waits for a device, or fails at once when none is left."""
        if any(device.active for device in self._devices):
            self._ready.append(batch)
        else:
            self._fail_batch(batch, self._no_device_reason())

    def _fail_batch(self, batch: _Batch, reason: str) -> None:
        failures = {placed.item.plan.job_id: reason for placed in batch.placed}
        self._to_finish.append(_Rendered(batch, {}, failures, {}))

    def _no_device_reason(self) -> str:
        gone = "; ".join(f"{d.name}: {d.usage.reason}" for d in self._devices)
        return f"no device left ({gone})"

    def _take_out(self, device: _Device, reason: str) -> None:
        device.usage.state = "taken out"
        device.usage.reason = reason
        if not any(d.active for d in self._devices):
            while self._ready:
                self._fail_batch(self._ready.popleft(), self._no_device_reason())

    def _count_prepared(self) -> None:
        self._prepared += 1
        self._emit(ProgressEvent("prepare", self._prepared, max(self._expected, self._submitted)))

    def _emit_render(self) -> None:
        self._emit(ProgressEvent("render", self._jobs_done, self._jobs_total))

    def _emit(self, event: ProgressEvent) -> None:
        if self._on_progress is not None:
            self._on_progress(event)

    # Device threads ---------------------------------------------------------------------------------------

    def _device_loop(self, device: _Device) -> None:
        # 1. Claim the device on this host (another onmodel process may hold it: wait for it).
        claim = DeviceClaim(device.name, self.settings.lock_dir)
        while not claim.acquire(blocking=False):
            with self._cond:
                if self._stopping:
                    return
                self._cond.wait(CLAIM_POLL_S)
        device.claimed = True
        hung = False
        try:
            hung = self._serve(device)
        finally:
            if not hung:  # a hung call may still be running on the device: the claim goes with the process
                claim.release()
                device.claimed = False

    def _serve(self, device: _Device) -> bool:
        """Load the resident renderer once, then render batches until the run ends; True if the device hung."""
        profile = self.ctx.profile
        started = time.perf_counter()
        try:
            renderer, lease = self.res.models.renderer(
                profile.renderer_name, profile.renderer_options, device.name
            )
            info = renderer.describe()
        except Exception as error:
            with self._cond:
                device.usage.errors += 1
                self._take_out(device, f"could not load the renderer: {describe_error(error)}")
                self._cond.notify_all()
            return False
        device.usage.load_s = time.perf_counter() - started
        caller = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"onmodel-render-{device.name}")
        try:
            while True:
                batch = self._take_batch(device)
                if batch is None:
                    return False
                claimed = self._claim(device, batch, info)
                if claimed is not None and self._render(device, renderer, lease, info, caller, claimed):
                    return True
        finally:
            caller.shutdown(wait=False)

    def _claim(self, device: _Device, batch: _Batch, info: dict[str, Any]) -> _Batch | None:
        """Claim the batch's jobs for this run right before the device call; the batch of jobs to render now.

        Jobs another run rendered since this run planned them are finished as reused; jobs another live run holds
        wait for its claim to end. None when nothing is left to render (the device's turn is given back).
        """
        claimed = claims.claim_for_render(batch.placed, self.ctx, self.res, self.settings.claim_lease_s)
        with self._cond:
            if claimed.held:
                if not self._waiting:
                    self._recheck_at = time.perf_counter() + self.settings.claim_poll_s
                self._waiting.extend(job.item for job in claimed.held)
            if claimed.reused:
                self._to_finish.append(
                    _Rendered(replace(batch, placed=[]), {}, {}, info, reused=claimed.reused)
                )
            if not claimed.render:
                device.rendering -= 1
            self._cond.notify_all()
        return replace(batch, placed=claimed.render) if claimed.render else None

    def _take_batch(self, device: _Device) -> _Batch | None:
        """The first due batch, once the CPU has room for its result; None when the run ends for this device."""
        with self._cond:
            while True:
                if self._stopping or not device.active:
                    return None
                if len(self._to_finish) < self._room():
                    now = time.perf_counter()
                    for index, batch in enumerate(self._ready):
                        if batch.not_before <= now:
                            del self._ready[index]
                            device.rendering += 1
                            if device.rendering != 1:
                                raise AssertionError(f"{device.name} was given a second batch at once.")
                            return batch
                self._cond.wait(self._wait_s())

    def _render(
        self,
        device: _Device,
        renderer: Renderer,
        lease: Any,
        info: dict[str, Any],
        caller: ThreadPoolExecutor,
        batch: _Batch,
    ) -> bool:
        """One batch on the device under the watchdog; True if the device hung (it is then taken out)."""
        jobs = [placed.job for placed in batch.placed]
        started = time.perf_counter()
        error: BaseException | None = None
        hung = False
        images: dict[str, RenderedImage] = {}
        failures: dict[str, str] = {}
        future = caller.submit(stages.render_on_device, renderer, lease, jobs)
        try:
            images, failures = future.result(timeout=self.settings.batch_timeout_s)
        except Exception:
            # A TimeoutError may be the watchdog's (the call still runs: hung) or the renderer's own (transient).
            if not future.done():
                hung = True
            elif future.exception() is None:
                images, failures = future.result()  # it finished just as the watchdog fired
            else:
                error = future.exception()
                if error is not None and not is_transient(error):
                    raise error from None
        busy = time.perf_counter() - started
        if isinstance(error, DeviceOutOfMemoryError):
            free_device_memory(renderer, device.name)
        with self._cond:
            device.rendering -= 1
            device.usage.busy_s += busy
            if hung:
                device.usage.errors += 1
                self._take_out(
                    device, f"a batch ran past the {self.settings.batch_timeout_s:g} s watchdog (hung)"
                )
                self._retry(batch, f"TimeoutError: {device.name} hung", delay=False)
            elif error is not None:
                device.usage.errors += 1
                device.consecutive_errors += 1
                if isinstance(error, DeviceOutOfMemoryError) and len(batch.placed) > 1:
                    half = len(batch.placed) // 2
                    for part in (batch.placed[:half], batch.placed[half:]):  # smaller batches may fit
                        self._retry(replace(batch, placed=part), describe_error(error), delay=False)
                else:
                    self._retry(batch, describe_error(error), delay=True)
                if device.consecutive_errors >= self.settings.device_failures:
                    self._take_out(
                        device,
                        f"{device.consecutive_errors} errors in a row (last: {describe_error(error)})",
                    )
            else:
                device.consecutive_errors = 0
                device.usage.batches += 1
                device.usage.jobs += len(jobs)
                self._to_finish.append(_Rendered(batch, images, failures, info, busy / max(1, len(jobs))))
            self._cond.notify_all()
        return hung

    def _retry(self, batch: _Batch, reason: str, *, delay: bool) -> None:
        """Back in the queue for any device (after the backoff), or failed once its retries are spent."""
        batch.attempt += 1
        if batch.attempt > self.settings.retries:
            self._fail_batch(batch, f"render failed after {self.settings.retries} retries: {reason}")
            return
        wait = backoff_s(self.settings.retry_delay_s, batch.attempt) if delay else 0.0
        batch.not_before = time.perf_counter() + wait
        self._route_ready(batch)
