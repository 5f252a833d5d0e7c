"""Run outcomes as typed records: every CSV row, product and job ends in exactly one recorded state.

One owner: the run book builds them, the report writes them once per run (`runs/<id>/summary.json`), and the
manifest, the index page, the CLI summary and the review app all read the same `RunReport`.
Paths in here are storage keys relative to the output root ('/'-separated), never OS paths.
"""

from __future__ import annotations

import csv
import io
import json
from array import array
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from typing import Any, BinaryIO, Literal, overload

from catalog.schema import Reject
from pipelines.presets import MASTER
from pipelines.production.decisions import render_id
from pipelines.production.layout import OutputLayout, sidecar_key
from pipelines.production.plan import job_id_for

JobStateName = Literal["produced", "skipped", "failed"]
ProductStateName = Literal["produced", "skipped", "failed", "rejected"]
REPORT_VERSION = 1

# Exit codes of `onmodel run` (documented in the README): a scheduler can tell them apart.
EXIT_OK = 0  # every row produced or skipped
EXIT_FAILED = 1  # jobs or products failed after their retries (takes precedence over rejects)
EXIT_USAGE = 2  # the run could not start: missing CSV, bad profile, preset, device, model, server
EXIT_REJECTED = 3  # nothing failed, but CSV rows or photos were rejected (0 with --allow-rejects)

MANIFEST_COLUMNS = (
    "kind",
    "row",
    "sku",
    "job_id",
    "pose",
    "variant",
    "seed",
    "state",
    "reason",
    "flags",
    "output",
    "sidecar",
    "sheet",
    "renderer",
    "fingerprint",
    "run_id",
    "source_identity",
    "variant_skus",
    "outputs",
)
REJECT_COLUMNS = ("row", "sku", "column", "reason")


@dataclass(slots=True)  # planning makes one per job of a 100k-product catalogue
class JobOutcome:
    """The final state of one planned image in this run."""

    job_id: str
    sku: str
    pose: str
    variant: int
    seed: int
    state: JobStateName
    reason: str = ""
    output: str = ""  # storage key of the image in the run's first preset
    sidecar: str = ""  # storage key of its JSON metadata
    flags: list[str] = field(default_factory=list)
    outputs: dict[str, str] = field(default_factory=dict)  # preset -> image key ("master": the stored render)
    # Presets derived from the stored master without rendering, this run.
    derived: list[str] = field(default_factory=list)
    render_id: str = ""  # which render of the job this is (decisions.render_id): review verdicts name it
    timings: dict[str, float] = field(default_factory=dict)  # seconds per stage, for benchmarks


# A reused job's reason: kept by a reviewer's approval, or found rendered with this photo and config.
APPROVED_REASON = "approved by a reviewer: kept as it is"
REUSED_REASON = "already rendered with this image and config"


