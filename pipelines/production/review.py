"""What reviewers see and decide, without the web: runs, a run's gallery, a product's images, decisions, export.

The review app (webapp/review) is wiring around `ReviewDesk`. Reports are read from the output folder
(runs/<id>/summary.json, catalogue.json) and cached by file stamp, so a page of a 10k-product run does not
parse JSON again; verdicts come from the state store, whose history keeps every decision.
"""

from __future__ import annotations

import bisect
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from catalog.state import Decision, ReviewDecision, StateStore
from pipelines.presets import MASTER
from pipelines.production import catalogue
from pipelines.production.decisions import (
    ReviewState,
    check_decision,
    decision_on,
    image_state,
    product_state,
)
from pipelines.production.layout import LocalStorage, OutputLayout, read_json, sidecar_key
from pipelines.production.outcomes import JobOutcome, ProductOutcome, RunReport

UNDO_MARK = "↶ undo"  # the comment of a decision that takes back an earlier one
CATALOGUE_RUN = "catalogue"  # the pseudo-run id of the whole catalogue view
PAGE_SIZE = 48
LAYOUT = OutputLayout()


@dataclass(frozen=True)
class RunOverview:
    run_id: str
    started_at: str
    profile: str
    csv: str
    counts: dict[str, int]
    reviewable: int  # images with an output
    decided: int

    @property
    def progress(self) -> float:
        return self.decided / self.reviewable if self.reviewable else 0.0


@dataclass(frozen=True)
class ReviewImage:
    job: JobOutcome
    image: str  # the master image key
    verdict: ReviewDecision | None  # the decision in force on this render

    @property
    def state(self) -> ReviewState:
        return image_state(self.verdict)


@dataclass(frozen=True)
class ReviewProduct:
    product: ProductOutcome
    images: list[ReviewImage]
    source: str  # storage keys ('' when absent)
    cutout: str

    @property
    def state(self) -> ReviewState:
        return product_state([image.state for image in self.images])

    @property
    def cover(self) -> str:
        return self.images[0].image if self.images else ""


@dataclass(frozen=True)
class GalleryFilter:
    state: str = ""  # a ReviewState or ''
    flag: str = ""
    category: str = ""
    query: str = ""  # SKU / title substring, case-insensitive

    def matches(self, item: ReviewProduct) -> bool:
        product = item.product
        if self.state and item.state != self.state:
            return False
        if self.category and product.category != self.category:
            return False
        if self.flag and self.flag not in _flags(item):
            return False
        query = self.query.strip().casefold()
        return not query or query in product.sku.casefold() or query in product.title.casefold()


@dataclass(frozen=True)
class Gallery:
    run_id: str
    products: list[ReviewProduct]  # this page
    total: int  # matching the filter
    page: int
    pages: int
    flags: list[str]  # every flag in the run, for the filter
    categories: list[str]
    state_counts: dict[str, int] = field(default_factory=dict)


def _flags(item: ReviewProduct) -> set[str]:
    return {*item.product.flags, *(flag for image in item.images for flag in image.job.flags)}


def reviewable_jobs(product: ProductOutcome) -> list[JobOutcome]:
    """Jobs with an image to look at (produced this run or kept from before)."""
    return [job for job in product.jobs if job.state in ("produced", "skipped") and job.render_id]


