"""The product pipeline, declared once: prepare a product, place its jobs, render on a device, finish.

fetch -> hash -> skip -> decode -> segment -> crop (prepare_product) -> place -> masks (place_jobs)
-> render (render_on_device, the only call that needs the device) -> preset -> encode -> write -> record
(finish_job). The Prefect tasks, `onmodel reproduce`, the benchmarks' plain loop and the workers call these
functions; none of them re-implements a step. No Prefect here: models, storage and the job store come in
through `Resources`, built once per process by the caller.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping, Sequence, Set
from contextlib import AbstractContextManager
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

import numpy as np

from catalog import ImageFetchError, ImagePolicy, JobState, fetch_image_bytes
from catalog.photo_cache import PhotoCache, file_stamp
from catalog.schema import ProductRecord
from catalog.state import ReviewDecision, StateStore
from pipelines.contact_sheet import Tile, make_contact_sheet
from pipelines.errors import InputError, RenderError
from pipelines.finish import finish_presets
from pipelines.image_io import encode_jpeg, encode_mask_png, encode_png, load_image_bytes
from pipelines.metadata import ImageMetadata
from pipelines.poses import Pose
from pipelines.prepare import image_hash, prepare_cutout
from pipelines.presets import MASTER, Preset
from pipelines.production import completed
from pipelines.production.decisions import decision_on, render_id, rerender_seed
from pipelines.production.gc_pause import collector_paused
from pipelines.production.layout import OutputLayout, Storage, read_json, sidecar_key, write_json
from pipelines.production.outcomes import (
    APPROVED_REASON,
    REUSED_REASON,
    JobOutcome,
    JobStateName,
    ProductOutcome,
    RejectRecord,
    ReusedJobs,
)
from pipelines.production.plan import JobPlan, plan_product, plan_shape
from pipelines.production.profile import Profile, code_version
from pipelines.render_inputs import JobSpec, PlacementSettings, build_render_jobs
from pipelines.renderers.base import RenderedImage, Renderer, RenderJob
from pipelines.segmentation.base import Segmenter

SHEET_COLUMNS = 4
SHEET_TILE_WIDTH = 256


@dataclass(frozen=True)
class RunContext:
    """What every stage of one run shares: small, picklable, no models or connections."""

    run_id: str
    profile: Profile
    fingerprint: str
    device: str = "cpu"
    force: bool = False
    csv_dir: str = ""

    @property
    def placement(self) -> PlacementSettings:
        profile = self.profile
        return PlacementSettings(profile.canvas, profile.erode_px, profile.feather_px, fit=profile.fit)


class Models(Protocol):
    """Loaded models, once per process (or Dask worker): the caller owns the cache."""

    def segmenter(self, backend: str, options: Mapping[str, Any], device: str) -> Segmenter: ...

    def renderer(
        self, name: str, options: Mapping[str, Any], device: str
    ) -> tuple[Renderer, AbstractContextManager[Any]]:
        """The resident renderer and the lease that keeps two batches off its device at once."""
        ...


@dataclass(frozen=True)
class Resources:
    """Where one output folder's files and job states live, and the loaded models and libraries."""

    storage: Storage
    store: StateStore
    models: Models
    poses: Mapping[str, Pose]
    presets: Mapping[str, Preset]
    layout: OutputLayout = OutputLayout()
    photos: PhotoCache | None = None  # what each photo was last run (None: hash every photo by reading it)


# Slots: a nightly plan keeps 100k of them, without an instance dict each for the collector to walk.
@dataclass(slots=True, weakref_slot=True)
class PreparedProduct:
    """A product after fetch + segment: where its cutout is and which of its jobs are still to do."""

    record: ProductRecord
    image_hash: str = ""
    cutout: str = ""  # storage key
    source: str = ""  # storage key of the source thumbnail
    flags: list[str] = field(default_factory=list)
    todo: list[JobPlan] = field(default_factory=list)
    skipped: Sequence[JobOutcome] = field(default_factory=list)  # a list, or ReusedJobs (taken whole)
    # job id -> presets an earlier render of the job was derived into: a new render keeps them current.
    earlier_presets: dict[str, list[str]] = field(default_factory=dict)
    # job id -> the rejection a new render answers (previous seed, reason, reviewer), for its metadata.
    rerenders: dict[str, dict[str, Any]] = field(default_factory=dict)
    rejected: RejectRecord | None = None
    seconds: dict[str, float] = field(default_factory=dict)
    needs_cutout: bool = True  # false: nothing to render and the cutout of this very photo is stored
    # job id -> the recorded state's updated_at the plan saw, for the jobs to do: a claim finds out from it
    # whether another run has rendered the job since (pipelines/production/claims.py).
    seen: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchItem:
    """One job of a render batch with the product facts it needs (keys, not pixels)."""

    plan: JobPlan
    product: PreparedProduct


