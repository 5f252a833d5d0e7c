"""`onmodel retry --failed`: re-queue the jobs whose latest attempt failed, so the next run renders them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from catalog.state import JobState, StateStore


@dataclass(frozen=True)
class RetryPlan:
    """The failed jobs chosen for another try, and how many the store re-queued (0 on a dry run)."""

    location: str
    failed: list[JobState]
    requeued: int
    dry_run: bool = False

    @property
    def skus(self) -> list[str]:
        return sorted({job.sku for job in self.failed})

    def describe(self) -> str:
        """The text `onmodel retry --failed` prints."""
        if not self.failed:
            return f"no failed jobs in {self.location}; nothing to re-queue."
        verb = "would re-queue" if self.dry_run else "re-queued"
        count = len(self.failed) if self.dry_run else self.requeued
        lines = [
            f"{verb} {count} failed jobs of {len(self.skus)} products ({', '.join(self.skus)}); the next run "
            "over their CSV renders them."
        ]
        for job in self.failed:
            run = f", run {job.last_run_id}" if job.last_run_id else ""
            lines.append(f"  {job.job_id}  {job.last_error or job.reason} (attempts {job.attempts}{run})")
        return "\n".join(lines)


def requeue_failed_jobs(
    store: StateStore, *, only: Sequence[str] | None = None, dry_run: bool = False, location: str = ""
) -> RetryPlan:
    """Re-queue every failed job (or those of the `only` SKUs); a dry run only lists them."""
    # 1. The failed jobs, narrowed to the asked-for products.
    failed = store.failed_jobs()
    if only is not None:
        wanted = set(only)
        failed = [job for job in failed if job.sku in wanted]
    # 2. Re-queue exactly those (a job that failed after the listing waits for the next retry).
    if dry_run or not failed:
        return RetryPlan(location, failed, 0, dry_run)
    requeued = store.requeue_failed([job.job_id for job in failed])
    return RetryPlan(location, failed, requeued, dry_run)
