"""Completed products: a product whose every job a plan found done, remembered whole for the next plan.

A nightly plan over a catalogue where 1 % changed used to decide every job from its state row, its review
decision and its files (~200 us a product). Once a plan finds every job of a product done (nothing to render,
nothing to derive, its cutout made from this very photo), it records one `CompletedProduct`: what it decided
per job and everything that decision rested on. The next plan takes the record whole, without the job rows,
decisions or folder listings, while nothing it rested on moved:

- the photo: a local one's stat (then no photo-cache lookup at all), a remote one's hash (the photo cache's
  conditional request); the config fingerprint, the product's render fields and its job plan (poses,
  variants);
- the product's job rows: their count and the sum of their row_version (any write to any of them, from any
  host, changes it; no clock involved);
- the review decisions: none recorded on its jobs since;
- its output presets (the run's, and those earlier renders were derived into);
- its output folders and cutout files: a stat each, whose mtime moves when a file is added, removed or
  replaced (writes are atomic renames).

Nothing is ever invalidated on write, so no write path knows about these records and two runs at once cannot
race them: a record is checked when it is used. Stamps are read before what they vouch for (job stamps and
the latest decision id before the jobs and decisions; file stamps before the folder listings), so a change in
between makes the record stale, never wrong. A folder changed within RACY_S of its stamp is not recorded
(as git's "racily clean" index entries: a second change within the filesystem's timestamp granularity would
leave the stamp as it was). Storages that cannot stamp (object stores) never record one.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from catalog.photo_cache import stamp_mtime_ns
from catalog.state import CompletedProduct, JobState, StateStore
from pipelines.production.layout import OutputLayout, StampedStorage, Storage
from pipelines.production.outcomes import APPROVED_REASON, REUSED_REASON, JobOutcome, ReusedJobs
from pipelines.production.plan import job_id_for

RACY_S = 2.0  # FAT's timestamps are 2 s apart, ext3's and HFS+'s 1 s, ext4's and tmpfs's a kernel tick
_KEY_VERSION = "2"  # the plan key's layout; a record of another layout never matches
_UNIT = "\x1f"  # ASCII's unit separator, which a CSV cell hardly ever holds


class ProductFacts(NamedTuple):
    """What a product's plan is made of now: a record holds while these equal what it saw."""

    sku: str
    image_hash: str
    fingerprint: str
    render_fields: Mapping[str, str]
    poses: tuple[str, ...]
    variants: int


@dataclass
class ChunkRecords:
    """The completed-product records of one planned chunk, with the stamps to check them against."""

    completed: dict[str, CompletedProduct] = field(default_factory=dict)
    job_stamps: dict[str, str] = field(default_factory=dict)
    decision_stamp: int = 0  # the latest decision id when the chunk was read
    decided: dict[str, int] = field(default_factory=dict)  # job id -> its latest decision id, if newer
    storage: StampedStorage | None = None  # None: the storage cannot stamp, no record is used or written
    written: list[CompletedProduct] = field(default_factory=list)  # made by this chunk's plan
    # The records of a chunk share a few texts: each decoded (and checked) once.
    presets_seen: dict[str, tuple[tuple[str, str], ...] | None] = field(default_factory=dict)
    flags_seen: dict[str, list[str]] = field(default_factory=dict)


def read_chunk(skus: Sequence[str], store: StateStore, storage: Storage) -> ChunkRecords:
    """The records of these products, their job stamps and the decisions since, read before their jobs are."""
    if not isinstance(storage, StampedStorage):
        return ChunkRecords()
    # 1. The stamps first: a job written or a decision recorded after them makes a record made now stale.
    decision_stamp = store.latest_decision_id()
    job_stamps = store.job_stamps(skus)
    completed = store.get_completed(skus)
    # 2. The decisions recorded since the oldest of these records (usually none at all).
    oldest = min((record.decision_stamp for record in completed.values()), default=decision_stamp)
    decided = store.decided_since(oldest) if oldest < decision_stamp else {}
    return ChunkRecords(completed, job_stamps, decision_stamp, decided, storage)


def plan_key(facts: ProductFacts) -> str:
    """The product's render fields (names and values), poses and variant count as one comparable text."""
    fields = facts.render_fields
    parts = [_KEY_VERSION, *fields, *fields.values(), *facts.poses, str(facts.variants)]
    text = _UNIT.join(parts)
    if text.count(_UNIT) != len(parts) - 1:  # a separator inside a cell: spell the parts out
        return json.dumps(parts)
    return text


def stamp_keys(sku: str, presets: Sequence[str], layout: OutputLayout) -> list[str]:
    """The storage keys whose stamps a record of this product rests on: its output folders and cutout files."""
    return [
        *(layout.image_folder(name, sku) for name in presets),
        layout.cutout(sku),
        layout.cutout_record(sku),
    ]


