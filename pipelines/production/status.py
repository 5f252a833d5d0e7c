"""What an output folder holds: the catalogue's products and jobs per state, and each run's counts."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from pipelines.production.catalogue import read_entries
from pipelines.production.layout import OutputLayout, Storage, read_json
from pipelines.production.outcomes import RunReport

LAYOUT = OutputLayout()
RUN_COUNTS = ("products", "produced", "skipped", "rejected", "failed")


@dataclass(frozen=True)
class RunLine:
    """One run's report in brief."""

    run_id: str
    started_at: str
    csv: str
    profile: str
    counts: dict[str, int]


@dataclass(frozen=True)
class FolderStatus:
    """The catalogue's products and jobs per latest state, and the runs that made them (oldest first)."""

    products: dict[str, int] = field(default_factory=dict)
    jobs: dict[str, int] = field(default_factory=dict)
    runs: list[RunLine] = field(default_factory=list)

    def describe(self) -> str:
        """The text `onmodel status` prints."""
        if not self.runs and not self.products:
            return "no onmodel run has written to this folder yet."
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
        return "\n".join(lines)


def _counts(counter: dict[str, int]) -> str:
    return ", ".join(f"{state} {count}" for state, count in sorted(counter.items())) or "none"


def folder_status(storage: Storage, layout: OutputLayout = LAYOUT) -> FolderStatus:
    """Read catalogue.json and every runs/<id>/summary.json of an output folder (nothing is written)."""
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
    return FolderStatus(products=dict(products), jobs=dict(jobs), runs=runs)