class ReviewDesk:
    """One output folder's runs, galleries, product pages and decisions, for the review app."""

    def __init__(self, storage: LocalStorage, store: StateStore, layout: OutputLayout = LAYOUT) -> None:
        self.storage, self.store, self.layout = storage, store, layout
        self._reports: dict[str, tuple[tuple[int, int], RunReport]] = {}
        self._job_index: dict[str, tuple[RunReport, dict[str, JobOutcome]]] = {}
        # The decision in force per job, kept current by reading only what was recorded since (a 10k-product
        # gallery would otherwise query 60k jobs per page).
        self._in_force: dict[str, ReviewDecision] = {}
        self._last_decision = 0
        self._log: list[tuple[int, str]] = []  # (decision id, job id) of every decision read, in order
        self._items_cache: dict[str, tuple[RunReport, int, list[ReviewProduct], dict[str, int]]] = {}
        self._lock = threading.Lock()

    def verdicts(self) -> Mapping[str, ReviewDecision]:
        """The latest decision per job (every job of the store), current as of now."""
        with self._lock:
            while True:
                newer = self.store.decisions_after(self._last_decision)
                for record in newer:
                    self._in_force[record.job_id] = record
                    self._log.append((record.decision_id, record.job_id))
                    self._last_decision = max(self._last_decision, record.decision_id)
                if len(newer) < 100_000:
                    break
            return dict(self._in_force)

    # Reports ----------------------------------------------------------------------------------------------

    def _stamp(self, key: str) -> tuple[int, int] | None:
        path = self.storage.local_path(key)
        try:
            stat = path.stat()
        except OSError:
            return None
        return stat.st_mtime_ns, stat.st_size

    def report(self, run_id: str) -> RunReport | None:
        """A run's report (or the catalogue view for CATALOGUE_RUN), parsed once per file version."""
        key = self.layout.catalogue if run_id == CATALOGUE_RUN else self.layout.run_summary(run_id)
        if run_id != CATALOGUE_RUN and not _is_run_id(run_id):
            return None
        stamp = self._stamp(key)
        if stamp is None:
            return None
        with self._lock:
            cached = self._reports.get(run_id)
            if cached is not None and cached[0] == stamp:
                return cached[1]
        report = self._read(run_id, key)
        with self._lock:
            self._reports[run_id] = (stamp, report)
        return report

    def _read(self, run_id: str, key: str) -> RunReport:
        document = read_json(self.storage, key)
        if run_id != CATALOGUE_RUN:
            return RunReport.from_dict(document)
        entries = catalogue.read_entries(document)
        products = [
            e.product for e in sorted(entries.values(), key=lambda e: (e.csv, e.product.row, e.product.sku))
        ]
        return RunReport(
            run_id=CATALOGUE_RUN, out_dir=str(self.storage.root), csv="(every CSV)", dialect="", profile="",
            renderer="", preset="", fingerprint="", started_at="", seconds=0.0, products=products,
        )  # fmt: skip

    def run_ids(self) -> list[str]:
        """Run ids, newest first."""
        root = self.storage.local_path(self.layout.runs)
        if not root.is_dir():
            return []
        return sorted(
            (p.parent.name for p in root.glob("*/summary.json") if _is_run_id(p.parent.name)), reverse=True
        )

    def runs(self) -> list[RunOverview]:
        """The catalogue first, then every run, newest first, with review progress."""
        overviews = []
        records = self.verdicts()  # one snapshot for every run
        for run_id in [CATALOGUE_RUN, *self.run_ids()]:
            report = self.report(run_id)
            if report is None:
                continue
            jobs = [job for product in report.products for job in reviewable_jobs(product)]
            decided = sum(decision_on(records.get(job.job_id), job.render_id) is not None for job in jobs)
            overviews.append(
                RunOverview(
                    run_id, report.started_at, report.profile, report.csv, report.counts, len(jobs), decided
                )
            )
        return overviews

    # Gallery and product pages -----------------------------------------------------------------------------

    def _items(self, report: RunReport) -> list[ReviewProduct]:
        """Every product of a report with its verdicts; built once per report and then only the products whose
        images got a decision since are rebuilt (a 10k-product run has 60k images)."""
        records = self.verdicts()
        with self._lock:
            cached = self._items_cache.get(report.run_id)
            last = self._last_decision
            start = bisect.bisect_right(self._log, (cached[1], "\U0010ffff")) if cached else len(self._log)
            changed = {job for _, job in self._log[start:]}
        if cached is None or cached[0] is not report:
            items = [self._item(product, records) for product in report.products]
        else:
            items = list(cached[2])
            index = cached[3]
            for position in sorted({index[job] for job in changed if job in index}):
                items[position] = self._item(report.products[position], records)
        index = cached[3] if cached and cached[0] is report else {
            job.job_id: position for position, product in enumerate(report.products) for job in product.jobs
        }  # fmt: skip
        with self._lock:
            self._items_cache[report.run_id] = (report, last, items, index)
        return items

    def _item(
        self, product: ProductOutcome, records: Mapping[str, ReviewDecision], with_files: bool = False
    ) -> ReviewProduct:
        """A product with its verdicts; with_files also looks up its source photo and cutout (product page)."""
        images = [
            ReviewImage(
                job, job.outputs.get(MASTER, job.output), decision_on(records.get(job.job_id), job.render_id)
            )
            for job in reviewable_jobs(product)
        ]
        if not with_files:
            return ReviewProduct(product, images, "", "")
        source, cutout = self.layout.source_thumbnail(product.sku), self.layout.cutout(product.sku)
        return ReviewProduct(
            product,
            images,
            source if self.storage.exists(source) else "",
            cutout if self.storage.exists(cutout) else "",
        )

    def gallery(
        self, run_id: str, filters: GalleryFilter, page: int = 1, page_size: int = PAGE_SIZE
    ) -> Gallery | None:
        report = self.report(run_id)
        if report is None:
            return None
        items = self._items(report)
        counts = {state: 0 for state in ("undecided", "partial", "approved", "rejected")}
        for item in items:
            counts[item.state] += 1
        matching = [item for item in items if filters.matches(item)]
        pages = max(1, -(-len(matching) // page_size))
        page = min(max(1, page), pages)
        return Gallery(
            run_id=run_id,
            products=matching[(page - 1) * page_size : page * page_size],
            total=len(matching),
            page=page,
            pages=pages,
            flags=sorted({flag for item in items for flag in _flags(item)}),
            categories=sorted({item.product.category for item in items if item.product.category}),
            state_counts=counts,
        )

    def product(self, run_id: str, sku: str) -> tuple[ReviewProduct, list[str]] | None:
        """A product of a run and the SKUs of its gallery neighbours (previous, next), or None."""
        report = self.report(run_id)
        if report is None:
            return None
        skus = [p.sku for p in report.products]
        if sku not in skus:
            return None
        index = skus.index(sku)
        product = report.products[index]
        records = self.verdicts()
        neighbours = [skus[index - 1] if index > 0 else "", skus[index + 1] if index + 1 < len(skus) else ""]
        return self._item(product, records, with_files=True), neighbours

    def image_metadata(self, image_key: str) -> dict[str, Any]:
        """The sidecar of an image (pose, seed, model, prompt ...); {} when it cannot be read."""
        try:
            data = read_json(self.storage, sidecar_key(image_key))
        except (OSError, ValueError):
            return {}
        return data if isinstance(data, dict) else {}

    def history(self, job_id: str) -> list[ReviewDecision]:
        return list(self.store.history(job_id))

    # Decisions ---------------------------------------------------------------------------------------------

    def _jobs(self, run_id: str) -> dict[str, JobOutcome]:
        """The run's reviewable jobs by id (built once per report version)."""
        report = self.report(run_id)
        if report is None:
            return {}
        with self._lock:
            cached = self._job_index.get(run_id)
            if cached is not None and cached[0] is report:
                return cached[1]
        index = {job.job_id: job for product in report.products for job in reviewable_jobs(product)}
        with self._lock:
            self._job_index[run_id] = (report, index)
        return index

    def find_job(self, run_id: str, job_id: str) -> JobOutcome | None:
        return self._jobs(run_id).get(job_id)

    def decide(
        self,
        run_id: str,
        job_ids: Sequence[str],
        decision: str,
        *,
        reviewer: str,
        reason: str = "",
        comment: str = "",
        seen: Mapping[str, int] | None = None,
    ) -> list[DecisionOutcome]:
        """Record one decision per job on its current render; report any decision this one overrode.

        seen: job id -> the decision id the reviewer's page showed (0: none). When another reviewer decided in
        between, the later decision still wins, visibly: the outcome names the overridden one.
        """
        check_decision(decision, reason, comment)
        verdict: Decision = "approve" if decision == "approve" else "reject"
        index = self._jobs(run_id)
        jobs = [index.get(job_id) for job_id in job_ids]
        unknown = [job_id for job_id, job in zip(job_ids, jobs, strict=True) if job is None]
        if unknown:
            raise LookupError(f"no image {', '.join(unknown)} in run {run_id}.")
        before = self.store.decisions(list(job_ids))
        outcomes = []
        for job in jobs:
            assert job is not None
            previous = before.get(job.job_id)
            record = self.store.record_decision(
                job.job_id, verdict, reviewer=reviewer, reason=reason if verdict == "reject" else "",
                comment=comment, image_key=job.render_id,
            )  # fmt: skip
            overrode = None
            if (
                previous is not None
                and seen is not None
                and previous.decision_id != seen.get(job.job_id, 0)
                and previous.reviewer != reviewer
                and previous.decision != "clear"
            ):
                overrode = previous  # someone decided after this reviewer's page was drawn
            outcomes.append(DecisionOutcome(record, overrode))
        return outcomes

    def undo(self, run_id: str, job_id: str, *, reviewer: str) -> ReviewDecision | None:
        """Take back this reviewer's latest decision on the render: the verdict before it is in force again
        ('clear' when there was none). Undo records are kept in the history like any decision."""
        job = self.find_job(run_id, job_id)
        if job is None:
            raise LookupError(f"no image {job_id} in run {run_id}.")
        in_force: list[ReviewDecision] = []  # decisions on this render, undone ones taken off
        for record in self.store.history(job_id):
            if record.image_key != job.render_id:
                continue
            if record.comment.startswith(UNDO_MARK):
                if in_force:
                    in_force.pop()
            else:
                in_force.append(record)
        if not in_force or in_force[-1].reviewer != reviewer:
            return None  # nothing of this reviewer's to take back
        in_force.pop()
        restore = in_force[-1] if in_force else None
        if restore is None:
            return self.store.record_decision(
                job_id, "clear", reviewer=reviewer, comment=UNDO_MARK, image_key=job.render_id
            )
        return self.store.record_decision(
            job_id, restore.decision, reviewer=reviewer, reason=restore.reason,
            comment=f"{UNDO_MARK} back to {restore.reviewer}'s decision", image_key=job.render_id,
        )  # fmt: skip

    # Export ------------------------------------------------------------------------------------------------

    def approved_jobs(self, run_id: str) -> list[JobOutcome]:
        report = self.report(run_id)
        if report is None:
            return []
        jobs = [job for product in report.products for job in reviewable_jobs(product)]
        records = self.verdicts()
        return [
            job
            for job in jobs
            if image_state(decision_on(records.get(job.job_id), job.render_id)) == "approved"
        ]


@dataclass(frozen=True)
class DecisionOutcome:
    record: ReviewDecision
    overrode: ReviewDecision | None  # another reviewer's decision this one replaced unseen


def _is_run_id(text: str) -> bool:
    """Run ids are UTC stamps like 20261203T072301123456Z: nothing else names a run folder."""
    return 8 <= len(text) <= 40 and all(c.isalnum() for c in text)