@dataclass(frozen=True)
class PlacedJob:
    """A job on its pose canvas, ready for the device, with the placement's quality flags."""

    item: BatchItem
    job: RenderJob
    flags: tuple[str, ...]


def attributes(record: ProductRecord) -> dict[str, str]:
    """The product facts prompts and captions use."""
    return {
        "title": record.title,
        "color": record.color,
        "gender": record.gender,
        "category": record.category,
    }


def job_render_fields(record: ProductRecord) -> dict[str, str]:
    """The product fields a job's pixels depend on (its prompt and placement): recorded with every render, and
    a job whose product changed any of them renders again."""
    return {
        **attributes(record),
        "garment_class": record.garment_class.value,
        "prompt": record.prompt,
        "negative_prompt": record.negative_prompt,
    }


def _fields_current(recorded: Mapping[str, Any], current: Mapping[str, str]) -> bool:
    """Whether a job's recorded render fields are the product's now (rows from before they were recorded, {},
    are taken as current: an upgrade re-renders nothing)."""
    return not recorded or recorded == current


# 1. Prepare a product -------------------------------------------------------------------------------------


def plan_catalogue(
    records: Sequence[ProductRecord], ctx: RunContext, res: Resources, chunk: int = 1000
) -> Iterator[PreparedProduct]:
    """Plan many products at once: photo hashes (stat / 304 when unchanged) and one state-store read per chunk.

    A product that comes back with nothing to do (`needs_cutout` false) is finished as skipped without a
    task, a decode or a segmenter; the others go to `prepare_product(record, ctx, res, planned)`.
    """
    policy = ctx.profile.image_policy(ctx.csv_dir)  # once, not per product
    for start in range(0, len(records), chunk):
        # The chunk is planned whole with the cycle collector paused (see gc_pause), then handed out: the
        # caller's work between products never runs inside the pause.
        with collector_paused():
            planned = _plan_chunk(records[start : start + chunk], policy, ctx, res)
        yield from planned


