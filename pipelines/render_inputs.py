"""Turn a product cutout and a pose into a RenderJob: placement, masks and control image."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipelines.fit import fit_garment
from pipelines.landmarks import KIND_HINTS
from pipelines.masks import build_masks
from pipelines.placement import place_garment
from pipelines.poses import Pose, render_openpose
from pipelines.renderers.base import RenderJob

# Catalogue category words -> the landmark finder's kind hint (pipelines.landmarks.KIND_HINTS); a hint that
# does not match the garment class is dropped, so a mis-categorised product is fitted from its outline alone.
KIND_HINT_OF_CATEGORY = {
    "t-shirt": "tee",
    "tshirt": "tee",
    "tee": "tee",
    "shirt": "shirt",
    "blouse": "shirt",
    "vest": "tank",
    "tank": "tank",
    "tank top": "tank",
    "camisole": "tank",
    "dress": "dress",
    "trousers": "trousers",
    "pants": "trousers",
    "jeans": "trousers",
    "shorts": "shorts",
    "skirt": "skirt",
}


def kind_hint_for(category: str | None, garment_class: str) -> str | None:
    """The landmark kind hint for a product category, or None when unknown or not of this garment class."""
    hint = KIND_HINT_OF_CATEGORY.get((category or "").strip().lower())
    if hint is None or garment_class not in KIND_HINTS[hint]:
        return None
    return hint


def check_inputs(cutout_rgba: np.ndarray, canvas_size: tuple[int, int]) -> None:
    """Raise a ValueError that names what is off."""
    if cutout_rgba.ndim != 3 or cutout_rgba.shape[2] != 4 or cutout_rgba.dtype != np.uint8:
        raise ValueError(f"cutout must be uint8 RGBA (H, W, 4); got {cutout_rgba.dtype} {cutout_rgba.shape}.")
    width, height = canvas_size
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas size must be positive (width, height); got {canvas_size}.")


def build_render_job(
    *,
    job_id: str,
    sku: str,
    pose: Pose,
    variant: int,
    seed: int,
    cutout_rgba: np.ndarray,
    garment_class: str,
    canvas_size: tuple[int, int],
    erode_px: int,
    feather_px: int,
    prompt: str = "",
    negative_prompt: str = "",
    attributes: Mapping[str, str] | None = None,
    fit: bool = True,
) -> tuple[RenderJob, tuple[str, ...]]:
    """Fit the garment to the pose on its canvas and build every mask the renderer needs; returns (job, flags).

    fit=False places it rigidly (one similarity transform), as before the garment fit existed.
    """
    check_inputs(cutout_rgba, canvas_size)
    width, height = canvas_size
    # 1. Pose keypoints in canvas pixels.
    keypoints = pose.keypoints_px(width, height)
    # 2. Fit the cutout to the body by panels (rigid placement, flagged fit_fallback, when it cannot be);
    #    where a limb panel cannot follow, the pose's keypoints move and the control image follows them.
    if fit:
        hint = kind_hint_for((attributes or {}).get("category"), garment_class)
        fitted = fit_garment(cutout_rgba, garment_class, keypoints, canvas_size, kind_hint=hint)
        placed_rgba, keypoints, flags, fit_record = (
            fitted.placed_rgba,
            fitted.keypoints,
            fitted.flags,
            fitted.params,
        )
    else:
        placement = place_garment(cutout_rgba, garment_class, keypoints, canvas_size)
        placed_rgba, flags = placement.placed_rgba, placement.flags
        fit_record = {"method": "rigid", "matrix": [[float(v) for v in row] for row in placement.matrix]}
    control_image = render_openpose(keypoints, width, height)
    # 3. Garment mask (of the fitted garment), eroded core kept exactly, feather band, inpaint mask.
    masks = build_masks(placed_rgba[..., 3], erode_px=erode_px, feather_px=feather_px)
    job = RenderJob(
        job_id=job_id,
        sku=sku,
        pose=pose.name,
        variant=variant,
        seed=seed,
        placed_rgba=placed_rgba,
        garment_mask=masks.garment_mask,
        inpaint_mask=masks.inpaint_mask,
        keep_mask=masks.keep_mask,
        control_image=control_image,
        keypoints=keypoints,
        garment_class=garment_class,
        prompt=prompt,
        negative_prompt=negative_prompt,
        attributes=dict(attributes or {}),
        fit=fit_record,
    )
    return job, tuple(flags)


@dataclass(frozen=True)
class JobSpec:
    """What differs between the jobs of one product: the pose, the variant and its seed."""

    job_id: str
    pose: str
    variant: int
    seed: int


@dataclass(frozen=True)
class PlacementSettings:
    """The profile's canvas and mask settings, and whether the garment is fitted (else placed rigidly)."""

    canvas_size: tuple[int, int]
    erode_px: int
    feather_px: int
    fit: bool = True


def build_render_jobs(
    *,
    sku: str,
    cutout_rgba: np.ndarray,
    garment_class: str,
    specs: Sequence[JobSpec],
    poses: Mapping[str, Pose],
    settings: PlacementSettings,
    prompt: str = "",
    negative_prompt: str = "",
    attributes: Mapping[str, str] | None = None,
) -> list[tuple[RenderJob, tuple[str, ...]]]:
    """Render jobs for one product's jobs: the fit, masks and control image built once per pose.

    Variants of one pose share the placement (only the seed differs), so a product with 3 poses x 4 variants
    places the garment 3 times, not 12.
    """
    unknown = sorted({spec.pose for spec in specs} - set(poses))
    if unknown:
        raise ValueError(f"pose(s) {unknown} are not in the pose library; known: {sorted(poses)}.")
    placed: dict[str, tuple[RenderJob, tuple[str, ...]]] = {}
    jobs = []
    for spec in specs:
        if spec.pose not in placed:
            placed[spec.pose] = build_render_job(
                job_id=spec.job_id,
                sku=sku,
                pose=poses[spec.pose],
                variant=spec.variant,
                seed=spec.seed,
                cutout_rgba=cutout_rgba,
                garment_class=garment_class,
                canvas_size=settings.canvas_size,
                erode_px=settings.erode_px,
                feather_px=settings.feather_px,
                prompt=prompt,
                negative_prompt=negative_prompt,
                attributes=attributes,
                fit=settings.fit,
            )
        job, flags = placed[spec.pose]
        jobs.append((replace(job, job_id=spec.job_id, variant=spec.variant, seed=spec.seed), flags))
    return jobs