@dataclass(slots=True, eq=False)  # not frozen: a plan makes 100k, and frozen fields are set one by one
class ReusedJobs(Sequence[JobOutcome]):
    """Every job of a product reused as it is, without a JobOutcome per job until one is asked for.

    A nightly plan over 100k unchanged products would otherwise build 600k outcomes only to count and list
    them; each is made on access, equal to the one the per-job plan makes (`stages.reuse_render`).
    presets: (name, extension) of the jobs' output presets, master first; first: the run's first preset;
    rows: per job in plan order (poses x variants), [seed, approved (1 or 0), flags, the config fingerprint
    its master was rendered with ("": `fingerprint`)], or those rows as the JSON text the completed-product
    record holds, decoded on first access (a plan keeps 100k products' rows as 100k strings, not 1.3M lists).
    """

    sku: str
    image_hash: str
    fingerprint: str
    presets: tuple[tuple[str, str], ...]
    first: str
    poses: tuple[str, ...]
    variants: int
    rows: str | Sequence[Sequence[Any]]
    layout: OutputLayout = OutputLayout()

    def __len__(self) -> int:
        return len(self.poses) * self.variants

    @overload
    def __getitem__(self, index: int) -> JobOutcome: ...

    @overload
    def __getitem__(self, index: slice) -> list[JobOutcome]: ...

    def __getitem__(self, index: int | slice) -> JobOutcome | list[JobOutcome]:
        rows = self._rows()
        if isinstance(index, slice):
            return [self._outcome(number, rows) for number in range(len(self))[index]]
        return self._outcome(range(len(self))[index], rows)  # negative indexes and IndexError as a list's

    def __iter__(self) -> Iterator[JobOutcome]:
        rows = self._rows()
        return (self._outcome(number, rows) for number in range(len(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, ReusedJobs):
            return self._key() == other._key()
        return isinstance(other, Sequence) and list(self) == list(other)

    def _key(self) -> tuple[Any, ...]:
        rows = [list(row) for row in self._rows()]
        return (self.sku, self.image_hash, self.fingerprint, self.presets, self.first, self.poses, self.variants,
                rows, self.layout)  # fmt: skip

    def _rows(self) -> Sequence[Sequence[Any]]:
        if isinstance(self.rows, str):
            rows = json.loads(self.rows)
            if len(rows) != len(self):
                raise ValueError(f"{self.sku}: {len(rows)} recorded jobs for {len(self)} planned ones")
            self.rows = rows
        return self.rows

    def _outcome(self, number: int, rows: Sequence[Sequence[Any]]) -> JobOutcome:
        seed, approved, flags, rendered = rows[number]
        pose, variant = self.poses[number // self.variants], number % self.variants
        job_id = job_id_for(self.sku, pose, variant)
        stem = self.layout.image_stem
        outputs = {name: f"{stem(name, self.sku, job_id)}.{extension}" for name, extension in self.presets}
        output = outputs[self.first]
        return JobOutcome(
            job_id,
            self.sku,
            pose,
            variant,
            seed,
            "skipped",
            reason=APPROVED_REASON if approved else REUSED_REASON,
            output=output,
            sidecar=sidecar_key(output),
            flags=list(flags),
            outputs=outputs,
            render_id=render_id(outputs[MASTER], seed, rendered or self.fingerprint, self.image_hash),
        )


DeviceStateName = Literal["active", "taken out"]


@dataclass
class DeviceUsage:
    """One device of a run's pool: how busy it was and whether it was taken out (and why).

    busy_s is time inside render calls (the device lease held); wall_s the run's (or the pool's) wall time.
    """

    device: str
    worker: str = ""  # host and pid of the process that drove it
    state: DeviceStateName = "active"
    reason: str = ""  # why it was taken out
    batches: int = 0
    jobs: int = 0
    errors: int = 0
    busy_s: float = 0.0
    wall_s: float = 0.0
    load_s: float = 0.0  # loading the resident renderer (once per device and process)

    @property
    def utilisation(self) -> float:
        """busy time / wall time (0..1)."""
        return self.busy_s / self.wall_s if self.wall_s > 0 else 0.0

    def describe(self) -> str:
        """'cuda:0 97.3% busy (120 batches)' or 'cuda:1 taken out: ...' for the summary line."""
        text = f"{self.device} {100 * self.utilisation:.1f}% busy ({self.batches} batches, {self.jobs} jobs)"
        if self.state != "active":
            text += f", taken out: {self.reason}"
        return text


@dataclass(frozen=True)
class RejectRecord:
    """A CSV row or a product that cannot be produced, with the spreadsheet row, column and reason.

    product_level: found while preparing the product (its photo), so its product row carries it in the
    manifest; otherwise a reject of the CSV reader.
    """

    row: int
    sku: str
    column: str
    reason: str
    product_level: bool = False

    @classmethod
    def from_reject(cls, reject: Reject, product_level: bool = False) -> RejectRecord:
        return cls(reject.row, reject.sku, reject.column, reject.reason, product_level)


@dataclass
class ProductOutcome:
    """The final state of one product (one or more CSV rows) and its jobs."""

    sku: str
    row: int
    state: ProductStateName
    reason: str = ""
    column: str = ""
    title: str = ""
    flags: list[str] = field(default_factory=list)
    sheet: str = ""  # storage key of the contact sheet
    source_rows: list[int] = field(default_factory=list)
    jobs: Sequence[JobOutcome] = field(default_factory=list)  # a list, or ReusedJobs (all reused)
    # Who the product is in its source system (Shopify handle + colour, Merchant id / item group), the
    # variant SKUs its images stand for, and the rows it covers: [{"row", "sku", "describe"}].
    source_identity: dict[str, str] = field(default_factory=dict)
    variant_skus: list[str] = field(default_factory=list)
    covered: list[dict[str, Any]] = field(default_factory=list)
    # Jobs dropped from its plan this run; their files moved to retired/.
    retired_jobs: list[str] = field(default_factory=list)
    category: str = ""  # the matched garment word (t-shirt, dress, ...), for reviewers' filters

    def to_dict(self) -> dict[str, Any]:
        """As asdict() would give it, reused jobs expanded (summary.json, catalogue.json)."""
        if isinstance(self.jobs, list):
            return asdict(self)
        return asdict(replace(self, jobs=list(self.jobs)))

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ProductOutcome:
        """Read back what to_dict() wrote (summary.json, catalogue.json)."""
        return cls(**{**data, "jobs": [JobOutcome(**job) for job in data.get("jobs", [])]})


def product_state(jobs: Sequence[JobOutcome]) -> ProductStateName:
    """failed if any job failed, skipped if every job was already done, else produced."""
    if isinstance(jobs, ReusedJobs):
        return "skipped" if jobs else "produced"
    if any(job.state == "failed" for job in jobs):
        return "failed"
    if jobs and all(job.state == "skipped" for job in jobs):
        return "skipped"
    return "produced"


# A product's share of the counts, without its jobs: (state, produced, skipped, failed, derived, covered) jobs
# and rows. The run book's spool keeps one per product, so counting a 100k-product run decodes no outcome.
Tally = tuple[ProductStateName, int, int, int, int, int]


TALLY_STATES: tuple[ProductStateName, ...] = ("produced", "skipped", "failed", "rejected")
_TALLY_CODE = {state: code for code, state in enumerate(TALLY_STATES)}
_TALLY_COUNTS = 5  # per product: produced, skipped, failed jobs, derived presets, covered rows


class Tallies:
    """Products' tallies, packed: a byte for the state and five 32-bit counts, ~21 bytes a product where a tuple
    (and its state string read from JSON) takes ~150; the run book's spool and the catalogue index keep one."""

    def __init__(self) -> None:
        self._states = bytearray()
        self._counts = array("i")

    def append(self, tally: Tally) -> None:
        state, *counts = tally
        self._states.append(_TALLY_CODE[state])
        self._counts.extend(counts)

    def head(self, count: int) -> Tallies:
        """A copy of the first `count` tallies (the ones a finished book hands over; it may append more)."""
        copied = Tallies()
        copied._states, copied._counts = self._states[:count], self._counts[: count * _TALLY_COUNTS]
        return copied

    def __len__(self) -> int:
        return len(self._states)

    def __iter__(self) -> Iterator[Tally]:
        counts = self._counts
        for position, code in enumerate(self._states):
            start = position * _TALLY_COUNTS
            yield (TALLY_STATES[code], counts[start], counts[start + 1], counts[start + 2], counts[start + 3],
                   counts[start + 4])  # fmt: skip


def product_tally(product: ProductOutcome) -> Tally:
    """What `summary_counts` takes from one product (reused jobs counted without expanding them)."""
    if isinstance(product.jobs, ReusedJobs):  # all skipped, nothing derived
        return (product.state, 0, len(product.jobs), 0, 0, len(product.covered))
    jobs = ((job.state, len(job.derived)) for job in product.jobs)
    return _tally(product.state, jobs, len(product.covered))


def dict_tally(data: Mapping[str, Any]) -> Tally:
    """product_tally of a product as to_dict() wrote it (a catalogue entry), without building its outcomes."""
    jobs = ((job["state"], len(job.get("derived", []))) for job in data.get("jobs", []))
    return _tally(data["state"], jobs, len(data.get("covered", [])))


def _tally(state: ProductStateName, jobs: Iterable[tuple[str, int]], covered: int) -> Tally:
    """A product's tally from its jobs' (state, presets derived from the stored master)."""
    states = {"produced": 0, "skipped": 0, "failed": 0}
    derived = 0
    for job_state, job_derived in jobs:
        states[job_state] += 1
        derived += job_derived
    return (state, states["produced"], states["skipped"], states["failed"], derived, covered)


class IndexedOutcomes(Sequence[ProductOutcome]):
    """Outcomes read on access from a file, with each product's tally held in a compact index (the run book's
    spool, the catalogue view): counts and failure listings decode only what they need.

    A subclass sets `_order` (the products' positions in sequence order) and `_skus` (by position), and reads
    products by position (`_read`) and gives their tallies in position order (`tallies`).
    """

    _order: Sequence[int]
    _skus: Sequence[str]

    def _read(self, positions: Iterable[int]) -> Iterator[ProductOutcome]:
        """The products at these positions, in that order, through one open file."""
        raise NotImplementedError

    def tallies(self) -> Iterable[Tally]:
        """Every product's tally, in position order (nothing decoded)."""
        raise NotImplementedError

    def __len__(self) -> int:
        return len(self._order)

    @overload
    def __getitem__(self, index: int) -> ProductOutcome: ...

    @overload
    def __getitem__(self, index: slice) -> list[ProductOutcome]: ...

    def __getitem__(self, index: int | slice) -> ProductOutcome | list[ProductOutcome]:
        if isinstance(index, slice):
            return list(self._read(self._order[index]))
        [product] = self._read([self._order[index]])  # negative indexes and IndexError as a list's
        return product

    def __iter__(self) -> Iterator[ProductOutcome]:
        return self._read(self._order)

    def sku(self, index: int) -> str:
        """The sku of the product at `index`, from the index (nothing decoded)."""
        return self._skus[self._order[index]]

    def at(self, indexes: Iterable[int]) -> Iterator[ProductOutcome]:
        """The products at these indexes, in that order, read through one open file."""
        return self._read(self._order[index] for index in indexes)

    def failing(self) -> Iterator[ProductOutcome]:
        """The products with a failed job or failed as a whole, in order (the index page's failures)."""
        fails = [_fails(tally) for tally in self.tallies()]
        return self._read([position for position in self._order if fails[position]])

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  # mutable-looking, like a list


def _fails(tally: Tally) -> bool:
    """A failed job, or the product failed as a whole (before any job was planned)."""
    state, produced, skipped, failed = tally[:4]
    return failed > 0 or (state == "failed" and not produced + skipped)


def counts_of_tallies(tallies: Iterable[Tally], rejects: Sequence[RejectRecord]) -> dict[str, int]:
    """summary_counts from the products' tallies."""
    products = produced = skipped = failed = jobs = derived = covered = rejected = failed_whole = 0
    for state, job_produced, job_skipped, job_failed, job_derived, rows in tallies:
        products += 1
        produced += job_produced
        skipped += job_skipped
        failed += job_failed
        jobs += job_produced + job_skipped + job_failed
        derived += job_derived
        covered += rows
        rejected += state == "rejected"
        failed_whole += state == "failed" and not job_produced + job_skipped + job_failed
    return {
        "products": products,
        "rejected": sum(not r.product_level for r in rejects) + rejected,
        "produced": produced,
        "skipped": skipped,
        "failed": failed + failed_whole,
        "jobs": jobs,
        "derived": derived,
        "covered": covered,  # size / image rows of a product
    }


def summary_counts(products: Sequence[ProductOutcome], rejects: Sequence[RejectRecord]) -> dict[str, int]:
    """Counts for the summary line, the index page and the Prefect artifact."""
    tallies = products.tallies() if isinstance(products, IndexedOutcomes) else map(product_tally, products)
    return counts_of_tallies(tallies, rejects)


def failures(products: Sequence[ProductOutcome]) -> list[tuple[str, str, str]] | Failures:
    """(sku, job id, reason) of every failed job, then of every product failed before planning (index page)."""
    if isinstance(products, IndexedOutcomes):
        return Failures(products, summary_counts(products, [])["failed"])
    listed = [(p.sku, j.job_id, j.reason) for p in products for j in p.jobs if j.state == "failed"]
    return listed + [(p.sku, "(product)", p.reason) for p in products if p.state == "failed" and not p.jobs]


@dataclass(frozen=True)
class Failures:
    """failures() of indexed outcomes: counted from the index, listed by decoding only the failing products."""

    products: IndexedOutcomes
    count: int

    def __len__(self) -> int:
        return self.count

    def __iter__(self) -> Iterator[tuple[str, str, str]]:
        for product in self.products.failing():
            yield from ((product.sku, j.job_id, j.reason) for j in product.jobs if j.state == "failed")
        for product in self.products.failing():
            if product.state == "failed" and not product.jobs:
                yield (product.sku, "(product)", product.reason)


@dataclass
class RunReport:
    """What one run did: written once per run as runs/<id>/summary.json and rendered into the index page."""

    run_id: str
    out_dir: str
    csv: str
    dialect: str
    profile: str
    renderer: str
    preset: str
    fingerprint: str
    started_at: str  # ISO 8601 UTC
    seconds: float
    products: Sequence[ProductOutcome] = field(default_factory=list)  # a list, or read on access (spool)
    rejects: list[RejectRecord] = field(default_factory=list)
    version: int = REPORT_VERSION
    devices: list[DeviceUsage] = field(
        default_factory=list
    )  # the device pool: utilisation, taken-out devices

    @property
    def counts(self) -> dict[str, int]:
        """Products, rejects and jobs per state (derived: always agrees with the records)."""
        return summary_counts(self.products, self.rejects)

    def exit_code(self, allow_rejects: bool = False) -> int:
        """EXIT_FAILED when anything failed, else EXIT_REJECTED when rows were rejected, else EXIT_OK."""
        if self.counts.get("failed", 0):
            return EXIT_FAILED
        if self.counts.get("rejected", 0) and not allow_rejects:
            return EXIT_REJECTED
        return EXIT_OK

    @property
    def failed_jobs(self) -> list[tuple[ProductOutcome, JobOutcome]]:
        return [(p, j) for p in self.products for j in p.jobs if j.state == "failed"]

    def to_dict(self) -> dict[str, Any]:
        """The records plus their counts (and each device's utilisation), for readers that do not recount."""
        return {**self.head_dict(), "products": [product.to_dict() for product in self.products]}

    def head_dict(self) -> dict[str, Any]:
        """to_dict() without its products (an empty list): summary.json is streamed product by product."""
        data = {**asdict(replace(self, products=[])), "counts": self.counts}
        for device, usage in zip(data["devices"], self.devices, strict=True):
            device["utilisation"] = round(usage.utilisation, 4)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RunReport:
        """Read a summary.json back (the review app and tests use this)."""
        if data.get("version") != REPORT_VERSION:
            raise ValueError(
                f"run report version {data.get('version')!r} is not {REPORT_VERSION}; "
                "it was written by another onmodel version."
            )
        values = {key: value for key, value in data.items() if key != "counts"}  # derived, recounted
        values["products"] = [ProductOutcome.from_dict(p) for p in data.get("products", [])]
        values["rejects"] = [RejectRecord(**r) for r in data.get("rejects", [])]
        values["devices"] = [  # utilisation is derived: recomputed
            DeviceUsage(**{k: v for k, v in d.items() if k != "utilisation"}) for d in data.get("devices", [])
        ]
        return cls(**values)


def manifest_rows(report: RunReport, runs: Mapping[str, str] | None = None) -> Iterator[dict[str, Any]]:
    """One row per CSV reject, per product and per job: every input ends in exactly one state. Made one by one
    (a manifest is written as its products are read).

    runs: sku -> the run a product's state comes from (the catalogue view); default: this report's run.
    """
    common = {"renderer": report.renderer, "fingerprint": report.fingerprint, "run_id": report.run_id}
    for reject in report.rejects:
        if reject.product_level:
            continue  # the product row below carries it
        yield (
            {
                "kind": "row",
                "row": reject.row,
                "sku": reject.sku,
                "state": "rejected",
                "reason": f"{reject.column}: {reject.reason}",
                **common,
            }
        )
    for product in report.products:
        run = {"run_id": (runs or {}).get(product.sku, report.run_id)}
        identity = {
            "source_identity": identity_text(product.source_identity),
            "variant_skus": product.variant_skus,
        }
        yield (
            {
                "kind": "product",
                "row": product.row,
                "sku": product.sku,
                "state": product.state,
                "reason": product.reason,
                "flags": product.flags,
                "sheet": product.sheet,
                **common,
                **run,
                **identity,
            }
        )
        for job_id in product.retired_jobs:  # dropped from the plan this run: files under retired/
            yield (
                {
                    "kind": "job",
                    "row": product.row,
                    "sku": product.sku,
                    "job_id": job_id,
                    "state": "retired",
                    "reason": "no longer in the product's poses or variants; its files moved to retired/",
                    **common,
                    **run,
                    **identity,
                }
            )
        for covered in product.covered:  # sizes and image rows: their state is their product's
            yield (
                {
                    "kind": "covered",
                    "row": covered["row"],
                    "sku": covered["sku"],
                    "state": "covered",
                    "reason": f"covered by product {product.sku} (row {product.row}, {product.state}): "
                    f"{covered['describe']}",
                    "sheet": product.sheet,
                    **common,
                    **run,
                    **identity,
                }
            )
        for job in product.jobs:
            yield (
                {
                    "kind": "job",
                    "row": product.row,
                    "sku": job.sku,
                    "job_id": job.job_id,
                    "pose": job.pose,
                    "variant": job.variant,
                    "seed": job.seed,
                    "state": job.state,
                    "reason": job.reason,
                    "flags": job.flags,
                    "output": job.output,
                    "sidecar": job.sidecar,
                    "outputs": [f"{preset}={key}" for preset, key in job.outputs.items()],
                    **common,
                    **run,
                    **identity,
                }
            )


def identity_text(identity: Mapping[str, str]) -> str:
    """'shopify handle=oxford-shirt Color=Navy' for one manifest cell (the sidecars keep the mapping)."""
    system = identity.get("system", "")
    pairs = " ".join(f"{key}={value}" for key, value in identity.items() if key != "system")
    return f"{system} {pairs}".strip()


def reject_rows(report: RunReport) -> list[dict[str, Any]]:
    """rejects.csv: every reject, CSV-level and product-level."""
    return [asdict(reject) for reject in report.rejects]


def csv_text(columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> str:
    """CSV with a fixed column order; values that are lists are joined with '|'."""
    buffer = io.BytesIO()
    write_csv(buffer, columns, rows)
    return buffer.getvalue().decode("utf-8")


CSV_FLUSH_CHARS = 1 << 16


def write_csv(handle: BinaryIO, columns: Sequence[str], rows: Iterable[dict[str, Any]]) -> None:
    """csv_text(columns, rows) written to a binary file as UTF-8, a buffer's worth at a time."""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), extrasaction="ignore", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: "|".join(v) if isinstance(v, list | tuple) else v for k, v in row.items()})
        if buffer.tell() >= CSV_FLUSH_CHARS:
            handle.write(buffer.getvalue().encode("utf-8"))
            buffer.seek(0)
            buffer.truncate()
    handle.write(buffer.getvalue().encode("utf-8"))