def _plan_chunk(
    part: Sequence[ProductRecord], policy: ImagePolicy, ctx: RunContext, res: Resources
) -> list[PreparedProduct]:
    """Plan these products: those whose completed-product record still holds (pipelines/production/
    completed.py) are taken whole from it, the others job by job with one photo-cache read and one
    state-store read for all of them."""
    profile, layout = ctx.profile, res.layout
    presets_after: dict[tuple[str, ...], tuple[tuple[str, str], ...]] = {}  # a chunk's products share them

    def presets_for(earlier: Sequence[str]) -> tuple[tuple[str, str], ...]:
        if (found := presets_after.get(key := tuple(earlier))) is None:
            found = presets_after[key] = _preset_names(output_presets(ctx, res, earlier))
        return found

    def whole(record: ProductRecord, photo_hash: str, photo_stamp: str) -> None:
        if not ctx.force and record.sku in chunk.completed:
            fact = _facts(record, photo_hash, ctx)
            found = completed.reused_whole(chunk, fact, photo_stamp, presets_for, profile.presets[0], layout)
            if found is not None:
                planned[record.sku] = _reused_product(record, found, layout)

    # 1. The records and the stamps they are checked against, read before any job they vouch for; the local
    # photos' stamps, read before their hashes.
    chunk = completed.read_chunk([record.sku for record in part], res.store, res.storage)
    photo_stamps = {record.sku: _photo_stamp(record) for record in part} if chunk.storage is not None else {}
    # 2. Products with a local photo that nothing moved under since their record: no photo-cache lookup, no job
    # rows, no decisions, no listings.
    planned: dict[str, PreparedProduct] = {}
    for record in part:
        if photo_stamps.get(record.sku):
            whole(record, "", photo_stamps[record.sku])
    # 3. The others' photo hashes: from the photo cache when the file's stat (or the server's 304) says it is
    # unchanged, else by reading (a local file under allowed roots, or an allow-listed URL); a remote photo's
    # record holds while its hash does.
    rest = [record for record in part if record.sku not in planned]
    photos: Sequence[str | ImageFetchError] = (
        res.photos.hashes([record.image for record in rest], policy)
        if res.photos is not None
        else [_read_hash(record, policy) for record in rest]
    )
    for record, photo in zip(rest, photos, strict=True):
        if isinstance(photo, str) and chunk.storage is not None and not photo_stamps.get(record.sku):
            whole(record, photo, "")
    # 4. The others job by job: one state-store read for all of them.
    by_jobs = [
        (record, photo) for record, photo in zip(rest, photos, strict=True) if record.sku not in planned
    ]
    plans = {record.sku: plan_product(record, profile) for record, _ in by_jobs}
    job_ids = [plan.job_id for product in plans.values() for plan in product]
    states, verdicts = (res.store.get_many(job_ids), res.store.decisions(job_ids)) if job_ids else ({}, {})
    for record, photo in by_jobs:
        product_plans = plans[record.sku]
        if chunk.storage is None or isinstance(photo, ImageFetchError):
            planned[record.sku] = _plan_one(record, product_plans, states, verdicts, photo, ctx, res)
            continue
        # Its folders stamped before the plan lists them, so a record made from the listing is never newer.
        # (A record needs every job's outputs in the same presets, checked by completed_record: the first
        # recorded job's are the ones to stamp.) The wall clock, as the filesystem's, for the racy check.
        first = next((states[plan.job_id] for plan in product_plans if plan.job_id in states), None)
        earlier = _presets_in(first.outputs, res) if first is not None else []
        presets = presets_for(earlier)
        stamped_at = time.time_ns()
        file_stamps = chunk.storage.stamps(completed.stamp_keys(record.sku, [n for n, _ in presets], layout))
        prepared = _plan_one(record, product_plans, states, verdicts, photo, ctx, res)
        planned[record.sku] = prepared
        if prepared.rejected is None and not prepared.todo and not prepared.needs_cutout and not ctx.force:
            fact = _facts(record, photo, ctx)
            made = completed.completed_record(
                chunk, fact, prepared.skipped, states, earlier, presets, prepared.flags,
                photo_stamps.get(record.sku, ""), file_stamps, stamped_at,
            )  # fmt: skip
            if made is not None:
                chunk.written.append(made)
                # Its outcomes from the record from now on: the same, compact (no JobOutcome per job kept).
                prepared.skipped = completed.reused_jobs(fact, presets, profile.presets[0], made.jobs, layout)
    # 5. What this plan found complete, for the next one (one write for the chunk).
    res.store.record_completed(chunk.written, ctx.run_id)
    return [planned[record.sku] for record in part]


def _photo_stamp(record: ProductRecord) -> str:
    """A local photo's `file_stamp` ("" for a remote photo, or one that cannot be read: the photo cache says why)."""
    if record.image.path is None:
        return ""
    try:
        return file_stamp(record.image.path)
    except OSError:
        return ""


def _read_hash(record: ProductRecord, policy: ImagePolicy) -> str | ImageFetchError:
    """The photo's hash by reading it (no photo cache), or why it cannot be read."""
    try:
        return image_hash(fetch_image_bytes(record.image, policy))
    except ImageFetchError as error:
        return error


def _facts(record: ProductRecord, photo_hash: str, ctx: RunContext) -> completed.ProductFacts:
    """What the product's plan is made of now (a completed-product record holds while these stay)."""
    poses, variants = plan_shape(record, ctx.profile)
    return completed.ProductFacts(
        record.sku, photo_hash, ctx.fingerprint, job_render_fields(record), poses, variants
    )


def _preset_names(presets: Sequence[Preset]) -> tuple[tuple[str, str], ...]:
    return tuple((preset.name, preset.extension) for preset in presets)


def _reused_product(
    record: ProductRecord, whole: tuple[ReusedJobs, list[str]], layout: OutputLayout
) -> PreparedProduct:
    """A product taken whole from its completed record: every job reused, the cutout's flags as recorded."""
    jobs, flags = whole
    return PreparedProduct(
        record=record,
        image_hash=jobs.image_hash,
        cutout=layout.cutout(record.sku),
        source=layout.source_thumbnail(record.sku),
        flags=flags,
        skipped=jobs,
        needs_cutout=False,
    )


