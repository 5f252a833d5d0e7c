"""Prefect tasks: a product or a batch per task, ids and paths in and out, never images or models."""

from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from prefect import task
from prefect.cache_policies import NO_CACHE

from catalog import ImageFetchError, ImagePolicy, fetch_image_bytes
from catalog.schema import ProductRecord
from flows import caches
from flows.errors import is_transient, retry_only_transient
from flows.outputs import JobOutcome, OutputLayout, ProductOutcome, write_json_atomic
from flows.plan import JobPlan, plan_product
from flows.profile import Profile, code_version
from pipelines.contact_sheet import Tile, make_contact_sheet
from pipelines.image_io import (
    ImageLoadError,
    load_image,
    load_image_bytes,
    write_jpeg_atomic,
    write_png_atomic,
)
from pipelines.presets import write_for_preset
from pipelines.render_inputs import build_render_job
from pipelines.renderers.base import RenderedImage, RenderJob
from pipelines.segmentation import get_segmenter

THUMB_LONG_SIDE = 512


@dataclass(frozen=True)
class RunContext:
    """What every task of one run shares: small, picklable, no models."""

    run_id: str
    out_dir: str
    profile: Profile
    fingerprint: str
    device: str = "cpu"
    pose_dir: str = ""
    force: bool = False

    @property
    def layout(self) -> OutputLayout:
        return OutputLayout(Path(self.out_dir))


@dataclass
class PreparedProduct:
    """A product after load + segment: where its cutout is and which jobs are still to do."""

    record: ProductRecord
    image_hash: str = ""
    cutout_path: str = ""
    source_path: str = ""
    flags: list[str] = field(default_factory=list)
    todo: list[JobPlan] = field(default_factory=list)
    skipped: list[JobOutcome] = field(default_factory=list)
    rejected_reason: str = ""
    rejected_column: str = ""
    seconds: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class BatchItem:
    """One job of a render batch, with the product facts it needs (paths, not pixels)."""

    plan: JobPlan
    product: PreparedProduct


def image_policy(profile: Profile, csv_dir: str = "") -> ImagePolicy:
    """The profile's image-fetch limits; the CSV's own folder is always an allowed root."""
    images = profile.images
    roots = tuple(Path(root) for root in images.get("allowed_roots") or ()) + (
        (Path(csv_dir),) if csv_dir else ()
    )
    return ImagePolicy(
        allowed_roots=roots,
        allowed_hosts=tuple(images.get("allowed_hosts") or ()),
        timeout_s=float(images.get("timeout_s", 20)),
        max_bytes=int(images.get("max_bytes", 30_000_000)),
        retries=int(images.get("retries", 2)),
    )


def _thumbnail(rgb: np.ndarray, long_side: int = THUMB_LONG_SIDE) -> np.ndarray:
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return rgb
    return cv2.resize(
        rgb, (max(1, round(width * scale)), max(1, round(height * scale))), interpolation=cv2.INTER_AREA
    )


def cut_out_garment(image: np.ndarray, profile: Profile, device: str) -> tuple[np.ndarray | None, list[str]]:
    """Segment a product photo and crop the cutout to the garment; None when no garment was found."""
    if image.shape[2] == 4:  # suppliers' cut-out PNGs: their alpha is the mask
        segmentation = get_segmenter("alpha")(image)
        flags = ["supplied_alpha", *segmentation.flags]
    else:
        segmenter = caches.segmenter(profile.segmentation_backend, profile.segmentation_options, device)
        segmentation = segmenter(image)
        flags = list(segmentation.flags)
    if not segmentation.mask.any():
        return None, flags
    x0, y0, x1, y1 = segmentation.bbox
    return segmentation.cutout[y0:y1, x0:x1], flags


