"""Run bookkeeping: which products are ready, which batches to submit, when a product is complete.

A plain object the flow drives (and a worker pool later): it never runs a step itself, so it is unit-tested
without Prefect, models or files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, overload

from catalog.record_spool import record_skus
from catalog.schema import ProductRecord
from pipelines.production.outcomes import (
    JobOutcome,
    ProductOutcome,
    ProductStateName,
    RejectRecord,
    ReusedJobs,
    product_state,
)
from pipelines.production.spool import MemorySpool, Spool
from pipelines.production.stages import BatchItem, PreparedProduct

MAX_REASON_CHARS = 500
# Adaptive chunks: about this many Prefect task runs per device (load balance, progress, retry granularity),
# each between these sizes (orchestration: ~25 ms of flow + server time per task run).
CHUNKS_PER_DEVICE = 8
MIN_CHUNK, MAX_CHUNK = 4, 256
# One host runs this many chunks at once (the flow's thread pool): they keep the device pool fed across chunk
# boundaries, and only their records are read from the run's record spool.
CHUNKS_IN_FLIGHT = 3
# Workers fed separately (Dask: one pool per GPU worker) finish together only if the last chunks are small: a
# tapered chunk is at most the products left / (TAPER_CHUNKS_PER_WORKER x workers), down to one product.
TAPER_CHUNKS_PER_WORKER = 2


@dataclass(frozen=True)
class ProgressEvent:
    """How far one stage is: `done` of `total` (total grows while products are prepared)."""

    stage: Literal["prepare", "render"]
    done: int
    total: int


ProgressCallback = Callable[[ProgressEvent], None]


class RunBook:
    """Tracks one run: products in, micro-batches out, product outcomes once all their jobs are in.

    spool: where final outcomes go (a product is final once its contact sheet is done or failed, or when it
    arrives final: rejected, failed, done elsewhere); a run's book spools to a file (spool.OutcomeSpool) so
    only a compact index per product stays in memory, a chunk's book keeps them (the default).
    """

    def __init__(
        self,
        records: Sequence[ProductRecord],
        *,
        batch_size: int,
        default_poses: Callable[[str], Sequence[str]],
        rejects: Iterable[RejectRecord] = (),
        on_progress: ProgressCallback | None = None,
        spool: Spool | None = None,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1; got {batch_size}.")
        self.batch_size = batch_size
        # The run's products (their records are the caller's): sku -> that same string until the product is
        # spooled, then None. One entry a product, and the spool's index keeps the very string (not a copy).
        self._skus: dict[str, str | None] = {sku: sku for sku in record_skus(records)}
        self.rejects: list[RejectRecord] = list(rejects)
        self._default_poses = default_poses
        self._on_progress = on_progress
        self._spool: Spool = spool if spool is not None else MemorySpool()
        # Only products still open are held: prepared, with their jobs so far, or complete awaiting a sheet.
        self._prepared: dict[str, PreparedProduct] = {}
        self._jobs: dict[str, list[JobOutcome]] = {}
        self._remaining: dict[str, int] = {}
        self._open: dict[str, ProductOutcome] = {}  # complete, contact sheet pending
        self._final = 0  # products spooled
        self._pending: list[BatchItem] = []
        self._complete: list[str] = []
        self._prepared_count = 0
        self._jobs_total = 0
        self._jobs_done = 0

    # Products coming in ---------------------------------------------------------------------------------

    def product_prepared(self, prepared: PreparedProduct) -> list[list[BatchItem]]:
        """Take a prepared product; returns the micro-batches that are now full and should be submitted."""
        record = prepared.record
        self._count_prepared()
        if prepared.rejected is not None:
            self.rejects.append(prepared.rejected)
            outcome = self._outcome(record, "rejected", reason=prepared.rejected.reason)
            outcome.column = prepared.rejected.column
            self._finalize(outcome)
            return []
        self._prepared[record.sku] = prepared
        # A product taken whole keeps its compact ReusedJobs (no todo: nothing is appended to it).
        self._jobs[record.sku] = [] if isinstance(prepared.skipped, ReusedJobs) else list(prepared.skipped)
        self._remaining[record.sku] = len(prepared.todo)
        self._jobs_total += len(prepared.todo) + len(prepared.skipped)
        self._jobs_done += len(prepared.skipped)
        self._emit("render", self._jobs_done, self._jobs_total)
        if not prepared.todo:
            self._complete_product(record.sku)
        self._pending.extend(BatchItem(plan, prepared) for plan in prepared.todo)
        full = []
        while len(self._pending) >= self.batch_size:
            full.append(self._pending[: self.batch_size])
            self._pending = self._pending[self.batch_size :]
        return full

    def product_failed(self, record: ProductRecord, reason: str) -> None:
        """A product whose preparation failed after its retries: recorded, its jobs never planned."""
        self._count_prepared()
        self._finalize(self._outcome(record, "failed", reason=reason[:MAX_REASON_CHARS]))

    def product_done(self, outcome: ProductOutcome, reject: RejectRecord | None = None) -> None:
        """A product finished elsewhere (a device pool's chunk), with its jobs and its product-level reject."""
        if outcome.sku not in self._skus:
            raise ValueError(f"product {outcome.sku} is not in this run.")
        if self._has_outcome(outcome.sku):
            raise ValueError(f"product {outcome.sku} came back twice.")
        self._count_prepared()
        if reject is not None:
            self.rejects.append(reject)
        self._jobs_total += len(outcome.jobs)
        self._jobs_done += len(outcome.jobs)
        self._emit("render", self._jobs_done, self._jobs_total)
        self._finalize(outcome)  # its sheet is done (or failed) already

    def remaining_batches(self) -> list[list[BatchItem]]:
        """The last, partial micro-batch (call once every product is in)."""
        pending, self._pending = self._pending, []
        return [pending[start : start + self.batch_size] for start in range(0, len(pending), self.batch_size)]

    # Jobs coming back -----------------------------------------------------------------------------------

    def batch_done(self, outcomes: Sequence[JobOutcome]) -> None:
        """Record a batch's job outcomes; products whose last job came in become complete."""
        for job in outcomes:
            if self._remaining.get(job.sku, 0) <= 0:
                raise ValueError(f"job {job.job_id} came back for {job.sku}, which expects no more jobs.")
            self._jobs[job.sku].append(job)
            self._remaining[job.sku] -= 1
            self._jobs_done += 1
            if self._remaining[job.sku] == 0:
                self._complete_product(job.sku)
        self._emit("render", self._jobs_done, self._jobs_total)

    def take_complete(self) -> list[tuple[ProductOutcome, PreparedProduct]]:
        """Products completed since the last call, with their preparation (for their contact sheets)."""
        complete, self._complete = self._complete, []
        return [(self._open[sku], self._prepared[sku]) for sku in complete if sku in self._open]

    # Contact sheets -------------------------------------------------------------------------------------

    def sheet_done(self, sku: str, key: str) -> None:
        product = self._open[sku]
        product.sheet = key
        self._finalize(product)

    def sheet_failed(self, sku: str, reason: str) -> None:
        """A missing sheet is reported on the product; its images stay."""
        product = self._open[sku]
        product.flags.append(f"contact sheet failed: {reason}")
        self._finalize(product)

    # The result -----------------------------------------------------------------------------------------

    @property
    def finished(self) -> bool:
        """Every product has an outcome and every job is in."""
        return (
            self._final + len(self._open) == len(self._skus)
            and not self._pending
            and not any(self._remaining.values())
        )

    def products(self) -> Sequence[ProductOutcome]:
        """Every product's outcome in CSV row order; raises if the run is not finished (nothing is lost).

        Products still waiting for a contact sheet are final now (without one). A spooled book's outcomes are
        read on access.
        """
        missing = sorted(sku for sku in self._skus if not self._has_outcome(sku))
        open_jobs = sorted(sku for sku, left in self._remaining.items() if left)
        if missing or open_jobs:
            raise RuntimeError(
                f"run book not finished: products without outcome {missing[:5]}, with open jobs {open_jobs[:5]}."
            )
        for product in list(self._open.values()):
            self._finalize(product)
        return self._spool.outcomes()

    # Internals ------------------------------------------------------------------------------------------

    def _complete_product(self, sku: str) -> None:
        prepared = self._prepared[sku]
        record = prepared.record
        jobs: Sequence[JobOutcome]
        reason = ""
        if isinstance(prepared.skipped, ReusedJobs):
            jobs = prepared.skipped  # every job reused, in plan order
        else:
            poses = record.poses or self._default_poses(record.garment_class.value)
            order = {pose: i for i, pose in enumerate(poses)}
            jobs = sorted(self._jobs[sku], key=lambda j: (order.get(j.pose, len(order)), j.pose, j.variant))
            reason = "; ".join(j.reason for j in jobs if j.state == "failed")[:MAX_REASON_CHARS]
        outcome = self._outcome(record, product_state(jobs), reason=reason)
        outcome.flags = list(prepared.flags)
        outcome.jobs = jobs
        del self._jobs[sku], self._remaining[sku]
        self._open[sku] = outcome
        self._complete.append(sku)

    def _has_outcome(self, sku: str) -> bool:
        return self._skus.get(sku, "") is None or sku in self._open  # None: spooled

    def _finalize(self, outcome: ProductOutcome) -> None:
        """Spool a final outcome; nothing of the product is held after this (its preparation dropped)."""
        sku = outcome.sku
        self._open.pop(sku, None)
        self._prepared.pop(sku, None)
        canonical = self._skus.get(sku)
        if canonical is not None:  # a product of the run, spooled for the first time
            self._skus[sku] = None
            self._final += 1
            outcome.sku = canonical  # an equal string: the spool's index shares the book's
        self._spool.append(outcome)

    @staticmethod
    def _outcome(record: ProductRecord, state: ProductStateName, reason: str = "") -> ProductOutcome:
        return ProductOutcome(
            record.sku,
            record.row,
            state,
            reason=reason,
            title=record.title,
            source_rows=list(record.source_rows),
            category=record.category,
            source_identity=record.identity,
            variant_skus=list(record.variant_skus),
            covered=[{"row": row.row, "sku": row.sku, "describe": row.describe()} for row in record.covered],
        )

    def _count_prepared(self) -> None:
        self._prepared_count += 1
        self._emit("prepare", self._prepared_count, len(self._skus))

    def _emit(self, stage: Literal["prepare", "render"], done: int, total: int) -> None:
        if self._on_progress is not None:
            self._on_progress(ProgressEvent(stage, done, total))


def chunk_size(products: int, devices: int, setting: int | str = "auto") -> int:
    """Products per Prefect task run: the profile's `run.chunk_size`, or adaptive ('auto'): about
    CHUNKS_PER_DEVICE chunks per device, each MIN_CHUNK..MAX_CHUNK products (so task runs grow with
    products / chunk, and 100k products are ~400 task runs, not 100k)."""
    if setting != "auto":
        try:
            size = int(setting)
        except (TypeError, ValueError):
            raise ValueError(
                f"run.chunk_size must be auto or a whole number >= 1; got {setting!r}."
            ) from None
        if size < 1:
            raise ValueError(f"run.chunk_size must be auto or >= 1; got {setting!r}.")
        return size
    wanted = -(-max(1, products) // (CHUNKS_PER_DEVICE * max(1, devices)))
    return max(MIN_CHUNK, min(MAX_CHUNK, wanted))


class Chunks(Sequence[list[ProductRecord]]):
    """A run's records cut into chunks (start, stop), each read only when it is taken: a spooled run's records
    (catalog.record_spool) stay on disk until their chunk is submitted."""

    def __init__(self, records: Sequence[ProductRecord], bounds: Sequence[tuple[int, int]]) -> None:
        self._records = records
        self.bounds = list(bounds)

    def __repr__(self) -> str:
        return f"Chunks({len(self._records)} records, sizes {[stop - start for start, stop in self.bounds]})"

    def __len__(self) -> int:
        return len(self.bounds)

    @overload
    def __getitem__(self, index: int) -> list[ProductRecord]: ...

    @overload
    def __getitem__(self, index: slice) -> list[list[ProductRecord]]: ...

    def __getitem__(self, index: int | slice) -> list[ProductRecord] | list[list[ProductRecord]]:
        if isinstance(index, slice):
            return [self[number] for number in range(len(self))[index]]
        start, stop = self.bounds[index]
        return list(self._records[start:stop])


def chunks(records: Sequence[ProductRecord], size: int) -> Chunks:
    """The records in CSV order, `size` at a time."""
    if size < 1:
        raise ValueError(f"chunks needs size >= 1; got {size}.")
    count = len(records)
    return Chunks(records, [(start, min(start + size, count)) for start in range(0, count, size)])


def tapered_chunks(records: Sequence[ProductRecord], size: int, workers: int) -> Chunks:
    """The records in CSV order, `size` at a time while many are left, then in ever smaller chunks (guided
    self-scheduling): each at most the products left / (TAPER_CHUNKS_PER_WORKER x workers), rounded up.

    For workers that each render only their own chunks (Dask): whichever worker takes the last chunks, none is
    left with more than a small chunk's work while the others are idle. About 2 x workers x ln(size) more chunks
    than `chunks` gives; one worker gets plain `chunks`.
    """
    if size < 1 or workers < 1:
        raise ValueError(f"tapered_chunks needs size >= 1 and workers >= 1; got {size} and {workers}.")
    if workers == 1:  # one worker takes every chunk: nothing to even out, smaller chunks would only cost
        return chunks(records, size)
    bounds: list[tuple[int, int]] = []
    start, count = 0, len(records)
    while start < count:
        step = min(size, -(-(count - start) // (TAPER_CHUNKS_PER_WORKER * workers)))
        bounds.append((start, start + step))
        start += step
    return Chunks(records, bounds)