def prepare_product(
    record: ProductRecord, ctx: RunContext, res: Resources, planned: PreparedProduct | None = None
) -> PreparedProduct:
    """Fetch, hash, skip what is done, decode, segment and save the cutout; bad input comes back rejected.

    planned: this product from `plan_catalogue` (else it is planned here). Transient faults (a fetch that timed
    out after its own retries) are raised for the caller to retry.
    """
    timer = time.perf_counter()
    prepared = planned if planned is not None else next(plan_catalogue([record], ctx, res))
    if prepared.rejected is not None or not prepared.needs_cutout:
        return prepared
    profile = ctx.profile
    try:
        # 3. The photo's bytes (the plan knew its hash without them), the very photo the plan hashed.
        data = fetch_image_bytes(record.image, profile.image_policy(ctx.csv_dir))
        if image_hash(data) != prepared.image_hash:
            raise ImageFetchError("The photo changed while this run was using it; run the catalogue again.")
        prepared.seconds["load"] = time.perf_counter() - timer
        # 4. Decode robustly and cut the garment out (a supplied alpha channel is used as is).
        timer = time.perf_counter()
        segmenter = res.models.segmenter(
            profile.segmentation_backend, profile.segmentation_options, ctx.device
        )
        cutout = prepare_cutout(data, segmenter, max_pixels=profile.max_pixels, name=record.image.raw)
    except (InputError, ImageFetchError) as error:
        return _rejected(prepared, str(error))
    prepared.flags.extend(cutout.flags)
    prepared.seconds["segment"] = time.perf_counter() - timer
    # 5. Save the cutout, the source thumbnail for the contact sheet, and the cutout's record.
    timer = time.perf_counter()
    res.storage.write_bytes(prepared.cutout, encode_png(cutout.rgba, compress_level=1))
    res.storage.write_bytes(prepared.source, encode_jpeg(cutout.thumbnail, quality=85))
    record_key = res.layout.cutout_record(record.sku)
    write_json(res.storage, record_key, {"image_sha256": prepared.image_hash, "flags": prepared.flags})
    prepared.seconds["save_cutout"] = time.perf_counter() - timer
    return prepared


def _plan_one(
    record: ProductRecord,
    plans: Sequence[JobPlan],
    states: Mapping[str, JobState],
    verdicts: Mapping[str, ReviewDecision],
    photo: str | ImageFetchError,
    ctx: RunContext,
    res: Resources,
) -> PreparedProduct:
    """Steps 1-2 of a product: its photo's hash, then which jobs render, which are reused (and derive presets).

    photo: the photo's hash (from the photo cache, or read), or why it cannot be read.
    """
    prepared = PreparedProduct(record=record)
    layout = res.layout
    # 1. The photo's hash (the chunk's plan had it from the photo cache or by reading); a photo that cannot be
    # read rejects the product.
    if isinstance(photo, ImageFetchError):
        return _rejected(prepared, str(photo))
    prepared.image_hash = photo
    # 2. A job rendered before with this photo and config is not rendered again: presets it lacks are
    # derived from its stored master (no decode, no renderer). Reviewers' verdicts on the stored render come
    # first: approved stays as it is, rejected renders again with a new seed. Every file asked about is
    # asked at once (a folder listing per product, not a stat per file).
    prepared.cutout, prepared.source = layout.cutout(record.sku), layout.source_thumbnail(record.sku)
    record_key = layout.cutout_record(record.sku)
    wanted = [prepared.cutout, record_key]
    files: dict[str, JobFiles] = {}  # the recorded jobs' output files (the jobs of a product share presets)
    fields = job_render_fields(record)
    skipped: list[JobOutcome] = []
    prepared.skipped = skipped
    presets_after: dict[tuple[str, ...], list[Preset]] = {}
    for plan in plans:
        if (state := states.get(plan.job_id)) is not None:
            prepared.earlier_presets[plan.job_id] = earlier = _presets_in(state.outputs, res)
            if (presets := presets_after.get(earlier_key := tuple(earlier))) is None:
                presets = presets_after[earlier_key] = output_presets(ctx, res, earlier)
            files[plan.job_id] = made = JobFiles.of(plan, presets, layout)
            wanted += made.paths
    present = res.storage.existing(wanted)
    for plan in plans:
        state = states.get(plan.job_id)
        job_files = files.get(plan.job_id)  # None: the job was never recorded
        master = job_files.keys[MASTER] if job_files else layout.master_image(plan.sku, plan.job_id)
        stored = job_files is not None and job_files.stored(MASTER, present)
        verdict = _verdict_on_stored(state, verdicts.get(plan.job_id), master) if stored else None
        if state is not None and verdict is not None and verdict.decision == "reject":
            seed = rerender_seed(state.seed if state.seed is not None else plan.seed)
            prepared.todo.append(replace(plan, seed=seed))
            prepared.rerenders[plan.job_id] = {
                "previous_seed": state.seed, "reason": verdict.reason, "comment": verdict.comment,
                "reviewer": verdict.reviewer, "decided_at": verdict.decided_at,
            }  # fmt: skip
            continue
        approved = verdict is not None and verdict.decision == "approve"
        if (
            job_files
            and state is not None
            and stored
            and approved
            and state.image_hash == prepared.image_hash
        ):
            skipped.append(reuse_render(plan, state, prepared, ctx, res, True, (job_files, present)))
            continue
        if (
            ctx.force
            or state is None
            or not stored
            or not state.is_current(prepared.image_hash, ctx.fingerprint)
            or not _fields_current(state.render_fields, fields)
            or job_files is None
        ):
            prepared.todo.append(plan)
            continue
        skipped.append(reuse_render(plan, state, prepared, ctx, res, found=(job_files, present)))
    prepared.seen = {
        plan.job_id: states[plan.job_id].updated_at for plan in prepared.todo if plan.job_id in states
    }
    if not prepared.todo and prepared.cutout in present and record_key in present:
        # Nothing to render: the cutout's quality flags come from its record, made from this very photo.
        recorded = read_json(res.storage, record_key)
        if recorded.get("image_sha256") == prepared.image_hash:
            prepared.flags.extend(recorded.get("flags", []))
            prepared.needs_cutout = False
    return prepared