def reused_whole(
    chunk: ChunkRecords,
    facts: ProductFacts,
    photo_stamp: str,
    presets_for: Callable[[Sequence[str]], tuple[tuple[str, str], ...]],
    first: str,
    layout: OutputLayout,
) -> tuple[ReusedJobs, list[str]] | None:
    """The product's jobs and cutout flags from its record when nothing it rests on moved, else None.

    photo_stamp: a local photo's `file_stamp` (then its hash is the record's when the stamp is the recorded
    one), or "" for a remote photo, whose hash from the photo cache is `facts.image_hash`.
    presets_for(earlier): (name, extension) of the output presets a job whose earlier renders were derived
    into `earlier` gets now; first: the run's first preset (a job outcome's `output`); layout: the keys'.
    """
    record = chunk.completed.get(facts.sku)
    if record is None or chunk.storage is None:
        return None
    recorded_photo, _, recorded_files = record.file_stamps.partition(" ")
    # 1. The same photo (a local one's stamp, a remote one's hash), config, jobs (no write since) and plan.
    if photo_stamp:
        if photo_stamp != recorded_photo:
            return None
        facts = facts._replace(image_hash=record.image_hash)
    elif recorded_photo or record.image_hash != facts.image_hash:
        return None
    if (
        record.config_fingerprint != facts.fingerprint
        or chunk.job_stamps.get(facts.sku) != record.jobs_stamp
        or record.plan_key != plan_key(facts)
    ):
        return None
    # 2. No decision on its jobs since, the same output presets.
    if chunk.decided and any(
        chunk.decided.get(job_id_for(facts.sku, pose, variant), 0) > record.decision_stamp
        for pose in facts.poses
        for variant in range(facts.variants)
    ):
        return None
    if record.presets not in chunk.presets_seen:
        earlier, recorded = json.loads(record.presets)
        now = presets_for(earlier)
        chunk.presets_seen[record.presets] = now if presets_text(now) == recorded else None
    presets = chunk.presets_seen[record.presets]
    if presets is None:
        return None
    # 3. The same files: a stat per output folder and cutout file.
    keys = stamp_keys(facts.sku, [name for name, _ in presets], layout)
    if " ".join(chunk.storage.stamps(keys).values()) != recorded_files:
        return None
    if (flags := chunk.flags_seen.get(record.cutout_flags)) is None:
        flags = chunk.flags_seen[record.cutout_flags] = json.loads(record.cutout_flags)
    return reused_jobs(facts, presets, first, record.jobs, layout), list(flags)


def reused_jobs(
    facts: ProductFacts,
    presets: tuple[tuple[str, str], ...],
    first: str,
    rows: str,
    layout: OutputLayout,
) -> ReusedJobs:
    """The outcomes of a product's jobs from its record's rows (the JSON text), every job reused."""
    return ReusedJobs(facts.sku, facts.image_hash, facts.fingerprint, presets, first, facts.poses,
                      facts.variants, rows, layout)  # fmt: skip


def completed_record(
    chunk: ChunkRecords,
    facts: ProductFacts,
    skipped: Sequence[JobOutcome],
    states: Mapping[str, JobState],
    earlier: Sequence[str],
    presets: Sequence[tuple[str, str]],
    cutout_flags: Sequence[str],
    photo_stamp: str,
    file_stamps: Mapping[str, str],
    stamped_at_ns: int,
) -> CompletedProduct | None:
    """The record of a product whose every job the plan reused as it is, or None when one cannot vouch for it.

    skipped: its jobs' outcomes in plan order (nothing derived); earlier: the presets its first recorded job
    was derived into, which give `presets` (every job's outputs must be in those, or no record); photo_stamp: a local photo's `file_stamp`, read before its hash ("" for a
    remote photo); file_stamps: of `stamp_keys(sku, presets)`, in that order, read before the plan listed its
    folders, at stamped_at_ns.
    """
    job_stamp = chunk.job_stamps.get(facts.sku)
    if chunk.storage is None or job_stamp is None or not skipped:
        return None
    # 1. Every file stamped, none changed within the timestamps' granularity of the stamp.
    racy_ns = stamped_at_ns - int(RACY_S * 1e9)
    for stamp in file_stamps.values():
        if not stamp or int(stamp.split(":", 1)[0]) > racy_ns:
            return None
    if photo_stamp and stamp_mtime_ns(photo_stamp) > racy_ns:
        return None
    # 2. Every job reused as it is, in plan order, with the outputs the presets give.
    names = [name for name, _ in presets]
    slots = [(pose, variant) for pose in facts.poses for variant in range(facts.variants)]
    if len(slots) != len(skipped):
        return None
    jobs: list[list[Any]] = []
    for outcome, slot in zip(skipped, slots, strict=True):
        state = states.get(outcome.job_id)
        if (
            state is None
            or (outcome.pose, outcome.variant) != slot
            or outcome.derived
            or outcome.reason not in (APPROVED_REASON, REUSED_REASON)
            or list(outcome.outputs) != names
            or state.image_hash != facts.image_hash
        ):
            return None
        rendered = "" if state.config_fingerprint == facts.fingerprint else state.config_fingerprint
        approved = 1 if outcome.reason == APPROVED_REASON else 0
        jobs.append([outcome.seed, approved, list(outcome.flags), rendered])
    return CompletedProduct(
        facts.sku,
        facts.image_hash,
        facts.fingerprint,
        job_stamp,
        chunk.decision_stamp,
        plan_key=plan_key(facts),
        presets=json.dumps([list(earlier), presets_text(presets)]),
        # The photo's stamp, then the files' in stamp_keys order (a stamp holds no space).
        file_stamps=" ".join([photo_stamp, *file_stamps.values()]),
        jobs=json.dumps(jobs, separators=(",", ":")),
        cutout_flags=json.dumps(list(cutout_flags)),
    )


def presets_text(presets: Sequence[tuple[str, str]]) -> str:
    """'master.png amazon.jpg': the output presets of a record, compared as one string."""
    return " ".join(f"{name}.{extension}" for name, extension in presets)
