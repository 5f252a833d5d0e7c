"""Two runs at once never render one job twice: a job is claimed in the state store right before it renders.

A nightly run and an upload run over overlapping products (one host or many, one state store) plan the same
jobs. Before a micro-batch goes to its device, the device pool claims the batch's jobs (`claim_for_render`,
one statement per batch) and re-reads their states:

- a job this run now holds whose state another run changed since this run planned it, and which is current
  (produced with this photo and config, master stored), is reused like a skipped job, not rendered again;
- a job this run holds otherwise renders; its claim is released once the job is finished or failed;
- a job another live run holds waits (`recheck_waiting`): when that claim ends, the job is reused if the other
  run produced it, rendered here if it failed, so this run's manifest still covers every row.

Claims are held only from the device's turn to the batch's finish, and a run never waits while it holds a
claim it is not rendering, so two runs waiting on each other cannot deadlock. A `LeaseRenewer` extends the
run's leases while the process lives; a holder killed with -9 is void at once on its own host (the claim
names its process) and after its lease elsewhere.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Generic, TypeVar

from catalog.state import JobState
from pipelines.production.layout import sidecar_key
from pipelines.production.stages import BatchItem, PlacedJob, Resources, RunContext

DEFAULT_LEASE_S = 120.0  # run.claim_lease_s: how long a claim outlives its holder on another host
DEFAULT_POLL_S = 1.0  # run.claim_poll_s: how often jobs waiting for another run's claim are looked at again

_Job = TypeVar("_Job", PlacedJob, BatchItem)  # a placed job of a batch, or a job waiting for its claim


@dataclass
class Claimed(Generic[_Job]):
    """Jobs after a claim: to render here, reused from another run's render, still held by another run."""

    render: list[_Job] = field(default_factory=list)
    reused: list[tuple[_Job, JobState]] = field(default_factory=list)
    held: list[_Job] = field(default_factory=list)


def rendered_meanwhile(item: BatchItem, state: JobState | None, ctx: RunContext, res: Resources) -> bool:
    """Whether another run rendered this job since this run planned it, with this photo and config."""
    if state is None or state.updated_at == item.product.seen.get(item.plan.job_id, ""):
        return False  # never recorded, or as the plan saw it: not changed since
    if not state.is_current(item.product.image_hash, ctx.fingerprint):
        return False  # failed, queued, or rendered from another photo or config: render it here
    master = res.layout.master_image(item.plan.sku, item.plan.job_id)
    return res.storage.exists(master) and res.storage.exists(sidecar_key(master))


def reuse_reason(state: JobState) -> str:
    """The manifest's reason for a job another run rendered while this one had it planned."""
    return f"rendered by the concurrent run {state.last_run_id or '(unknown)'} with this image and config"


def claim_for_render(
    placed: Sequence[PlacedJob], ctx: RunContext, res: Resources, lease_s: float
) -> Claimed[PlacedJob]:
    """Claim a batch's jobs for this run (one statement), then sort them by what the store says now."""
    return _claim(placed, lambda job: job.item, ctx, res, lease_s)


def recheck_waiting(
    items: Sequence[BatchItem], ctx: RunContext, res: Resources, lease_s: float
) -> Claimed[BatchItem]:
    """Jobs that waited for another run's claim, claimed again (one statement) and sorted like a batch."""
    return _claim(items, lambda item: item, ctx, res, lease_s)


def _claim(
    jobs: Sequence[_Job],
    item_of: Callable[[_Job], BatchItem],
    ctx: RunContext,
    res: Resources,
    lease_s: float,
) -> Claimed[_Job]:
    # 1. The claim: jobs another live run holds are left out.
    job_ids = [item_of(job).plan.job_id for job in jobs]
    mine = res.store.claim(job_ids, ctx.run_id, lease_s)
    # 2. The states of what this run holds, read after the claim: a render that ended since planning shows.
    states = res.store.get_many([job_id for job_id in job_ids if job_id in mine])
    claimed: Claimed[_Job] = Claimed()
    for job, job_id in zip(jobs, job_ids, strict=True):
        if job_id not in mine:
            claimed.held.append(job)
        elif rendered_meanwhile(item_of(job), states.get(job_id), ctx, res):
            claimed.reused.append((job, states[job_id]))
        else:
            claimed.render.append(job)
    return claimed


class LeaseRenewer:
    """Extends a run's claims in the store every `lease_s / 3` seconds (one statement) until stopped."""

    def __init__(self, res: Resources, run_id: str, lease_s: float) -> None:
        self.res, self.run_id, self.lease_s = res, run_id, lease_s
        self.renewals = 0
        self.last_error = (
            ""  # the latest failed renewal (the store was unreachable); the next one tries again
        )
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> LeaseRenewer:
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="onmodel-claim-lease", daemon=True)
            self._thread.start()
        return self

    def stop(self, timeout_s: float = 5.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)

    def _loop(self) -> None:
        while not self._stop.wait(self.lease_s / 3):
            try:
                self.res.store.renew(self.run_id, self.lease_s)
            except Exception as error:  # a store outage must not end the run; the lease may lapse meanwhile
                self.last_error = f"{type(error).__name__}: {error}"
            else:
                self.renewals += 1