def _verdict_on_stored(
    state: JobState | None, decision: ReviewDecision | None, master: str
) -> ReviewDecision | None:
    """The reviewers' decision in force on the stored render (decisions.decision_on), or None."""
    if state is None:
        return None
    seed = state.seed if state.seed is not None else -1
    return decision_on(decision, render_id(master, seed, state.config_fingerprint, state.image_hash))


def output_presets(ctx: RunContext, res: Resources, earlier: Sequence[str] = ()) -> list[Preset]:
    """The presets a job is finished in: the master (the stored render) first, then the run's presets, then
    any preset an earlier render was derived into (so no derived file is ever left older than its master)."""
    names = dict.fromkeys([MASTER, *ctx.profile.presets, *(name for name in earlier if name in res.presets)])
    return [res.presets[name] for name in names]


def _presets_in(outputs: Sequence[str], res: Resources) -> list[str]:
    """The preset names of a job's recorded image keys."""
    names: list[str] = []
    for key in outputs:
        name = res.layout.preset_of(key)
        if name in res.presets and name not in names:
            names.append(name)
    return names


@dataclass(frozen=True)
class JobFiles:
    """A job's image key in each output preset (by name) and every file path they make (image, sidecar)."""

    keys: dict[str, str]
    sidecars: dict[str, str]

    @classmethod
    def of(cls, plan: JobPlan, presets: Sequence[Preset], layout: OutputLayout) -> JobFiles:
        keys = {preset.name: layout.image(preset, plan.sku, plan.job_id) for preset in presets}
        return cls(keys, {name: sidecar_key(key) for name, key in keys.items()})

    @property
    def paths(self) -> list[str]:
        return [*self.keys.values(), *self.sidecars.values()]

    def stored(self, preset: str, present: Set[str]) -> bool:
        """Whether the preset's image and its sidecar are among the keys found in storage."""
        return self.keys[preset] in present and self.sidecars[preset] in present


def _job_outcome(
    plan: JobPlan,
    seed: int,
    state: JobStateName,
    keys: Mapping[str, str],
    ctx: RunContext,
    render: tuple[str, str],
    **details: Any,
) -> JobOutcome:
    """A produced or skipped job's outcome: its output is the image in the run's first preset.

    render: (config fingerprint, photo hash) the job's master was rendered with.
    """
    output = keys[ctx.profile.presets[0]]
    return JobOutcome(
        plan.job_id,
        plan.sku,
        plan.pose,
        plan.variant,
        seed,
        state,
        output=output,
        sidecar=sidecar_key(output),
        outputs=dict(keys),
        render_id=render_id(keys[MASTER], seed, *render),
        **details,
    )


