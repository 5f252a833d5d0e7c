"""The scenes behind the golden images, shared by the tests and golden/make_golden.py."""

from __future__ import annotations

import cv2
import numpy as np

from pipelines.masks import build_masks
from pipelines.poses import load_pose_library, render_openpose
from pipelines.renderers.base import RenderJob

CANVAS = (256, 384)


def synthetic_tee(width: int = 300, height: int = 280) -> np.ndarray:
    """A flat T-shirt cutout (RGBA) with a two-colour print, drawn from a polygon."""
    outline = np.array(
        [(0.36, 0.0), (0.18, 0.06), (0.0, 0.3), (0.14, 0.42), (0.24, 0.32), (0.24, 1.0), (0.76, 1.0),
         (0.76, 0.32), (0.86, 0.42), (1.0, 0.3), (0.82, 0.06), (0.64, 0.0), (0.5, 0.1)]
    )  # fmt: skip
    points = np.round(outline * [width - 1, height - 1]).astype(np.int32)
    alpha = np.zeros((height, width), np.uint8)
    cv2.fillPoly(alpha, [points], 255, cv2.LINE_AA)
    rgb = np.empty((height, width, 3), np.uint8)
    rgb[...] = (40, 90, 200)
    rgb[height // 3 : height // 2, width // 3 : 2 * width // 3] = (250, 250, 250)
    return np.dstack([rgb, alpha])


def openpose_front() -> np.ndarray:
    """The front pose's control image at 256 x 384."""
    pose = load_pose_library()["front"]
    return render_openpose(pose.keypoints_px(*CANVAS), *CANVAS)


def draft_job(variant: int = 0, seed: int = 7, pose_name: str = "front") -> RenderJob:
    """A RenderJob of the synthetic tee on a pose, built without render_inputs (independent of it)."""
    from pipelines.placement import place_garment

    pose = load_pose_library()[pose_name]
    keypoints = pose.keypoints_px(*CANVAS)
    placement = place_garment(synthetic_tee(), "upper_body", keypoints, CANVAS)
    masks = build_masks(placement.placed_rgba[..., 3])
    return RenderJob(
        job_id=f"golden-{pose_name}-{variant}",
        sku="GOLD",
        pose=pose_name,
        variant=variant,
        seed=seed,
        placed_rgba=placement.placed_rgba,
        garment_mask=masks.garment_mask,
        inpaint_mask=masks.inpaint_mask,
        keep_mask=masks.keep_mask,
        control_image=render_openpose(keypoints, *CANVAS),
        keypoints=keypoints,
    )


def draft_scene() -> np.ndarray:
    """The draft renderer's image of the golden job."""
    from pipelines.renderers.draft import DraftRenderer

    return DraftRenderer()([draft_job()])[0].image
