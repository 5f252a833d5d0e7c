"""Stale images never look current: when a product's plan drops poses or variants, their files are retired.

A run compares each product's jobs with the catalogue's previous entry for it; files of jobs no longer planned
move under retired/<run id>/ (same keys below it), so nothing is lost and nothing stale sits in images/.
`onmodel prune` deletes the retired folder for good.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pipelines.production.catalogue import CatalogueEntry
from pipelines.production.layout import LocalStorage, OutputLayout, Storage, sidecar_key
from pipelines.production.outcomes import JobOutcome, ProductOutcome

LAYOUT = OutputLayout()


def _job_files(job: JobOutcome) -> list[str]:
    """Every file key of a job: each preset's image and its sidecar."""
    images = dict.fromkeys([*job.outputs.values(), job.output])
    return [key for image in images if image for key in (image, sidecar_key(image))]


def retire_stale_jobs(
    previous: CatalogueEntry | None,
    product: ProductOutcome,
    run_id: str,
    storage: Storage,
    layout: OutputLayout,
) -> list[str]:
    """Move the files of the previous entry's jobs that this run no longer plans; the job ids retired.

    Only a product whose jobs were planned this run is compared: one rejected or failed before planning keeps
    its earlier images (nothing about its plan is known).
    """
    if previous is None or not product.jobs:
        return []
    planned = {job.job_id for job in product.jobs}
    retired = []
    for job in previous.product.jobs:
        if job.job_id in planned:
            continue
        for key in [*_job_files(job), layout.garment_mask(job.sku, job.job_id)]:
            if storage.exists(key):
                storage.move(key, layout.retired(run_id, key))
        retired.append(job.job_id)
    return retired


@dataclass(frozen=True)
class PruneResult:
    files: int
    bytes: int
    removed: bool

    def describe(self, root: Path) -> str:
        verb = "removed" if self.removed else "would remove"
        return f"{verb} {self.files} retired files ({self.bytes / 1e6:.1f} MB) under {root}"


def prune_retired(storage: LocalStorage, layout: OutputLayout = LAYOUT, dry_run: bool = False) -> PruneResult:
    """Delete the retired folder of an output folder (images of dropped poses and variants)."""
    root = storage.local_path(layout.retired_root)
    files = [path for path in root.rglob("*") if path.is_file()] if root.is_dir() else []
    size = sum(path.stat().st_size for path in files)
    if files and not dry_run:
        shutil.rmtree(root)
    return PruneResult(files=len(files), bytes=size, removed=not dry_run)
