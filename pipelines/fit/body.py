"""A simple body drawn from pose keypoints, and the fit measures taken against it.

The body is what the fit is judged by (bench/fit.py, tests), not what is rendered: a torso quad (shoulders to
hips), tapered capsules for the upper arms, forearms, thighs and calves, the hull between the thighs and a neck
capsule, all sized by the torso length like the draft mannequin. Measures:
  floating_share: the share of garment pixels farther than a looseness margin from the body.
  arm_in_sleeve:  the share of an upper arm's axis, from the shoulder as far as the sleeve reaches (at most to
                  the elbow), that runs inside the garment.
"""

from __future__ import annotations

import math

import cv2
import numpy as np

# OpenPose-18 indices.
NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 1, 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 8, 9, 10, 11, 12, 13
ARMS = {"r": (R_SHOULDER, R_ELBOW, R_WRIST), "l": (L_SHOULDER, L_ELBOW, L_WRIST)}
LEGS = {"r": (R_HIP, R_KNEE, R_ANKLE), "l": (L_HIP, L_KNEE, L_ANKLE)}
# Radii at the two ends of each limb capsule, as fractions of the torso length (the draft mannequin's).
UPPER_ARM = (0.085, 0.068)
FOREARM = (0.066, 0.048)
THIGH = (0.15, 0.095)
CALF = (0.09, 0.055)
NECK_RADIUS = 0.095
LOOSENESS = 0.04  # of the torso length: fabric this close to the body still lies on it (~9 px at 512x768)
ARM_SAMPLES = 48


def visible(keypoints: np.ndarray, *indices: int) -> bool:
    """True when every listed keypoint has confidence > 0."""
    return all(keypoints[i, 2] > 0 for i in indices)


def torso_length(keypoints: np.ndarray, canvas_height: int) -> float:
    """Neck to mid-hip in pixels (31 % of the canvas height when the pose lacks them)."""
    if visible(keypoints, NECK, R_HIP, L_HIP):
        hips = (keypoints[R_HIP, :2] + keypoints[L_HIP, :2]) / 2.0
        length = float(np.linalg.norm(hips - keypoints[NECK, :2]))
        if length > 4.0:
            return length
    return 0.31 * canvas_height


def _capsule(mask: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> None:
    """Fill a tapered capsule (two discs and their tangents)."""
    discs = [
        cv2.ellipse2Poly((round(p[0]), round(p[1])), (max(1, round(r)), max(1, round(r))), 0, 0, 360, 10)
        for p, r in ((p0, r0), (p1, r1))
    ]
    cv2.fillConvexPoly(mask, cv2.convexHull(np.concatenate(discs).astype(np.int32)), 255)


def body_mask(keypoints_px: np.ndarray, canvas_size: tuple[int, int]) -> np.ndarray:
    """uint8 (H, W) 255 on the body drawn from the keypoints, 0 elsewhere."""
    width, height = canvas_size
    keypoints = np.asarray(keypoints_px, dtype=np.float64)
    unit = torso_length(keypoints, height)
    mask = np.zeros((height, width), dtype=np.uint8)
    # 1. Torso quad and the hull between the thighs.
    quad = [i for i in (R_SHOULDER, L_SHOULDER, L_HIP, R_HIP) if keypoints[i, 2] > 0]
    if len(quad) >= 3:
        cv2.fillConvexPoly(mask, np.round(keypoints[quad, :2]).astype(np.int32), 255)
    between = [i for i in (R_HIP, L_HIP, L_KNEE, R_KNEE) if keypoints[i, 2] > 0]
    if len(between) >= 3:
        hull = cv2.convexHull(np.round(keypoints[between, :2]).astype(np.int32))
        cv2.fillConvexPoly(mask, hull, 255)
    # 2. Limb capsules.
    for shoulder, elbow, wrist in ARMS.values():
        if visible(keypoints, shoulder, elbow):
            _capsule(mask, keypoints[shoulder, :2], keypoints[elbow, :2], *(r * unit for r in UPPER_ARM))
        if visible(keypoints, elbow, wrist):
            _capsule(mask, keypoints[elbow, :2], keypoints[wrist, :2], *(r * unit for r in FOREARM))
    for hip, knee, ankle in LEGS.values():
        if visible(keypoints, hip, knee):
            _capsule(mask, keypoints[hip, :2], keypoints[knee, :2], *(r * unit for r in THIGH))
        if visible(keypoints, knee, ankle):
            _capsule(mask, keypoints[knee, :2], keypoints[ankle, :2], *(r * unit for r in CALF))
    # 3. The neck, up from the neck keypoint.
    if keypoints[NECK, 2] > 0:
        neck = keypoints[NECK, :2]
        _capsule(mask, neck, neck - np.array([0.0, 0.25 * unit]), NECK_RADIUS * unit, NECK_RADIUS * unit)
    return mask


def floating_share(garment_mask: np.ndarray, keypoints_px: np.ndarray, looseness: float = LOOSENESS) -> float:
    """Share of garment pixels (mask > 127) farther than looseness x torso length from the body."""
    garment = garment_mask > 127
    total = int(np.count_nonzero(garment))
    if total == 0:
        return 0.0
    height, width = garment.shape
    body = body_mask(keypoints_px, (width, height))
    distance = cv2.distanceTransform((body == 0).astype(np.uint8), cv2.DIST_L2, 5)
    margin = looseness * torso_length(np.asarray(keypoints_px, dtype=np.float64), height)
    return float(np.count_nonzero(garment & (distance > margin))) / total


def arm_in_sleeve(
    garment_mask: np.ndarray, keypoints_px: np.ndarray, side: str, reach_px: float
) -> float | None:
    """Share of the upper arm's axis inside the garment, from the shoulder up to reach_px (at most the elbow).

    None when the pose lacks that shoulder or elbow.
    """
    keypoints = np.asarray(keypoints_px, dtype=np.float64)
    shoulder, elbow, _ = ARMS[side]
    if not visible(keypoints, shoulder, elbow):
        return None
    start, end = keypoints[shoulder, :2], keypoints[elbow, :2]
    length = float(np.linalg.norm(end - start))
    reach = min(length, max(reach_px, 1.0))
    direction = (end - start) / max(length, 1e-9)
    points = start + direction * np.linspace(0.0, reach, ARM_SAMPLES)[:, None]
    height, width = garment_mask.shape
    xs = np.clip(np.round(points[:, 0]).astype(int), 0, width - 1)
    ys = np.clip(np.round(points[:, 1]).astype(int), 0, height - 1)
    inside = (garment_mask[ys, xs] > 127) & (points[:, 0] >= 0) & (points[:, 1] >= 0)
    inside &= (points[:, 0] < width) & (points[:, 1] < height)
    return float(np.count_nonzero(inside)) / ARM_SAMPLES


def limb_angle(keypoints: np.ndarray, start: int, end: int) -> float:
    """Radians of the limb start->end in image coordinates (atan2(dy, dx))."""
    dx, dy = keypoints[end, :2] - keypoints[start, :2]
    return math.atan2(float(dy), float(dx))