def derive_from_master(
    sku: str,
    job_id: str,
    presets: Sequence[Preset],
    storage: Storage,
    layout: OutputLayout,
    target: Storage | None = None,
) -> dict[str, str]:
    """Write these presets of a job from its stored master (lossless), without the renderer; keys by preset.

    target: where the files go (default: the output folder itself, beside the master).
    """
    out = target if target is not None else storage
    # 1. The master's pixels and metadata: the very pixels the renderer returned.
    master_key = layout.master_image(sku, job_id)
    rgb = load_image_bytes(storage.read_bytes(master_key), name=master_key)[..., :3]
    metadata = ImageMetadata.from_dict(read_json(storage, sidecar_key(master_key)))
    # 2. Each preset through the same finish step as a fresh render; image first, sidecar second.
    keys: dict[str, str] = {}
    for preset, finished in zip(
        presets, finish_presets(np.ascontiguousarray(rgb), presets, metadata), strict=True
    ):
        keys[preset.name] = key = layout.image(preset, sku, job_id)
        out.write_bytes(key, finished.data)
        out.write_bytes(sidecar_key(key), (finished.metadata_json + "\n").encode("utf-8"))
    return keys


def reuse_render(
    plan: JobPlan,
    state: JobState,
    prepared: PreparedProduct,
    ctx: RunContext,
    res: Resources,
    approved: bool = False,
    found: tuple[JobFiles, Set[str]] | None = None,
    reason: str = "",
) -> JobOutcome:
    """A job already rendered with this photo and config: derive the presets it lacks from its stored master.

    found: the job's files in its output presets and the keys the plan found in storage (else both are looked
    up here). reason: why it is reused, for the manifest (default: already rendered, or approved by a
    reviewer).
    """
    storage = res.storage
    if found is None:
        presets = output_presets(ctx, res, prepared.earlier_presets.get(plan.job_id, ()))
        job_files = JobFiles.of(plan, presets, res.layout)
        present: Set[str] = storage.existing(job_files.paths)
    else:
        (job_files, present), presets = found, [res.presets[name] for name in found[0].keys]
    keys = job_files.keys
    # The master is known to be there (the plan checked it).
    missing = [
        preset for preset in presets if preset.name != MASTER and not job_files.stored(preset.name, present)
    ]
    seed = state.seed if state.seed is not None else plan.seed
    if missing:
        derive_from_master(plan.sku, plan.job_id, missing, storage, res.layout)
        outputs = [path for name, key in keys.items() for path in (key, job_files.sidecars[name])]
        res.store.record_produced(
            plan.job_id,
            sku=plan.sku,
            image_hash=state.image_hash,
            fingerprint=state.config_fingerprint,
            outputs=list(dict.fromkeys([*state.outputs, *outputs])),
            seed=seed,
            flags=list(state.flags),
        )
    derived = [preset.name for preset in missing]
    reason = reason or (APPROVED_REASON if approved else REUSED_REASON)
    if derived:
        reason += f"; {', '.join(derived)} derived from its stored master"
    render = (state.config_fingerprint, state.image_hash)
    return _job_outcome(
        plan, seed, "skipped", keys, ctx, render, reason=reason, flags=list(state.flags), derived=derived
    )


def _rejected(prepared: PreparedProduct, reason: str) -> PreparedProduct:
    record = prepared.record
    prepared.rejected = RejectRecord(record.row, record.sku, "image", reason, product_level=True)
    prepared.todo, prepared.skipped = [], []  # a rejected product has no jobs
    return prepared


# 2. Place a batch's jobs (CPU) ----------------------------------------------------------------------------


def place_jobs(
    items: Sequence[BatchItem], ctx: RunContext, res: Resources
) -> tuple[list[PlacedJob], list[JobOutcome]]:
    """Every job on its pose canvas with masks and control image; a product whose placement fails fails alone.

    Each cutout is read once and placed once per pose (variants share the placement).
    """
    placed: list[PlacedJob] = []
    failed: list[JobOutcome] = []
    by_product: dict[str, list[BatchItem]] = {}
    for item in items:
        by_product.setdefault(item.product.record.sku, []).append(item)
    for group in by_product.values():
        product = group[0].product
        record = product.record
        try:
            cutout = load_image_bytes(res.storage.read_bytes(product.cutout), name=product.cutout)
            built = build_render_jobs(
                sku=record.sku,
                cutout_rgba=cutout,
                garment_class=record.garment_class.value,
                specs=[JobSpec(i.plan.job_id, i.plan.pose, i.plan.variant, i.plan.seed) for i in group],
                poses=res.poses,
                settings=ctx.placement,
                prompt=record.prompt,
                negative_prompt=record.negative_prompt,
                attributes=attributes(record),
            )
        except ValueError as error:  # a step's check_inputs or an InputError: this product's input
            failed.extend(record_failed_job(item, f"placement failed: {error}", ctx, res) for item in group)
            continue
        placed.extend(PlacedJob(item, job, flags) for item, (job, flags) in zip(group, built, strict=True))
    return placed, failed