def prepare_product_sync(record: ProductRecord, ctx: RunContext, csv_dir: str = "") -> PreparedProduct:
    """Load, hash, segment and save the cutout of one product; bad input comes back rejected, not raised."""
    prepared = PreparedProduct(record=record)
    profile = ctx.profile
    layout = ctx.layout
    timer = time.perf_counter()
    # 1. Fetch the bytes (local file under allowed roots, or an allow-listed URL) and hash them.
    try:
        data = fetch_image_bytes(record.image, image_policy(profile, csv_dir))
    except ImageFetchError as error:
        prepared.rejected_reason, prepared.rejected_column = str(error), "image"
        return prepared
    prepared.image_hash = hashlib.sha256(data).hexdigest()
    # 2. Plan jobs and drop those already produced with this image and config.
    store = caches.state_store(str(layout.state_db))
    for plan in plan_product(record, profile):
        if store.is_done(plan.job_id, prepared.image_hash, ctx.fingerprint) and not ctx.force:
            state = store.get(plan.job_id)
            output = str(state.outputs[0]) if state else ""
            prepared.skipped.append(
                JobOutcome(
                    plan.job_id,
                    plan.sku,
                    plan.pose,
                    plan.variant,
                    plan.seed,
                    "skipped",
                    reason="already produced with this image and config",
                    output=output,
                    sidecar=str(Path(output).with_suffix(".json")),
                )
            )
        else:
            prepared.todo.append(plan)
    cutout_path = layout.cutout(record.sku)
    cutout_record = cutout_path.with_suffix(".json")
    prepared.cutout_path, prepared.source_path = str(cutout_path), str(layout.source_thumbnail(record.sku))
    if not prepared.todo and cutout_path.exists() and cutout_record.exists():
        # Nothing to render: no decode, no segmentation; the cutout's quality flags come from its record.
        recorded = json.loads(cutout_record.read_text(encoding="utf-8"))
        if recorded.get("image_sha256") == prepared.image_hash:
            prepared.flags.extend(recorded.get("flags", []))
            return prepared
    # 3. Decode robustly (EXIF, CMYK, 16-bit, bombs, corrupt files).
    try:
        image = load_image_bytes(data, int(profile.images.get("max_pixels", 40_000_000)), record.image.raw)
    except ImageLoadError as error:
        prepared.rejected_reason, prepared.rejected_column = str(error), "image"
        return prepared
    prepared.seconds["load"] = time.perf_counter() - timer
    # 4. Segment: a supplied alpha channel is used as is; otherwise the profile's backend.
    timer = time.perf_counter()
    cutout, flags = cut_out_garment(image, profile, ctx.device)
    prepared.flags.extend(flags)
    prepared.seconds["segment"] = time.perf_counter() - timer
    if cutout is None:
        prepared.rejected_reason = (
            "no garment found in the photo (the cutout is empty): is it a plain-background packshot?"
        )
        prepared.rejected_column = "image"
        return prepared
    # 5. Save the cutout (cropped to the garment) and a source thumbnail for the contact sheet.
    timer = time.perf_counter()
    write_png_atomic(cutout_path, cutout, compress_level=1)
    write_jpeg_atomic(layout.source_thumbnail(record.sku), _thumbnail(image[..., :3]), quality=85)
    write_json_atomic(cutout_record, {"image_sha256": prepared.image_hash, "flags": prepared.flags})
    prepared.cutout_path, prepared.source_path = str(cutout_path), str(layout.source_thumbnail(record.sku))
    prepared.seconds["save_cutout"] = time.perf_counter() - timer
    return prepared


