"""What an output folder holds: the catalogue's products and jobs per state, each run's counts, and what the
state store (the folder's state.sqlite, or the shared store of $ONMODEL_STATE_URL) records per state and run."""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass, field

from catalog.state import STATE_URL_ENV, SQLJobStore, choose_state_url, open_job_store
from pipelines.production.catalogue import read_entries
from pipelines.production.layout import STATE_DB_NAME, OutputLayout, Storage, read_json
from pipelines.production.outcomes import RunReport

LAYOUT = OutputLayout()
RUN_COUNTS = ("products", "produced", "skipped", "rejected", "failed")
RETIRED_SHOWN = 20


@dataclass(frozen=True)
class RunLine:
    """One run's report in brief."""

    run_id: str
    started_at: str
    csv: str
    profile: str
    counts: dict[str, int]


@dataclass(frozen=True)
class StoreRunLine:
    """One run as the state store knows it: how it started and ended, and its jobs' latest states."""

    run_id: str
    trigger: str  # "" for attempts recorded without a run record
    status: str
    started_at: str
    jobs: dict[str, int]


@dataclass(frozen=True)
class StoreStatus:
    """The state store's counts: jobs per state, per run of their latest attempt, products, reviews."""

    location: str
    schema_version: int
    jobs: dict[str, int]
    runs: list[StoreRunLine]
    products: int
    retired: int
    reviews: dict[str, int]
    # (product key, the run that retired it, when), latest first, at most RETIRED_SHOWN.
    retired_products: list[tuple[str, str, str]] = field(default_factory=list)

    def describe(self) -> list[str]:
        lines = [
            f"state store: {self.location} (schema {self.schema_version})",
            f"  jobs: {sum(self.jobs.values())} ({_counts(self.jobs)}); products: {self.products} "
            f"({self.retired} retired); reviews: {_counts(self.reviews)}",
        ]
        if self.retired:
            more = (
                f" (latest {len(self.retired_products)} of {self.retired})"
                if self.retired > RETIRED_SHOWN
                else ""
            )
            lines.append(f"  retired products (no longer in the catalogue; their files are kept){more}:")
            lines.extend(f"    {key}  retired by run {run} at {at}" for key, run, at in self.retired_products)
        if self.runs:
            lines.append(f"  jobs by the run of their latest attempt ({len(self.runs)}):")
        for run in self.runs:
            name = run.run_id or "(before run ids were recorded)"
            how = f"{run.trigger} {run.status}" if run.trigger else "no run record"
            lines.append(f"    {name}  {how}  ({_counts(run.jobs)})")
        return lines


@dataclass(frozen=True)
class FolderStatus:
    """The catalogue's products and jobs per latest state, and the runs that made them (oldest first)."""

    products: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    runs: list[RunLine] = field(default_factory=list)
    store: StoreStatus | None = None
    retired_files: int = 0  # under retired/: images of poses and variants products no longer plan

    def describe(self) -> str:
        """The text `onmodel status` prints."""
        if not self.runs and not self.products:
            if self.store is None or not (any(self.store.jobs.values()) or self.store.products):
                return "no onmodel run has written to this folder yet."
            return "\n".join(
                ["no run report in this folder.", *self._retired_files(), *self.store.describe()]
            )
        lines = [
            f"catalogue: {sum(self.products.values())} products ({_counts(self.products)}); "
            f"{sum(self.jobs.values())} images ({_counts(self.jobs)})",
            f"runs ({len(self.runs)}):",
        ]
        for run in self.runs:
            if not run.counts:
                lines.append(f"  {run.run_id}  (written by an older onmodel: no counts)")
                continue
            counts = ", ".join(f"{k} {run.counts.get(k, 0)}" for k in RUN_COUNTS)
            lines.append(f"  {run.run_id}  {run.started_at}  {run.profile:<8} {run.csv}  ({counts})")
        lines.extend(self._retired_files())
        if self.store is not None:
            lines.extend(self.store.describe())
        return "\n".join(lines)

    def _retired_files(self) -> list[str]:
        if not self.retired_files:
            return []
        return [
            f"retired/: {self.retired_files} files of jobs their products no longer plan (onmodel prune "
            "deletes them)"
        ]


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(counter.items())) or "none"


