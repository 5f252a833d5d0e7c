"""Place a garment cutout on a pose canvas: uniform scale, torso-axis rotation and position from keypoints."""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.poses import GARMENT_CLASSES, KEYPOINT_NAMES

# OpenPose-18 indices used here.
NECK, R_SHOULDER, L_SHOULDER, R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE = 1, 2, 5, 8, 9, 10, 11, 12, 13
REQUIRED_KEYPOINTS: dict[str, tuple[int, ...]] = {
    "upper_body": (R_SHOULDER, L_SHOULDER, R_HIP, L_HIP),
    "lower_body": (R_HIP, L_HIP, R_KNEE, L_KNEE),
    "full_body": (R_SHOULDER, L_SHOULDER, R_HIP, L_HIP, R_KNEE, L_KNEE),
}
# Fit rules (fractions of body lengths measured on the pose; tuned by eye on the draft renderer).
UPPER_WIDTH_PER_SHOULDER = 1.7  # flat-lay tops with sleeves span ~1.5-1.8 shoulder widths
UPPER_MIN_SHOULDER_PER_TORSO = 0.62  # turned poses foreshorten shoulders; the chest still has depth
COLLAR_ABOVE_SHOULDERS = 0.06  # of the torso length: shoulder keypoints are joint centres, seams sit higher
WAIST_ABOVE_HIPS = 0.25  # of hip-to-knee: a mid-rise waistband sits above the hip joints
LONG_LOWER_ASPECT = 1.5  # height / width of a flat-lay: trousers ~1.6-3.5, shorts and skirts ~0.8-1.4
LONG_DRESS_ASPECT = 2.3  # maxi dresses are much taller than wide; knee-length ones ~1.4-2.0
SHORT_LOWER_REACH = 0.9  # shorts and skirts end a little above the knee
UPSCALE_FLAG_FACTOR = 2.5  # enlarging the source more than this shows its low resolution


@dataclass(frozen=True)
class Placement:
    """placed_rgba uint8 (H, W, 4) on a transparent canvas; matrix maps cutout pixels to canvas pixels."""

    placed_rgba: np.ndarray
    matrix: np.ndarray  # float64 (2, 3) affine: canvas = matrix @ [x, y, 1] of the uncropped cutout
    flags: tuple[str, ...] = ()
    scale: float = 1.0
    angle_deg: float = 0.0
    length: str = ""  # "long" (to ankles) or "short" (to knees) for lower_body and full_body


def check_inputs(
    cutout_rgba: np.ndarray, garment_class: str, keypoints_px: np.ndarray, canvas_size: tuple[int, int]
) -> None:
    """Raise a ValueError that says what is wrong with the cutout, class, pose or canvas."""
    if not isinstance(cutout_rgba, np.ndarray) or cutout_rgba.dtype != np.uint8:
        raise ValueError(
            f"cutout_rgba must be a uint8 array; got {getattr(cutout_rgba, 'dtype', type(cutout_rgba))}."
        )
    if cutout_rgba.ndim != 3 or cutout_rgba.shape[2] != 4:
        raise ValueError(
            f"cutout_rgba must be RGBA (H, W, 4); got shape {cutout_rgba.shape}. Segment the photo first."
        )
    if cv2.countNonZero(cv2.extractChannel(cutout_rgba, 3)) == 0:
        raise ValueError(
            "the garment cutout is fully transparent: segmentation found no garment in the photo."
        )
    if garment_class not in GARMENT_CLASSES:
        raise ValueError(f"unknown garment class {garment_class!r}; use one of {sorted(GARMENT_CLASSES)}.")
    keypoints = np.asarray(keypoints_px)
    if keypoints.shape != (len(KEYPOINT_NAMES), 3):
        raise ValueError(
            f"keypoints_px must be (18, 3) OpenPose-18 [x, y, confidence]; got {keypoints.shape}."
        )
    absent = [KEYPOINT_NAMES[i] for i in REQUIRED_KEYPOINTS[garment_class] if not keypoints[i, 2] > 0]
    if absent:
        raise ValueError(
            f"this pose lacks {', '.join(absent)}, which placing a {garment_class} garment needs; "
            "choose a pose where they are visible."
        )
    width, height = canvas_size
    if width <= 0 or height <= 0:
        raise ValueError(f"canvas_size must be positive (width, height); got {canvas_size}.")