# 3. Render on the device (the only device-bound call) -----------------------------------------------------


def render_on_device(
    renderer: Renderer, lease: AbstractContextManager[Any], jobs: Sequence[RenderJob]
) -> tuple[dict[str, RenderedImage], dict[str, str]]:
    """Render a batch holding the device lease; (images, failure reasons) by job id.

    A RenderError or InputError of the batch renders the jobs one by one, so only the job that breaks fails.
    TransientError (device lost, busy, out of memory) is raised for the caller to retry; anything else is a
    bug and is raised too.
    """
    try:
        with lease:
            return {image.job_id: image for image in renderer(jobs)}, {}
    except (RenderError, InputError) as error:
        if len(jobs) == 1:
            return {}, {jobs[0].job_id: f"render failed: {error}"}
    rendered: dict[str, RenderedImage] = {}
    failures: dict[str, str] = {}
    for job in jobs:
        try:
            with lease:
                rendered.update({image.job_id: image for image in renderer([job])})
        except (RenderError, InputError) as error:
            failures[job.job_id] = f"render failed: {error}"
    return rendered, failures


# 4. Finish a rendered image (CPU) -------------------------------------------------------------------------


def job_metadata(
    item: BatchItem,
    rendered: RenderedImage,
    renderer_info: dict[str, Any],
    flags: Sequence[str],
    ctx: RunContext,
    fit: Mapping[str, Any] | None = None,
    garment_mask: str = "",
) -> ImageMetadata:
    """Everything needed to regenerate one image (`onmodel reproduce` reads this back)."""
    record = item.product.record
    return ImageMetadata(
        job_id=item.plan.job_id,
        sku=record.sku,
        row=record.row,
        pose=item.plan.pose,
        variant=item.plan.variant,
        seed=rendered.seed,
        planned_seed=item.plan.seed,
        garment_class=record.garment_class.value,
        source_image=record.image.raw,
        source_path=str(record.image.path) if record.image.path else "",
        source_url=record.image.url or "",
        source_sha256=item.product.image_hash,
        preset=MASTER,
        config_fingerprint=ctx.fingerprint,
        code_version=code_version(),
        run_id=ctx.run_id,
        profile=ctx.profile.data,
        renderer=renderer_info,
        render_params=rendered.params,
        prompt=record.prompt,
        negative_prompt=record.negative_prompt,
        attributes=attributes(record),
        flags=list(flags),
        source_identity=record.identity,
        variant_skus=list(record.variant_skus),
        rerender_of=dict(item.product.rerenders.get(item.plan.job_id, {})),
        fit=dict(fit or {}),
        garment_mask=garment_mask,
    )


def finish_job(
    placed: PlacedJob,
    rendered: RenderedImage,
    renderer_info: dict[str, Any],
    ctx: RunContext,
    res: Resources,
) -> JobOutcome:
    """Store the master render, derive the run's presets from it, write each image + JSON sidecar atomically,
    then record the job as produced."""
    item = placed.item
    plan = item.plan
    flags = [*placed.flags, *rendered.flags]
    presets = output_presets(ctx, res, item.product.earlier_presets.get(plan.job_id, ()))
    # 1. Master and presets, encoding and metadata: the same function reproduce and `export` use.
    mask_key = res.layout.garment_mask(plan.sku, plan.job_id)
    metadata = job_metadata(item, rendered, renderer_info, flags, ctx, placed.job.fit, mask_key)
    finished = finish_presets(rendered.image, presets, metadata)
    # 2. The placed garment's mask, images, then sidecars, state last: a crash in between leaves a job that
    # simply re-renders.
    res.storage.write_bytes(mask_key, encode_mask_png(placed.job.garment_mask))
    keys: dict[str, str] = {}
    for preset, image in zip(presets, finished, strict=True):
        keys[preset.name] = key = res.layout.image(preset, plan.sku, plan.job_id)
        res.storage.write_bytes(key, image.data)
        res.storage.write_bytes(sidecar_key(key), (image.metadata_json + "\n").encode("utf-8"))
    res.store.record_produced(
        plan.job_id,
        sku=plan.sku,
        image_hash=item.product.image_hash,
        fingerprint=ctx.fingerprint,
        outputs=[*(path for key in keys.values() for path in (key, sidecar_key(key))), mask_key],
        seed=rendered.seed,
        flags=flags,
        run_id=ctx.run_id,
        render_fields=job_render_fields(item.product.record),
        render_fingerprint=ctx.fingerprint,
    )
    render = (ctx.fingerprint, item.product.image_hash)
    return _job_outcome(plan, rendered.seed, "produced", keys, ctx, render, flags=flags)


