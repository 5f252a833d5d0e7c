"""Regenerate one image from the metadata it carries, through the same steps the run used."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from catalog import fetch_image_bytes
from catalog.schema import ImageRef
from pipelines.errors import InputError
from pipelines.finish import finish_image
from pipelines.image_io import load_image, write_bytes_atomic
from pipelines.metadata import read_image_metadata
from pipelines.poses import Pose
from pipelines.prepare import image_hash, prepare_cutout
from pipelines.presets import Preset
from pipelines.production.profile import profile_from_dict
from pipelines.production.stages import Models, RunContext, render_on_device
from pipelines.render_inputs import JobSpec, build_render_jobs

BATCH_TOLERANCE = 2


class ReproduceError(InputError):
    """The image carries no usable metadata, or its source changed."""


@dataclass
class ReproduceReport:
    """How the regenerated image compares with the original, both as decoded from their files.

    A job rendered inside a diffusion batch can differ from the same job rendered alone by a level or two
    (batched float kernels round differently); `matches` allows that, `identical` does not.
    """

    original: Path
    regenerated: Path
    max_abs_diff: int
    tolerance: int = BATCH_TOLERANCE

    @property
    def identical(self) -> bool:
        return self.max_abs_diff == 0

    @property
    def matches(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        if self.identical:
            verdict = "identical"
        elif self.matches:
            verdict = (
                f"matches (max pixel difference {self.max_abs_diff}, within the {self.tolerance}-level "
                "rounding of batched kernels)"
            )
        else:
            verdict = f"DIFFERS (max pixel difference {self.max_abs_diff})"
        return f"regenerated {self.original} -> {self.regenerated}: {verdict}"


def reproduce_image(
    image_path: Path,
    *,
    models: Models,
    poses: Mapping[str, Pose],
    presets: Mapping[str, Preset],
    out_path: Path | None = None,
    device: str = "cpu",
) -> ReproduceReport:
    """Re-run segmentation, placement, the renderer and the finish step with the recorded profile and seed."""
    # 1. Metadata and the profile it was made with.
    meta = read_image_metadata(image_path)
    profile = profile_from_dict(meta.profile).with_overrides(preset=meta.preset)
    if meta.preset not in presets:
        raise ReproduceError(f"{image_path.name} was made with preset {meta.preset!r}, not in presets.yaml.")
    if meta.pose not in poses:
        raise ReproduceError(f"{image_path.name} was made with pose {meta.pose!r}, not in the pose library.")
    ctx = RunContext(run_id="reproduce", profile=profile, fingerprint=meta.config_fingerprint, device=device)
    # 2. The same source bytes (the hash proves it).
    ref = ImageRef(
        raw=meta.source_image,
        path=Path(meta.source_path) if meta.source_path else None,
        url=meta.source_url or None,
    )
    data = fetch_image_bytes(ref, profile.image_policy(ref.path.parent if ref.path else ""))
    if image_hash(data) != meta.source_sha256:
        raise ReproduceError(
            f"the source photo {ref.raw} changed since {image_path.name} was made (hash differs)."
        )
    # 3. Cutout, placement and masks, the render with the seed that was used, and the finish step.
    segmenter = models.segmenter(profile.segmentation_backend, profile.segmentation_options, device)
    cutout = prepare_cutout(data, segmenter, max_pixels=profile.max_pixels, name=ref.raw)
    [(job, _flags)] = build_render_jobs(
        sku=meta.sku,
        cutout_rgba=cutout.rgba,
        garment_class=meta.garment_class,
        specs=[JobSpec(meta.job_id, meta.pose, meta.variant, meta.seed)],
        poses=poses,
        settings=ctx.placement,
        prompt=meta.prompt,
        negative_prompt=meta.negative_prompt,
        attributes=meta.attributes,
    )
    renderer, lease = models.renderer(profile.renderer_name, profile.renderer_options, device)
    rendered, failures = render_on_device(renderer, lease, [job])
    if failures:
        raise ReproduceError(failures[job.job_id])
    finished = finish_image(
        rendered[job.job_id].image, presets[meta.preset], replace(meta, run_id="reproduce")
    )
    # 4. Write it beside the original (same format) and compare the decoded pixels of both files.
    target = out_path or image_path.with_name(f"{image_path.stem}.reproduced.{finished.extension}")
    write_bytes_atomic(target, finished.data)
    original = load_image(image_path)[..., :3]
    regenerated = finished.decoded()
    if original.shape != regenerated.shape:
        return ReproduceReport(image_path, target, 255)
    diff = int(np.abs(original.astype(np.int16) - regenerated.astype(np.int16)).max())
    return ReproduceReport(image_path, target, diff)