def place_garment(
    cutout_rgba: np.ndarray, garment_class: str, keypoints_px: np.ndarray, canvas_size: tuple[int, int]
) -> Placement:
    """Fit the garment to the body in the pose by class; the garment keeps its aspect ratio."""
    check_inputs(cutout_rgba, garment_class, keypoints_px, canvas_size)
    keypoints = np.asarray(keypoints_px, dtype=np.float64)
    # 1. Crop the cutout to its alpha bounding box so empty margins don't skew the fit.
    x0, y0, x1, y1 = alpha_box(cutout_rgba)
    crop = cutout_rgba[y0:y1, x0:x1]
    crop_height, crop_width = crop.shape[:2]
    # 2. Scale, rotation and anchor (where the garment's top centre lands) from the keypoints.
    scale, angle, anchor, length = _fit(garment_class, keypoints, crop_width, crop_height)
    # 3. Resample premultiplied (no dark fringes), then rotate and move onto the canvas.
    placed, crop_to_canvas = _warp(crop, scale, angle, anchor, canvas_size)
    matrix = (crop_to_canvas @ np.array([[1.0, 0.0, -x0], [0.0, 1.0, -y0], [0.0, 0.0, 1.0]]))[:2]
    # 4. Flags a reviewer should see.
    flags = []
    if _clipped(crop, crop_to_canvas, canvas_size):
        flags.append("garment_clipped_by_canvas")
    if scale > UPSCALE_FLAG_FACTOR:
        flags.append("garment_upscaled")
    applied = math.sqrt(abs(float(np.linalg.det(matrix[:, :2]))))  # after rounding to whole pixels
    return Placement(
        placed, matrix, tuple(flags), scale=applied, angle_deg=math.degrees(angle), length=length
    )