def record_failed_job(item: BatchItem, reason: str, ctx: RunContext, res: Resources) -> JobOutcome:
    """A failed job, recorded in the job store so the next run tries it again."""
    res.store.record_failed(
        item.plan.job_id,
        sku=item.plan.sku,
        image_hash=item.product.image_hash,
        fingerprint=ctx.fingerprint,
        reason=reason,
        seed=item.plan.seed,
        run_id=ctx.run_id,
    )
    return JobOutcome(
        item.plan.job_id, item.plan.sku, item.plan.pose, item.plan.variant, item.plan.seed, "failed", reason
    )


# 2-4 together: one micro-batch ----------------------------------------------------------------------------


def render_batch(items: Sequence[BatchItem], ctx: RunContext, res: Resources) -> list[JobOutcome]:
    """Place (CPU), render (device lease only around the render call), finish (CPU); outcomes in item order."""
    outcomes: dict[str, JobOutcome] = {}
    # 1. Placement and masks.
    started = time.perf_counter()
    placed, failed = place_jobs(items, ctx, res)
    outcomes.update({outcome.job_id: outcome for outcome in failed})
    place_s = (time.perf_counter() - started) / max(1, len(items))
    render_s = finish_s = 0.0
    if placed:
        # 2. The device call.
        profile = ctx.profile
        renderer, lease = res.models.renderer(profile.renderer_name, profile.renderer_options, ctx.device)
        started = time.perf_counter()
        rendered, failures = render_on_device(renderer, lease, [p.job for p in placed])
        render_s = (time.perf_counter() - started) / len(placed)
        # 3. Preset, encoding, atomic writes and the state record.
        renderer_info = renderer.describe()
        started = time.perf_counter()
        for job in placed:
            job_id = job.item.plan.job_id
            if job_id in failures:
                outcomes[job_id] = record_failed_job(job.item, failures[job_id], ctx, res)
            else:
                outcomes[job_id] = finish_job(job, rendered[job_id], renderer_info, ctx, res)
        finish_s = (time.perf_counter() - started) / len(placed)
    for item in items:
        outcome = outcomes[item.plan.job_id]
        outcome.timings.update(place_masks=place_s)
        if outcome.state == "produced":
            outcome.timings.update(render=render_s, write=finish_s)
    return [outcomes[item.plan.job_id] for item in items]


# 5. The product's contact sheet ---------------------------------------------------------------------------


def publish_sheet(product: ProductOutcome, prepared: PreparedProduct, ctx: RunContext, res: Resources) -> str:
    """One contact sheet per product: source photo and cutout first, then every pose and variant; its key."""
    storage = res.storage
    tiles: list[Tile] = []
    if prepared.source and storage.exists(prepared.source):
        source = load_image_bytes(storage.read_bytes(prepared.source), name=prepared.source)
        tiles.append(Tile(image=source, caption=["source photo", f"row {product.row}"], flags=[]))
    if prepared.cutout and storage.exists(prepared.cutout):
        cutout = load_image_bytes(storage.read_bytes(prepared.cutout), name=prepared.cutout)
        tiles.append(Tile(image=cutout, caption=["cutout"], flags=list(prepared.flags)))
    width, height = ctx.profile.canvas
    for job in product.jobs:
        caption = [f"{job.pose} · v{job.variant}", f"seed {job.seed}"]
        if job.state == "failed":
            blank = np.full((height, width, 3), 235, np.uint8)
            tiles.append(Tile(image=blank, caption=caption, flags=["FAILED: " + job.reason[:80]]))
        elif (master := job.outputs.get(MASTER, job.output)) and storage.exists(master):
            image = load_image_bytes(storage.read_bytes(master), name=master)
            tiles.append(Tile(image=image, caption=caption, flags=list(job.flags)))
    record = prepared.record
    title = f"{record.sku} · {record.title}" if record.title else record.sku
    sheet = make_contact_sheet(title, tiles, columns=SHEET_COLUMNS, tile_width=SHEET_TILE_WIDTH)
    key = res.layout.sheet(record.sku)
    storage.write_bytes(key, encode_jpeg(sheet, quality=88))
    return key
