"""A run's own record in the state store: what started it, over which CSV and profile, and how it ended.

`onmodel status`, the review app and the next nightly read it; the job records name the run that made them.
"""

from __future__ import annotations

from catalog.state import RunStatus, StateStore
from pipelines.production.outcomes import RunReport
from pipelines.production.validate import RunStart

# Deployment names (flows/serve.py, prefect.yaml) -> the trigger recorded with the run.
TRIGGERS = {"nightly-catalog": "nightly", "csv-upload": "upload"}


def trigger_of(deployment: str | None) -> str:
    """'nightly' / 'upload' for the served deployments, 'cli' for a run started by hand."""
    return TRIGGERS.get(deployment or "", "deployment" if deployment else "cli")


def record_start(run: RunStart, store: StateStore, trigger: str) -> None:
    store.record_run_started(run.ctx.run_id, profile=run.ctx.profile.name, csv=run.csv_path, trigger=trigger)


def record_end(report: RunReport, store: StateStore) -> None:
    status: RunStatus = "failed" if report.counts.get("failed") else "completed"
    store.record_run_finished(report.run_id, counts=report.counts, status=status)


def record_crash(run_id: str, store: StateStore) -> None:
    """The run stopped on an error of its own (a bug, an interrupt): say so, release its claims."""
    store.record_run_finished(run_id, counts={}, status="crashed")