def alpha_box(cutout_rgba: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the pixels with alpha > 0 (cv2.boundingRect: one pass, ~10x numpy's any())."""
    x, y, width, height = cv2.boundingRect(cv2.extractChannel(cutout_rgba, 3))
    return x, y, x + width, y + height


def premultiply(rgba: np.ndarray, exact_integers: bool) -> np.ndarray:
    """RGBA premultiplied by alpha at 255x the 0..255 scale: colour x alpha, alpha x 255.

    exact_integers: uint16 (for area averaging, which cannot overshoot); else float32 (Lanczos can).
    """
    alpha = cv2.extractChannel(rgba, 3)
    factors = cv2.merge([alpha, alpha, alpha, np.full_like(alpha, 255)])
    product = cv2.multiply(np.ascontiguousarray(rgba), factors, dtype=cv2.CV_16U)
    return product if exact_integers else product.astype(np.float32)


def premultiplied_shrink(rgba: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """uint16 premultiplied RGBA (255x scale, as premultiply) area-averaged down to size (w, h), exactly.

    Shrinking more than 2x, a whole factor goes first (OpenCV's fast block average on 16-bit integers: exact
    sums, one rounding), then the rest on the smaller image.
    """
    height, width = rgba.shape[:2]
    premultiplied = premultiply(rgba, True)
    factor = min(width // max(size[0], 1), height // max(size[1], 1))
    if factor >= 2:
        premultiplied = cv2.resize(
            premultiplied, (width // factor, height // factor), interpolation=cv2.INTER_AREA
        )
    return cv2.resize(premultiplied, size, interpolation=cv2.INTER_AREA)


def rigid_scale(garment_class: str, keypoints_px: np.ndarray, crop_width: int, crop_height: int) -> float:
    """The uniform scale (canvas px per cutout px) place_garment gives a garment crop of this size in the pose.

    The garment fit compares its own scale with it: far off means its landmarks misled it (pipelines.fit).
    """
    keypoints = np.asarray(keypoints_px, dtype=np.float64)
    return _fit(garment_class, keypoints, crop_width, crop_height)[0]


def _midpoint(keypoints: np.ndarray, a: int, b: int) -> np.ndarray:
    """Midpoint of two keypoints' x, y."""
    return (keypoints[a, :2] + keypoints[b, :2]) / 2.0


def _axis_angle(top: np.ndarray, bottom: np.ndarray) -> float:
    """Radians to rotate a downward axis (image coordinates) onto top->bottom; 0 = straight down."""
    dx, dy = bottom - top
    return math.atan2(-dx, dy)


def _lower_end(keypoints: np.ndarray, long: bool) -> np.ndarray:
    """Mid-ankle for long garments (extrapolated from hips and knees if ankles are absent), else mid-knee."""
    knees = _midpoint(keypoints, R_KNEE, L_KNEE)
    if not long:
        return knees
    if keypoints[R_ANKLE, 2] > 0 and keypoints[L_ANKLE, 2] > 0:
        return _midpoint(keypoints, R_ANKLE, L_ANKLE)
    hips = _midpoint(keypoints, R_HIP, L_HIP)
    return knees + (knees - hips) * 1.05  # shin ~ thigh length


def _fit(
    garment_class: str, keypoints: np.ndarray, crop_width: int, crop_height: int
) -> tuple[float, float, np.ndarray, str]:
    """(scale, angle radians, anchor xy for the top centre, length) by garment class."""
    shoulders = _midpoint(keypoints, R_SHOULDER, L_SHOULDER)
    hips = _midpoint(keypoints, R_HIP, L_HIP)
    aspect = crop_height / crop_width
    if garment_class == "upper_body":
        torso = float(np.linalg.norm(hips - shoulders))
        shoulder_width = float(np.linalg.norm(keypoints[L_SHOULDER, :2] - keypoints[R_SHOULDER, :2]))
        body_width = max(shoulder_width, torso * UPPER_MIN_SHOULDER_PER_TORSO) * UPPER_WIDTH_PER_SHOULDER
        angle = _axis_angle(shoulders, hips)
        up = _unit_up(angle)
        return body_width / crop_width, angle, shoulders + up * COLLAR_ABOVE_SHOULDERS * torso, ""
    if garment_class == "lower_body":
        long = aspect >= LONG_LOWER_ASPECT
        knees = _midpoint(keypoints, R_KNEE, L_KNEE)
        thigh = float(np.linalg.norm(knees - hips))
        end = _lower_end(keypoints, long)
        angle = _axis_angle(hips, end)
        waist = hips + _unit_up(angle) * WAIST_ABOVE_HIPS * thigh
        reach = float(np.linalg.norm(end - waist)) * (1.0 if long else SHORT_LOWER_REACH)
        return reach / crop_height, angle, waist, "long" if long else "short"
    # full_body: from the collar to the knees, or the ankles for maxi dresses.
    long = aspect >= LONG_DRESS_ASPECT
    torso = float(np.linalg.norm(hips - shoulders))
    angle = _axis_angle(shoulders, hips)
    top = shoulders + _unit_up(angle) * COLLAR_ABOVE_SHOULDERS * torso
    end = _lower_end(keypoints, long)
    reach = float(np.linalg.norm(end - top))
    return reach / crop_height, angle, top, "long" if long else "short"


def _unit_up(angle: float) -> np.ndarray:
    """Unit vector pointing up the body axis leaning by angle."""
    return np.array([math.sin(angle), -math.cos(angle)])


def _warp(
    crop: np.ndarray, scale: float, angle: float, anchor: np.ndarray, canvas_size: tuple[int, int]
) -> tuple[np.ndarray, np.ndarray]:
    """Resize (area when shrinking, Lanczos when enlarging) premultiplied, rotate about the top centre, place."""
    width, height = canvas_size
    crop_height, crop_width = crop.shape[:2]
    # 1. Premultiply so transparent pixels' colours cannot bleed into the edge; values are 255x the 0..255
    #    scale. Shrinking (area averaging cannot overshoot) runs in 16 bits, exact and faster than float;
    #    Lanczos overshoots both ways, so enlarging keeps float for the warp and clipping to see it.
    shrinking = scale < 1.0
    # 2. Resize with the right filter for the direction (warpAffine has no area filter).
    new_width = max(1, round(crop_width * scale))
    new_height = max(1, round(crop_height * scale))
    if shrinking:
        resized = premultiplied_shrink(crop, (new_width, new_height))
    else:
        resized = cv2.resize(
            premultiply(crop, False), (new_width, new_height), interpolation=cv2.INTER_LANCZOS4
        )
    resized = resized.reshape(new_height, new_width, 4)
    sx, sy = new_width / crop_width, new_height / crop_height
    # 3. Rotate about the garment's top centre and move it to the anchor, only inside its bounding box.
    cos, sin = math.cos(angle), math.sin(angle)
    pivot = np.array([new_width / 2.0, 0.0])
    rotation = np.array([[cos, -sin], [sin, cos]])
    offset = anchor - rotation @ pivot
    warp = np.hstack([rotation, offset[:, None]])
    if abs(angle) < 1e-3:
        # No visible rotation: shift by whole pixels, keeping the resampled pixels untouched.
        warp = np.array([[1.0, 0.0, round(offset[0])], [0.0, 1.0, round(offset[1])]])
        box, region = _shift_into_canvas(resized, int(warp[0, 2]), int(warp[1, 2]), canvas_size)
    else:
        box, region = _rotate_into_canvas(resized, warp, canvas_size)
    # 4. Un-premultiply; Lanczos overshoot is clipped so colour never exceeds alpha.
    placed = np.zeros((height, width, 4), dtype=np.uint8)
    if box is not None:
        x0, y0, x1, y1 = box
        placed[y0:y1, x0:x1] = _unpremultiply(region)
    scaling = np.array([[sx, 0.0, 0.0], [0.0, sy, 0.0], [0.0, 0.0, 1.0]])
    matrix = np.vstack([warp, [0.0, 0.0, 1.0]]) @ scaling
    return placed, matrix


def _shift_into_canvas(
    image: np.ndarray, dx: int, dy: int, canvas_size: tuple[int, int]
) -> tuple[tuple[int, int, int, int] | None, np.ndarray]:
    """The canvas box (x0, y0, x1, y1) an image moved by whole pixels covers, and its pixels there."""
    width, height = canvas_size
    x0, y0 = max(dx, 0), max(dy, 0)
    x1, y1 = min(dx + image.shape[1], width), min(dy + image.shape[0], height)
    if x0 >= x1 or y0 >= y1:
        return None, image[:0, :0]
    return (x0, y0, x1, y1), image[y0 - dy : y1 - dy, x0 - dx : x1 - dx]


def _rotate_into_canvas(
    image: np.ndarray, warp: np.ndarray, canvas_size: tuple[int, int]
) -> tuple[tuple[int, int, int, int] | None, np.ndarray]:
    """Bilinear warpAffine restricted to the canvas box the warped image can touch (zero outside it)."""
    width, height = canvas_size
    image_height, image_width = image.shape[:2]
    # Bilinear samples reach one pixel beyond the source's pixel centres; a pixel of slack for rounding.
    corners = np.array([[-1.0, -1.0], [image_width, -1.0], [-1.0, image_height], [image_width, image_height]])
    mapped = corners @ warp[:, :2].T + warp[:, 2]
    x0, y0 = (max(0, math.floor(v) - 1) for v in mapped.min(axis=0))
    x1, y1 = min(width, math.ceil(mapped[:, 0].max()) + 2), min(height, math.ceil(mapped[:, 1].max()) + 2)
    if x0 >= x1 or y0 >= y1:
        return None, image[:0, :0]
    shifted = warp.copy()
    shifted[:, 2] -= (x0, y0)
    region = cv2.warpAffine(
        image,
        shifted,
        (x1 - x0, y1 - y0),
        flags=cv2.INTER_LINEAR,
        borderMode=cv2.BORDER_CONSTANT,
        borderValue=0,
    )
    return (x0, y0, x1, y1), region.reshape(y1 - y0, x1 - x0, 4)


def _unpremultiply(region: np.ndarray) -> np.ndarray:
    """Premultiplied RGBA (255x scale) -> uint8 RGBA; colour is 0 where the rounded alpha is 0."""
    alpha = np.clip(region[..., 3], 0, 255 * 255).astype(np.float32)
    scale = 255.0 / np.maximum(alpha, 1.0)
    colour = np.maximum(region[..., :3], 0).astype(np.float32) * scale[..., None]
    out = np.empty(region.shape, dtype=np.uint8)
    out[..., :3] = np.where(alpha[..., None] > 127.5, np.minimum(np.round(colour), 255.0), 0.0)
    out[..., 3] = np.round(alpha / 255.0)
    return out


def _clipped(crop: np.ndarray, matrix: np.ndarray, canvas_size: tuple[int, int]) -> bool:
    """True when part of the opaque garment outline maps outside the canvas."""
    width, height = canvas_size
    # Every outline point lies in the crop's rectangle: when its corners land inside, the garment does too.
    corners = np.array(
        [[0.0, 0.0], [crop.shape[1], 0.0], [0.0, crop.shape[0]], [crop.shape[1], crop.shape[0]]]
    )
    mapped = corners @ matrix[:2, :2].T + matrix[:2, 2]
    if (mapped >= 0).all() and (mapped[:, 0] <= width).all() and (mapped[:, 1] <= height).all():
        return False
    opaque = (crop[..., 3] >= 128).astype(np.uint8)
    contours, _ = cv2.findContours(opaque, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    if not contours:
        return False
    points = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64) + 0.5
    mapped = points @ matrix[:2, :2].T + matrix[:2, 2]
    inside = (mapped[:, 0] >= 0) & (mapped[:, 0] <= width) & (mapped[:, 1] >= 0) & (mapped[:, 1] <= height)
    return not bool(inside.all())