def store_status(store: SQLJobStore) -> StoreStatus:
    """The state store's counts per state, per run, of products and of review decisions."""
    by_run = store.counts_by_run()
    recorded = {run.run_id: run for run in store.list_runs()}
    lines = []
    for run_id in [*recorded, *sorted(set(by_run) - set(recorded))]:  # recorded runs oldest first
        run = recorded.get(run_id)
        jobs = by_run.get(run_id, {})
        if run is None:
            lines.append(StoreRunLine(run_id, "", "", "", jobs))
        else:
            lines.append(StoreRunLine(run_id, run.trigger, run.status, run.started_at, jobs))
    products = store.get_products()
    retired = sorted(
        (product for product in products.values() if product.retired),
        key=lambda product: (product.retired_at or "", product.product_key),
        reverse=True,
    )
    return StoreStatus(
        location=store.location,
        schema_version=store.schema_version,
        jobs=store.counts_by_status(),
        runs=lines,
        products=len(products),
        retired=len(retired),
        reviews=store.counts_by_decision(),
        retired_products=[
            (product.product_key, product.retired_run or "", product.retired_at or "")
            for product in retired[:RETIRED_SHOWN]
        ],
    )


def open_status_store(storage: Storage, state_url: str | None = None) -> SQLJobStore | None:
    """The folder's state store, or None when it has none: a default SQLite file is never created here.

    The store is a configured URL, else $ONMODEL_STATE_URL, else the folder's state.sqlite (opening a file of an
    older layout migrates it, as any run would).
    """
    default = storage.local_path(STATE_DB_NAME)
    if not (state_url or os.environ.get(STATE_URL_ENV)) and not default.is_file():
        return None
    return open_job_store(choose_state_url(default, state_url))


def folder_status(
    storage: Storage, layout: OutputLayout = LAYOUT, *, state_url: str | None = None
) -> FolderStatus:
    """Read catalogue.json, every runs/<id>/summary.json and the state store's counts (nothing is written)."""
    # 1. The catalogue: each product's and job's latest state.
    document = read_json(storage, layout.catalogue) if storage.exists(layout.catalogue) else None
    entries = read_entries(document)
    products = Counter(str(entry.product.state) for entry in entries.values())
    jobs = Counter(str(job.state) for entry in entries.values() for job in entry.product.jobs)
    # 2. The runs, oldest first (run ids are UTC timestamps).
    root = storage.local_path(layout.runs)
    runs = []
    for run_id in sorted(p.parent.name for p in root.glob("*/summary.json")) if root.is_dir() else []:
        try:
            report = RunReport.from_dict(read_json(storage, layout.run_summary(run_id)))
        except (ValueError, TypeError, KeyError):  # a summary from before the versioned run report
            runs.append(RunLine(run_id, "", "", "", {}))
            continue
        runs.append(RunLine(report.run_id, report.started_at, report.csv, report.profile, report.counts))
    retired_root = storage.local_path(layout.retired_root)
    retired_files = sum(p.is_file() for p in retired_root.rglob("*")) if retired_root.is_dir() else 0
    # 3. The state store, when the folder has one (or a shared one is configured).
    store = open_status_store(storage, state_url)
    if store is None:
        return FolderStatus(products=dict(products), jobs=dict(jobs), runs=runs, retired_files=retired_files)
    try:
        in_store = store_status(store)
    finally:
        store.close()
    return FolderStatus(
        products=dict(products), jobs=dict(jobs), runs=runs, store=in_store, retired_files=retired_files
    )
