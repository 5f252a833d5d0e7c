"""Fit a garment cutout to a pose: panels split at its landmarks follow the body, pixels only resampled.

Falls back to today's rigid placement (pipelines.placement), flagged `fit_fallback`, when the landmarks are
missing or unsure, or the garment does not split into panels at them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import cv2
import numpy as np

from pipelines.fit.body import torso_length
from pipelines.fit.panels import Limb, Regions, blend_weights, panel_names, split_regions
from pipelines.fit.skeleton import Rig, build_rig, shoulder_seam_share, torso_scale
from pipelines.fit.skirt import SkirtWarp, skirt_warp
from pipelines.fit.warp import Warped, local_stretch, warp_panels
from pipelines.landmarks import GarmentLandmarks, find_landmarks
from pipelines.placement import (
    UPSCALE_FLAG_FACTOR,
    _unpremultiply,
    alpha_box,
    check_inputs,
    place_garment,
    premultiplied_shrink,
    premultiply,
    rigid_scale,
)

# 5: side panels (the skirt record's middle, sides, sides_near, ramp); 4: sleeves beside the body in front of
# the torso's side, dresses no longer than rigid; 3: merged sleeves,
# halters, asymmetric garments, the skirt panel; 2: vests by their seams
VERSION = 5
SKIRT_REGION = -2  # the skirt's label in the measured region map (limbs are 1.., the torso 0)
SIDE_REGION = -3  # and the side panels' (beyond the middle band, below where the deformation starts)
LANDMARK_MAX_SIDE = 480  # landmarks are found on the crop's mask shrunk to at most this (they hold no more)
# The fitted torso's scale per the rigid placement's: outside this the landmarks misled the fit (a tank or a
# short top fits at ~0.6-0.7x rigid, whose width rule counts sleeves; trousers by their waist ~0.8-1.2x).
MIN_SCALE_VS_RIGID, MAX_SCALE_VS_RIGID = 0.5, 1.8
MAX_DRESS_VS_RIGID = 1.0  # a dress at most as long as the rigid placement makes it
# A sleeve hanging beside the body covers the torso's side this far (chest widths) in from its seam.
SIDE_BAND = 0.12


@dataclass(frozen=True)
class FitResult:
    """The fitted garment on a transparent canvas, the (possibly adapted) pose and what was done.

    params is JSON-able: the warp's parameters, the pose adaptations, or the fallback's reason.
    """

    placed_rgba: np.ndarray  # uint8 (H, W, 4)
    keypoints: np.ndarray  # float32 (18, 3): the pose's keypoints after adaptation (control image follows)
    flags: tuple[str, ...]
    params: dict[str, Any]
    torso_stretch: float = 0.0  # max local stretch of the torso panel (measured with measure=True only)
    skirt_stretch: float = 0.0  # and of the skirt below the hips (its taper: at most MAX_HEM_TAPER)
    side_stretch: float = 0.0  # and of the side panels (at most MAX_SIDE_STRETCH)
    sleeve_reach_px: dict[str, float] = field(default_factory=dict)  # canvas length of each sleeve panel

    @property
    def fell_back(self) -> bool:
        """True when the garment was placed rigidly."""
        return self.params.get("method") == "rigid"


def fit_garment(
    cutout_rgba: np.ndarray,
    garment_class: str,
    keypoints_px: np.ndarray,
    canvas_size: tuple[int, int],
    kind_hint: str | None = None,
    measure: bool = False,
) -> FitResult:
    """Fit the cutout to the pose by panels; rigid placement (flag fit_fallback) when it cannot be fitted.

    measure: also measure the torso panel's local stretch on the canvas (bench/fit.py, tests; ~5 ms).
    """
    check_inputs(cutout_rgba, garment_class, keypoints_px, canvas_size)
    keypoints = np.asarray(keypoints_px, dtype=np.float32)
    # 1. Crop to the alpha box; landmarks on its mask at a working size.
    x0, y0, x1, y1 = alpha_box(cutout_rgba)
    crop = cutout_rgba[y0:y1, x0:x1]
    landmarks = _landmarks(cv2.extractChannel(crop, 3), garment_class, kind_hint)
    if not landmarks.usable:
        return _rigid(cutout_rgba, garment_class, keypoints, canvas_size, f"landmarks: {landmarks.reason}")
    tilt = math.radians(landmarks.tilt_deg)
    axis = (-math.sin(tilt), math.cos(tilt))
    crop_points = {name: (p.x, p.y) for name, p in landmarks.points.items()}
    # 2. The working image: the crop resized by the torso scale, premultiplied (no dark fringes).
    seam_share = 0.0
    if garment_class != "lower_body" and not landmarks.silhouette.startswith("sleeved"):
        seam_share = shoulder_seam_share(crop[..., 3], crop_points, axis, landmarks.height_px)
    scale = torso_scale(garment_class, crop_points, axis, keypoints.astype(np.float64), seam_share)
    rigid = rigid_scale(garment_class, keypoints, x1 - x0, y1 - y0)
    if garment_class == "full_body":
        # A dress fitted by its chest alone came out a size larger and longer than the rigid placement's
        # collar-to-knee (ankle) reach, its hem between the calves: its length bounds it too.
        scale = min(scale, MAX_DRESS_VS_RIGID * rigid)
    # A scale far from the rigid placement's means the landmarks misled the fit: place it rigidly.
    versus_rigid = scale / rigid
    if not MIN_SCALE_VS_RIGID <= versus_rigid <= MAX_SCALE_VS_RIGID:
        return _rigid(
            cutout_rgba,
            garment_class,
            keypoints,
            canvas_size,
            f"scale: the fitted garment would be {versus_rigid:.2f}x the rigid placement's size "
            f"(sane: {MIN_SCALE_VS_RIGID}-{MAX_SCALE_VS_RIGID}x); its landmarks are not to be trusted",
        )
    premultiplied, alpha, (sx, sy) = _working_image(crop, scale)
    points = {name: ((x + 0.5) * sx - 0.5, (y + 0.5) * sy - 0.5) for name, (x, y) in crop_points.items()}
    # 3. Panels split at the landmarks.
    regions, problem = split_regions(alpha, garment_class, landmarks.silhouette, points, axis)
    if regions is None:
        return _rigid(cutout_rgba, garment_class, keypoints, canvas_size, f"panels: {problem}")
    # 4. Where each panel goes (the pose adapts where a panel cannot follow), and the warp.
    rig = build_rig(garment_class, points, axis, regions, keypoints.astype(np.float64), scale / sx)
    names = panel_names(regions, rig.splits)
    weights = blend_weights(regions, rig.splits)
    affines = [rig.affines[name] for name in names]
    order = _depth_order(names, rig.in_front)
    # A skirt (a dress below the hips) follows the legs, a top narrows to the waist: the torso panel deformed
    # across the body by depth.
    skirt = skirt_warp(
        garment_class,
        landmarks.silhouette,
        points,
        axis,
        alpha,
        affines[0],
        rig.keypoints,
        torso_length(rig.keypoints, canvas_size[1]),
        rig.compression,
        np.where(regions.labels == 0, alpha, 0).astype(np.uint8) if regions.limbs else alpha,
    )
    guarded = [i for i, name in enumerate(names) if i and name.removesuffix("_lower") in rig.guarded]
    guard = _torso_middle(regions, points) if guarded else None
    warped = warp_panels(premultiplied, alpha, weights, affines, order, canvas_size, skirt, guard, guarded)
    placed = _on_canvas(warped, canvas_size)
    # 5. What a reviewer and `reproduce` need.
    torso_stretch, skirt_stretch, side_stretch = 0.0, 0.0, 0.0
    if measure:
        nominal = math.sqrt(abs(float(np.linalg.det(affines[0][:, :2]))) / rig.compression)
        # A skirt below the hips is a panel of its own with its own bound, and so are the side panels; a
        # top's waist (the middle band) is the torso's.
        labels = _with_skirt_region(regions, skirt, affines[0], garment_class != "upper_body")

        def largest(region: int) -> float:
            stretch = local_stretch(warped, labels, region, nominal=nominal)
            return float(stretch.max()) if stretch.size else 0.0

        torso_stretch = largest(0)
        if skirt is not None and garment_class != "upper_body":
            skirt_stretch = largest(SKIRT_REGION)
        if skirt is not None and skirt.has_sides:
            side_stretch = largest(SIDE_REGION)
    flags = []
    if _touches_edge(placed[..., 3]):
        flags.append("garment_clipped_by_canvas")
    if scale > UPSCALE_FLAG_FACTOR:
        flags.append("garment_upscaled")
    if rig.adaptations:
        flags.append("pose_adapted")
    reach = {limb.name: _sleeve_reach(limb, rig) for limb in regions.limbs if limb.kind == "sleeve"}
    params = _params(
        landmarks,
        (x0, y0, x1, y1),
        alpha.shape,
        scale,
        versus_rigid,
        (sx, sy),
        names,
        affines,
        order,
        rig,
        regions,
    )
    params["skirt"] = skirt.to_dict() if skirt is not None else None
    return FitResult(
        placed_rgba=placed,
        keypoints=rig.keypoints.astype(np.float32),
        flags=tuple(flags),
        params=params,
        torso_stretch=torso_stretch,
        sleeve_reach_px=reach,
        skirt_stretch=skirt_stretch,
        side_stretch=side_stretch,
    )


def _with_skirt_region(
    regions: Regions, skirt: SkirtWarp | None, torso: np.ndarray, skirted: bool = True
) -> np.ndarray:
    """The region labels with the torso's pixels below where the deformation starts relabelled: beyond the
    middle band as SIDE_REGION (side panels), the rest as SKIRT_REGION when skirted (a skirt below the hips;
    a top's waist stays the torso's)."""
    if skirt is None or not (skirted or skirt.has_sides):
        return regions.labels
    height, width = regions.labels.shape
    ys, xs = np.mgrid[0:height, 0:width]
    linear = torso[:, :2]
    canvas_x = linear[0, 0] * xs + linear[0, 1] * ys + torso[0, 2] - skirt.origin[0]
    canvas_y = linear[1, 0] * xs + linear[1, 1] * ys + torso[1, 2] - skirt.origin[1]
    depth = canvas_x * skirt.down[0] + canvas_y * skirt.down[1]
    labels = regions.labels.copy()
    below = (labels == 0) & (depth > 0)
    if skirt.has_sides:
        across = skirt.across
        sides = (labels == 0) & (depth > -skirt.lead)
        sides &= np.abs(canvas_x * across[0] + canvas_y * across[1]) > skirt.middle
        labels[sides] = SIDE_REGION
        below &= ~sides
    if skirted:
        labels[below] = SKIRT_REGION
    return labels


def _sleeve_reach(limb: Limb, rig: Rig) -> float:
    """How far along the upper arm (from the shoulder keypoint) the fitted sleeve reaches, in canvas pixels."""
    shoulder, elbow = (2, 3) if limb.side == "r" else (5, 6)
    keypoints = rig.keypoints
    arm = keypoints[elbow, :2] - keypoints[shoulder, :2]
    length = float(np.linalg.norm(arm))
    if keypoints[shoulder, 2] <= 0 or keypoints[elbow, 2] <= 0 or length < 1e-6:
        return 0.0
    affine = rig.affines[limb.name]
    cuff = np.asarray(limb.root) + np.asarray(limb.direction) * limb.length
    cuff_canvas = affine[:, :2] @ cuff + affine[:, 2]
    return max(0.0, float((cuff_canvas - keypoints[shoulder, :2]) @ arm) / length)


def _landmarks(alpha: np.ndarray, garment_class: str, kind_hint: str | None) -> GarmentLandmarks:
    """Landmarks of the crop's mask, found at most LANDMARK_MAX_SIDE px and returned in crop pixels."""
    height, width = alpha.shape
    factor = min(1.0, LANDMARK_MAX_SIDE / max(height, width))
    if factor >= 1.0:
        return find_landmarks(alpha, garment_class, kind_hint)
    small_w, small_h = max(1, round(width * factor)), max(1, round(height * factor))
    whole = min(width // small_w, height // small_h)  # a whole factor first: OpenCV's fast block average
    if whole >= 2:
        alpha = cv2.resize(alpha, (width // whole, height // whole), interpolation=cv2.INTER_AREA)
    small = cv2.resize(alpha, (small_w, small_h), interpolation=cv2.INTER_AREA)
    found = find_landmarks(small, garment_class, kind_hint)
    fx, fy = small_w / width, small_h / height
    from pipelines.landmarks import Landmark, SleeveAxis

    def back(x: float, y: float) -> tuple[float, float]:
        return ((x + 0.5) / fx - 0.5, (y + 0.5) / fy - 0.5)

    points = {name: Landmark(*back(p.x, p.y), p.confidence) for name, p in found.points.items()}
    sleeves = {
        side: SleeveAxis(back(*axis.root), back(*axis.end), axis.confidence)
        for side, axis in found.sleeves.items()
    }
    return GarmentLandmarks(
        garment_class=found.garment_class,
        silhouette=found.silhouette,
        points=points,
        sleeves=sleeves,
        tilt_deg=found.tilt_deg,
        height_px=found.height_px / fy,
        reason=found.reason,
    )


def _working_image(crop: np.ndarray, scale: float) -> tuple[np.ndarray, np.ndarray, tuple[float, float]]:
    """Premultiplied float32 (h, w, 4) (255x scale), its alpha uint8 and the (sx, sy) resize factors."""
    height, width = crop.shape[:2]
    new_w, new_h = max(1, round(width * scale)), max(1, round(height * scale))
    if scale < 1.0:
        resized = premultiplied_shrink(crop, (new_w, new_h))
    else:
        resized = cv2.resize(premultiply(crop, False), (new_w, new_h), interpolation=cv2.INTER_LINEAR)
    resized = resized.reshape(new_h, new_w, 4)
    resized = resized.astype(np.float32)
    working_alpha = np.clip(np.round(resized[..., 3] / 255.0), 0, 255).astype(np.uint8)
    return resized, working_alpha, (new_w / width, new_h / height)


def _torso_middle(regions: Regions, points: dict[str, tuple[float, float]]) -> np.ndarray:
    """uint8 mask of the torso's pixels farther than SIDE_BAND chest widths from every limb region: the
    middle (its print), which a sleeve hanging in front of the torso's side does not cover."""
    chest = math.dist(points["r_armpit"], points["l_armpit"]) if "r_armpit" in points else regions.height
    distance = cv2.distanceTransform((regions.labels == 0).astype(np.uint8), cv2.DIST_L2, 3)
    return (distance > SIDE_BAND * chest).astype(np.uint8)


def _depth_order(names: list[str], in_front: set[str]) -> list[int]:
    """Back to front: limbs tucked behind the torso, the torso, the limbs in front (lower parts last)."""

    def limb_of(name: str) -> str:
        return name.removesuffix("_lower")

    behind = [i for i, name in enumerate(names) if i and limb_of(name) not in in_front]
    front = [i for i, name in enumerate(names) if i and limb_of(name) in in_front]
    return behind + [0] + front


def _on_canvas(warped: Warped, canvas_size: tuple[int, int]) -> np.ndarray:
    """uint8 RGBA canvas with the warped garment un-premultiplied into its box."""
    width, height = canvas_size
    placed = np.zeros((height, width, 4), dtype=np.uint8)
    if warped.box is not None:
        x0, y0, x1, y1 = warped.box
        placed[y0:y1, x0:x1] = _unpremultiply(warped.premultiplied)
    return placed


def _touches_edge(alpha: np.ndarray) -> bool:
    """True when garment pixels reach the canvas border (part of it is cut off)."""
    return bool(alpha[0].any() or alpha[-1].any() or alpha[:, 0].any() or alpha[:, -1].any())


def _rigid(
    cutout_rgba: np.ndarray,
    garment_class: str,
    keypoints: np.ndarray,
    canvas_size: tuple[int, int],
    reason: str,
) -> FitResult:
    """Today's rigid placement, flagged fit_fallback, with the reason recorded."""
    placement = place_garment(cutout_rgba, garment_class, keypoints, canvas_size)
    params = {
        "method": "rigid",
        "version": VERSION,
        "fallback_reason": reason,
        "matrix": [[round(float(v), 9) for v in row] for row in placement.matrix],
    }
    return FitResult(
        placed_rgba=placement.placed_rgba,
        keypoints=keypoints.astype(np.float32).copy(),
        flags=(*placement.flags, "fit_fallback"),
        params=params,
    )


def _params(
    landmarks: GarmentLandmarks,
    crop_box: tuple[int, int, int, int],
    working_shape: tuple[int, ...],
    scale: float,
    versus_rigid: float,
    factors: tuple[float, float],
    names: list[str],
    affines: list[np.ndarray],
    order: list[int],
    rig: Rig,
    regions: Regions,
) -> dict[str, Any]:
    """The JSON-able record of the warp."""
    return {
        "method": "panels",
        "version": VERSION,
        "crop_box": list(crop_box),
        "working_size": [int(working_shape[1]), int(working_shape[0])],
        "scale": round(scale, 6),
        "scale_vs_rigid": round(versus_rigid, 4),
        "resize_factors": [round(factors[0], 6), round(factors[1], 6)],
        "silhouette": landmarks.silhouette,
        "panels": [
            {"name": name, "affine": [[round(float(v), 6) for v in row] for row in affine]}
            for name, affine in zip(names, affines, strict=True)
        ],
        "depth_order": [names[i] for i in order],
        "splits": {split.limb: round(split.t, 3) for split in rig.splits},
        "turns_deg": {name: round(value, 3) for name, value in rig.turns_deg.items()},
        "compression": round(rig.compression, 4),
        "adaptations": [a.to_dict() for a in rig.adaptations],
        "landmarks": {
            name: [round(p.x + crop_box[0], 2), round(p.y + crop_box[1], 2), round(p.confidence, 3)]
            for name, p in sorted(landmarks.points.items())
        },
        "limbs": [
            {
                "name": limb.name,
                "pivot": [round(v, 3) for v in limb.pivot],
                "far_end": [
                    round(r + d * limb.length, 3) for r, d in zip(limb.root, limb.direction, strict=True)
                ],
            }
            for limb in regions.limbs
        ],
    }