@task(
    name="prepare-product",
    task_run_name="prepare-{record.sku}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_only_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def prepare_product(record: ProductRecord, ctx: RunContext, csv_dir: str = "") -> PreparedProduct:
    """Load, segment and save the cutout of one product."""
    return prepare_product_sync(record, ctx, csv_dir)


def image_metadata(
    item: BatchItem, rendered: RenderedImage, renderer_info: dict[str, Any], ctx: RunContext, preset: str
) -> dict[str, Any]:
    """Everything needed to regenerate one image (`onmodel reproduce` reads this back)."""
    record = item.product.record
    return {
        "onmodel": 1,
        "job_id": item.plan.job_id,
        "sku": record.sku,
        "row": record.row,
        "pose": item.plan.pose,
        "variant": item.plan.variant,
        "seed": rendered.seed,
        "planned_seed": item.plan.seed,
        "garment_class": record.garment_class.value,
        "source_image": record.image.raw,
        "source_path": str(record.image.path) if record.image.path else "",
        "source_url": record.image.url or "",
        "source_sha256": item.product.image_hash,
        "prompt": record.prompt,
        "negative_prompt": record.negative_prompt,
        "attributes": {
            "title": record.title,
            "color": record.color,
            "gender": record.gender,
            "category": record.category,
        },
        "renderer": renderer_info,
        "render_params": rendered.params,
        "flags": rendered.flags,
        "preset": preset,
        "config_fingerprint": ctx.fingerprint,
        "profile": ctx.profile.data,
        "code_version": code_version(),
        "run_id": ctx.run_id,
    }


@dataclass
class BatchCache:
    """Within one batch: each cutout is read once, each (cutout, pose) placed once."""

    cutouts: dict[str, np.ndarray] = field(default_factory=dict)
    placements: dict[tuple[str, str], tuple[RenderJob, tuple[str, ...]]] = field(default_factory=dict)

    def cutout(self, path: str) -> np.ndarray:
        if path not in self.cutouts:
            self.cutouts[path] = load_image(Path(path))
        return self.cutouts[path]


def build_job(item: BatchItem, ctx: RunContext, cache: BatchCache) -> tuple[RenderJob, tuple[str, ...]]:
    """Place one job's garment on its pose canvas and build the masks.

    Variants of one product and pose share the placement, masks and control image (only the seed differs),
    so each (cutout, pose) is built once per batch.
    """
    profile = ctx.profile
    record = item.product.record
    key = (item.product.cutout_path, item.plan.pose)
    if key not in cache.placements:
        cache.placements[key] = build_render_job(
            job_id=item.plan.job_id,
            sku=record.sku,
            pose=caches.pose_library(ctx.pose_dir)[item.plan.pose],
            variant=item.plan.variant,
            seed=item.plan.seed,
            cutout_rgba=cache.cutout(item.product.cutout_path),
            garment_class=record.garment_class.value,
            canvas_size=profile.canvas,
            erode_px=profile.erode_px,
            feather_px=profile.feather_px,
            prompt=record.prompt,
            negative_prompt=record.negative_prompt,
            attributes={
                "title": record.title,
                "color": record.color,
                "gender": record.gender,
                "category": record.category,
            },
        )
    job, flags = cache.placements[key]
    return replace(job, job_id=item.plan.job_id, variant=item.plan.variant, seed=item.plan.seed), flags


def write_output(
    item: BatchItem,
    rendered: RenderedImage,
    renderer_info: dict[str, Any],
    ctx: RunContext,
    extra_flags: tuple[str, ...] = (),
) -> JobOutcome:
    """Apply the run's output preset and write image + JSON sidecar atomically, then record the state."""
    preset = caches.presets()[ctx.profile.preset]
    flags = list(extra_flags) + list(rendered.flags)
    rendered.flags = flags
    metadata = image_metadata(item, rendered, renderer_info, ctx, preset.name)
    stem = ctx.layout.image_stem(preset.name, item.plan.sku, item.plan.job_id)
    path = write_for_preset(stem, rendered.image, preset, text={"onmodel": _json(metadata)})
    sidecar = path.with_suffix(".json")
    write_json_atomic(sidecar, metadata)
    caches.state_store(str(ctx.layout.state_db)).record_produced(
        item.plan.job_id,
        sku=item.plan.sku,
        image_hash=item.product.image_hash,
        fingerprint=ctx.fingerprint,
        outputs=[path, sidecar],
    )
    return JobOutcome(
        item.plan.job_id,
        item.plan.sku,
        item.plan.pose,
        item.plan.variant,
        rendered.seed,
        "produced",
        output=str(path),
        sidecar=str(sidecar),
        flags=flags,
    )


def _json(payload: dict[str, Any]) -> str:
    return json.dumps(payload, sort_keys=True, default=str)


def render_batch_sync(items: list[BatchItem], ctx: RunContext) -> list[JobOutcome]:
    """Render one micro-batch on the resident renderer; a job that fails alone never sinks the others."""
    outcomes: dict[str, JobOutcome] = {}
    # 1. Build every job's canvas and masks; a job whose placement fails is recorded, the rest go on.
    built: list[tuple[BatchItem, RenderJob, tuple[str, ...]]] = []
    cache = BatchCache()
    timings: dict[str, dict[str, float]] = {item.plan.job_id: {} for item in items}
    for item in items:
        started = time.perf_counter()
        try:
            job, flags = build_job(item, ctx, cache)
        except Exception as error:  # noqa: BLE001 - isolate: one bad product must not stop the batch
            if is_transient(error):
                raise
            outcomes[item.plan.job_id] = failed_outcome(item, f"placement failed: {error}", ctx)
        else:
            built.append((item, job, flags))
        timings[item.plan.job_id]["place_masks"] = time.perf_counter() - started
    # 2. Render on the resident renderer (one batch at a time per device); on a non-transient error,
    #    render the jobs one by one so only the job that breaks fails.
    if built:
        renderer, lock = caches.renderer(ctx.profile.renderer_name, ctx.profile.renderer_options, ctx.device)
        renderer_info = renderer.describe()
        started = time.perf_counter()
        rendered = _render_isolating_failures(renderer, lock, built, outcomes, ctx)
        per_job = (time.perf_counter() - started) / len(built)
        # 3. Preset, metadata, atomic writes and the state record.
        for item, _job, flags in built:
            if item.plan.job_id in outcomes:
                continue
            started = time.perf_counter()
            try:
                outcomes[item.plan.job_id] = write_output(
                    item, rendered[item.plan.job_id], renderer_info, ctx, flags
                )
                timings[item.plan.job_id].update(render=per_job, write=time.perf_counter() - started)
            except Exception as error:  # noqa: BLE001
                if is_transient(error):
                    raise
                outcomes[item.plan.job_id] = failed_outcome(item, f"writing the image failed: {error}", ctx)
    for item in items:
        outcomes[item.plan.job_id].timings.update(timings[item.plan.job_id])
    return [outcomes[item.plan.job_id] for item in items]


def _render_isolating_failures(
    renderer: Any,
    lock: Any,
    built: list[tuple[BatchItem, RenderJob, tuple[str, ...]]],
    outcomes: dict[str, JobOutcome],
    ctx: RunContext,
) -> dict[str, RenderedImage]:
    jobs = [job for _item, job, _flags in built]
    try:
        with lock:
            return {image.job_id: image for image in renderer(jobs)}
    except Exception as error:  # noqa: BLE001
        if is_transient(error):
            raise
        if len(jobs) == 1:
            outcomes[built[0][0].plan.job_id] = failed_outcome(built[0][0], f"render failed: {error}", ctx)
            return {}
    rendered: dict[str, RenderedImage] = {}
    for item, job, _flags in built:
        try:
            with lock:
                rendered.update({image.job_id: image for image in renderer([job])})
        except Exception as error:  # noqa: BLE001
            if is_transient(error):
                raise
            outcomes[item.plan.job_id] = failed_outcome(item, f"render failed: {error}", ctx)
    return rendered


def failed_outcome(item: BatchItem, reason: str, ctx: RunContext | None = None) -> JobOutcome:
    """A failed job, recorded in the state store so the next run tries it again."""
    if ctx is not None:
        caches.state_store(str(ctx.layout.state_db)).record_failed(
            item.plan.job_id, item.plan.sku, item.product.image_hash, ctx.fingerprint, reason
        )
    return JobOutcome(
        item.plan.job_id,
        item.plan.sku,
        item.plan.pose,
        item.plan.variant,
        item.plan.seed,
        "failed",
        reason=reason,
    )


@task(
    name="render-batch",
    task_run_name="render-{items[0].plan.job_id}",
    retries=2,
    retry_delay_seconds=1,
    retry_condition_fn=retry_only_transient,
    cache_policy=NO_CACHE,
    persist_result=False,
)
def render_batch(items: list[BatchItem], ctx: RunContext) -> list[JobOutcome]:
    """Render a micro-batch of jobs and write their images."""
    return render_batch_sync(items, ctx)


def publish_sheet_sync(product: ProductOutcome, prepared: PreparedProduct, ctx: RunContext) -> str:
    """One contact sheet per product: source photo and cutout first, then every pose and variant."""
    tiles: list[Tile] = []
    if prepared.source_path and Path(prepared.source_path).exists():
        tiles.append(
            Tile(
                image=load_image(Path(prepared.source_path)),
                caption=["source photo", f"row {product.row}"],
                flags=[],
            )
        )
    if prepared.cutout_path and Path(prepared.cutout_path).exists():
        tiles.append(
            Tile(image=load_image(Path(prepared.cutout_path)), caption=["cutout"], flags=list(prepared.flags))
        )
    for job in product.jobs:
        caption = [f"{job.pose} · v{job.variant}", f"seed {job.seed}"]
        if job.state == "failed":
            blank = np.full((ctx.profile.canvas[1], ctx.profile.canvas[0], 3), 235, np.uint8)
            tiles.append(Tile(image=blank, caption=caption, flags=["FAILED: " + job.reason[:80]]))
        elif job.output and Path(job.output).exists():
            tiles.append(Tile(image=load_image(Path(job.output)), caption=caption, flags=list(job.flags)))
    record = prepared.record
    title = f"{record.sku} · {record.title}" if record.title else record.sku
    sheet = make_contact_sheet(title, tiles, columns=4, tile_width=256)
    path = ctx.layout.sheet(record.sku)
    write_jpeg_atomic(path, sheet, quality=88)
    return str(path)


@task(name="publish-sheet", task_run_name="sheet-{product.sku}", cache_policy=NO_CACHE, persist_result=False)
def publish_sheet(product: ProductOutcome, prepared: PreparedProduct, ctx: RunContext) -> str:
    """Write one product's contact sheet."""
    return publish_sheet_sync(product, prepared, ctx)
