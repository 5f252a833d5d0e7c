"""A run's own record in the state store: what started it, over which CSV and profile, and how it ended; and,
after a run over the whole catalogue, the catalogue's products (recorded, seen, retired).

`onmodel status`, the review app and the next nightly read it; the job records name the run that made them.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.record_spool import record_skus
from catalog.schema import ProductRecord
from catalog.state import ProductSighting, RunStatus, StateStore
from pipelines.production.outcomes import RunReport
from pipelines.production.stages import job_render_fields
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


# The catalogue's products ------------------------------------------------------------------------------------


def is_full_catalogue(trigger: str, only: Sequence[str] | None) -> bool:
    """A run over the whole catalogue (nightly, or `onmodel run` without --only): it may retire products.

    An upload lists only its new rows and --only some SKUs: neither says anything about the products it omits.
    """
    return trigger != "upload" and not only


def render_fields(record: ProductRecord) -> dict[str, Any]:
    """The product fields that affect its images: each job's (stages.job_render_fields), poses and variants."""
    return {**job_render_fields(record), "poses": list(record.poses), "variants": record.variants}


def source_identity(record: ProductRecord) -> dict[str, Any]:
    """Where the product's photo comes from, and who the product is in its source system (if known)."""
    identity: dict[str, Any] = {"image": record.image.raw}
    if record.identity:
        identity["source"] = record.identity
    return identity


@dataclass(frozen=True)
class CatalogueBookkeeping:
    """What a full catalogue run recorded about the catalogue's products."""

    recorded: int  # products recorded with their photo's hash and render fields
    seen: int  # products listed without a usable photo or row (rejected): marked seen, not retired
    retired: list[str] = field(default_factory=list)  # products no longer listed: marked retired, files kept
    not_retired_because: str = ""  # why retirement was skipped this run ("" when it ran)


class CatalogueSightings:
    """A run over the whole catalogue records its products chunk by chunk, as the chunks come back (so the photo
    hashes are never held for the whole run); at the end, `finish` marks the listed but unplanned products seen
    and retires the ones the catalogue no longer lists.

    One statement per 1000 products. Retired products keep their files and come back (unretired) when a later
    run lists them.
    """

    def __init__(self, run: RunStart, store: StateStore) -> None:
        self._run, self._store = run, store
        self.recorded = 0
        self._unplanned: set[str] = set()  # listed, but no photo hash: rejected or failed before planning

    def chunk_done(self, records: Iterable[ProductRecord], image_hashes: Mapping[str, str]) -> None:
        """A chunk's products: the planned ones (image_hashes: sku -> photo hash) recorded with their source
        identity and render fields; the others remembered, to be marked seen."""
        sightings = []
        for record in records:
            if record.sku in image_hashes:
                sightings.append(
                    ProductSighting(
                        record.sku, image_hashes[record.sku], source_identity(record), render_fields(record)
                    )
                )
            else:
                self._unplanned.add(record.sku)
        if sightings:
            self.recorded += self._store.record_products(sightings, self._run.ctx.run_id)

    def finish(self) -> CatalogueBookkeeping:
        """Listed but unplanned products (and rejected rows naming a SKU) marked seen, so never retired; then
        the products the catalogue no longer lists retired, unless the CSV itself was unusable."""
        run, run_id = self._run, self._run.ctx.run_id
        unplanned = self._unplanned | {reject.sku for reject in run.rejects if reject.sku}
        self._store.mark_seen(sorted(unplanned), run_id)
        if not run.records or any(reject.row == 0 for reject in run.rejects):
            why = "the CSV gave no products" if not run.records else "the CSV had a file-level error"
            return CatalogueBookkeeping(self.recorded, len(unplanned), [], why)
        present = {*record_skus(run.records)} | unplanned
        return CatalogueBookkeeping(
            self.recorded, len(unplanned), self._store.retire_missing(present, run_id)
        )
