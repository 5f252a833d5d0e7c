"""The draft renderer: a studio backdrop and a shaded mannequin in the pose, garment composited on top.

It needs no weights and runs in milliseconds on a CPU: for proofing placement before GPU time, demos and tests.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Mapping, Sequence
from typing import Any, Self

import cv2
import numpy as np

from pipelines.compositing import composite_garment
from pipelines.renderers.base import RenderedImage, RenderJob

VERSION = 1
# Ordered so that consecutive variants differ clearly (light, deep, medium, ...).
SKIN_TONES: tuple[str, ...] = ("#E9C6A9", "#8A573A", "#C99470", "#F3DBC8", "#AA7049", "#5F3B29")
BACKDROPS: tuple[str, ...] = ("#ECE9E4", "#E4E7EB", "#EEE7DD", "#E3E3E2")
OPTION_NAMES = ("skin_tones", "backdrops", "floor_shadow", "garment_shadow")

# OpenPose-18 indices.
NOSE, NECK, R_SHOULDER, R_ELBOW, R_WRIST, L_SHOULDER, L_ELBOW, L_WRIST = 0, 1, 2, 3, 4, 5, 6, 7
R_HIP, R_KNEE, R_ANKLE, L_HIP, L_KNEE, L_ANKLE, R_EYE, L_EYE, R_EAR, L_EAR = (
    8,
    9,
    10,
    11,
    12,
    13,
    14,
    15,
    16,
    17,
)
# Body part radii as fractions of the torso length (neck to mid-hip), from adult proportions.
UPPER_ARM = (0.085, 0.068)
FOREARM = (0.066, 0.048)
HAND = (0.05, 0.04)
THIGH = (0.15, 0.095)
CALF = (0.09, 0.055)
NECK_RADIUS = 0.095
HEAD_AXES = (0.145, 0.19)
MIN_TORSO_HALF_WIDTH = 0.2  # a side view still shows the chest's depth


def _hex_to_rgb(value: str) -> tuple[int, int, int]:
    """'#RRGGBB' -> (r, g, b)."""
    text = value.strip().lstrip("#")
    return int(text[0:2], 16), int(text[2:4], 16), int(text[4:6], 16)


def check_inputs(options: Mapping[str, Any]) -> None:
    """Raise a ValueError naming an unknown option or a colour that is not #RRGGBB."""
    unknown = sorted(set(options) - set(OPTION_NAMES))
    if unknown:
        raise ValueError(
            f"unknown draft renderer option(s) {unknown}; the draft renderer takes {list(OPTION_NAMES)}."
        )
    for key in ("skin_tones", "backdrops"):
        colours = options.get(key)
        if colours is None:
            continue
        if isinstance(colours, str) or not colours:
            raise ValueError(f"{key} must be a non-empty list of '#RRGGBB' colours; got {colours!r}.")
        for colour in colours:
            text = str(colour).strip()
            if (
                len(text) != 7
                or not text.startswith("#")
                or any(c not in "0123456789abcdefABCDEF" for c in text[1:])
            ):
                raise ValueError(f"{key}: {colour!r} is not a '#RRGGBB' colour such as '#E9C6A9'.")


class DraftRenderer:
    """Backdrop + mannequin from job.keypoints + composite_garment; deterministic given the job."""

    name = "draft"

    def __init__(
        self,
        skin_tones: Sequence[str] = SKIN_TONES,
        backdrops: Sequence[str] = BACKDROPS,
        floor_shadow: bool = True,
        garment_shadow: bool = True,
    ) -> None:
        check_inputs({"skin_tones": list(skin_tones), "backdrops": list(backdrops)})
        self.skin_tones = tuple(str(c).upper() for c in skin_tones)
        self.backdrops = tuple(str(c).upper() for c in backdrops)
        self.floor_shadow = bool(floor_shadow)
        self.garment_shadow = bool(garment_shadow)

    @classmethod
    def from_options(cls, options: Mapping[str, Any], device: str = "cpu") -> Self:
        """Registry entry point; the draft renderer always runs on the CPU whatever device it is given."""
        check_inputs(options)
        return cls(**dict(options))

    def describe(self) -> dict[str, Any]:
        """What makes a draft image: recorded in metadata and the config fingerprint."""
        return {
            "renderer": "draft",
            "version": VERSION,
            "skin_tones": list(self.skin_tones),
            "backdrops": list(self.backdrops),
            "floor_shadow": self.floor_shadow,
            "garment_shadow": self.garment_shadow,
        }

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]:
        """Render each job; the garment core is the placed source pixels exactly."""
        return [self._render(job) for job in jobs]

    def _render(self, job: RenderJob) -> RenderedImage:
        """One image: backdrop, floor shadow, mannequin, garment shadow, garment."""
        width, height = job.size
        keypoints = np.asarray(job.keypoints, dtype=np.float64)
        skin = self.skin_tones[job.variant % len(self.skin_tones)]
        backdrop = self.backdrops[job.variant % len(self.backdrops)]
        # 1. Studio backdrop: seamless sweep, vignette, fine grain (cached per size and tone; we own the copy).
        image = _backdrop(width, height, backdrop).copy()
        unit = _torso_length(keypoints, height)
        # 2. Soft contact shadow on the floor under the feet.
        if self.floor_shadow:
            _floor_shadow(image, keypoints, unit)
        # 3. Mannequin: far arm, body, near arm, each a shaded layer over the last.
        _mannequin(image, keypoints, unit, np.asarray(_hex_to_rgb(skin), dtype=np.float32))
        # 4. The garment casts a soft shadow onto the body and backdrop.
        if self.garment_shadow:
            _garment_shadow(image, job.placed_rgba[..., 3], unit)
        generated = cv2.convertScaleAbs(image)  # rounds and saturates to uint8 in one pass
        # 5. The original garment pixels on top, exactly (only the garment's box can change).
        final = composite_garment(generated, job.placed_rgba, job.keep_mask)
        params = {
            "renderer": "draft",
            "version": VERSION,
            "skin_tone": skin,
            "backdrop": backdrop,
            "seed": job.seed,
        }
        flags = [] if keypoints[NECK, 2] > 0 and _visible(keypoints, R_HIP, L_HIP) else ["pose_without_torso"]
        return RenderedImage(job_id=job.job_id, image=final, seed=job.seed, params=params, flags=flags)


def _visible(keypoints: np.ndarray, *indices: int) -> bool:
    """True when every listed keypoint has confidence > 0."""
    return all(keypoints[i, 2] > 0 for i in indices)


def _torso_length(keypoints: np.ndarray, height: int) -> float:
    """Neck to mid-hip in pixels: the unit every body part is sized by (31 % of the canvas when unknown)."""
    if _visible(keypoints, NECK, R_HIP, L_HIP):
        hips = (keypoints[R_HIP, :2] + keypoints[L_HIP, :2]) / 2.0
        length = float(np.linalg.norm(hips - keypoints[NECK, :2]))
        if length > 4.0:
            return length
    return 0.31 * height


@functools.lru_cache(maxsize=16)
def _backdrop(width: int, height: int, tone: str) -> np.ndarray:
    """float32 (H, W, 3), read-only: lighter at the top, a floor darker toward the camera, vignette, grain."""
    y = np.linspace(0.0, 1.0, height, dtype=np.float32)
    # Wall brightens upward; below the sweep (~82 %) the floor turns slightly darker.
    wall = 1.03 - 0.06 * y
    floor = np.clip((y - 0.8) / 0.12, 0.0, 1.0)
    floor = floor * floor * (3.0 - 2.0 * floor)  # smoothstep: a seamless cyclorama, no horizon line
    rows = wall - 0.05 * floor
    x = np.linspace(-1.0, 1.0, width, dtype=np.float32)
    vignette = 1.0 - 0.07 * x * x
    image = (rows[:, None] * vignette[None, :])[..., None] * np.asarray(_hex_to_rgb(tone), dtype=np.float32)
    # Grain breaks up 8-bit banding in the gradient; fixed (seeded by the tone) so images stay deterministic.
    rng = np.random.default_rng(int(tone.lstrip("#"), 16))
    tile = rng.normal(0.0, 0.9, (64, 64)).astype(np.float32)
    image += np.tile(tile, (height // 64 + 1, width // 64 + 1))[:height, :width, None]
    image.setflags(write=False)
    return image


def _box_around(
    centre_box: tuple[float, float, float, float], margin: float, shape: tuple[int, ...]
) -> tuple[slice, slice]:
    """(rows, cols) slices of x0, y0, x1, y1 grown by margin and clipped to the image."""
    x0, y0, x1, y1 = centre_box
    height, width = shape[:2]
    return (
        slice(max(0, int(y0 - margin)), min(height, int(math.ceil(y1 + margin)) + 1)),
        slice(max(0, int(x0 - margin)), min(width, int(math.ceil(x1 + margin)) + 1)),
    )


def _floor_shadow(image: np.ndarray, keypoints: np.ndarray, unit: float) -> None:
    """Darken a blurred ellipse under the ankles, in place."""
    feet = [keypoints[i, :2] for i in (R_ANKLE, L_ANKLE) if keypoints[i, 2] > 0]
    if not feet:
        return
    centre = np.mean(feet, axis=0) + np.array([0.0, 0.09 * unit])
    half_width = 0.5 * unit + abs(float(feet[0][0] - feet[-1][0])) / 2.0
    half_height = 0.06 * unit
    blur = max(1.0, 0.05 * unit)
    rows, cols = _box_around(
        (centre[0] - half_width, centre[1] - half_height, centre[0] + half_width, centre[1] + half_height),
        3 * blur,
        image.shape,
    )
    if rows.start >= rows.stop or cols.start >= cols.stop:
        return
    region = np.zeros((rows.stop - rows.start, cols.stop - cols.start), dtype=np.float32)
    local = (round(centre[0]) - cols.start, round(centre[1]) - rows.start)
    axes = (max(1, round(half_width)), max(1, round(half_height)))
    cv2.ellipse(region, local, axes, 0, 0, 360, 1.0, -1, cv2.LINE_AA)
    region = _soft_blur(region, blur)
    image[rows, cols] *= (1.0 - 0.32 * region)[..., None]


def _capsule(mask: np.ndarray, p0: np.ndarray, p1: np.ndarray, r0: float, r1: float) -> None:
    """Fill a tapered capsule (two discs and their tangents) into mask, anti-aliased."""
    discs = [
        cv2.ellipse2Poly((round(p[0]), round(p[1])), (max(1, round(r)), max(1, round(r))), 0, 0, 360, 12)
        for p, r in ((p0, r0), (p1, r1))
    ]
    hull = cv2.convexHull(np.concatenate(discs).astype(np.int32))
    cv2.fillConvexPoly(mask, hull, 255, cv2.LINE_AA)


def _arm(mask: np.ndarray, keypoints: np.ndarray, side: tuple[int, int, int], unit: float) -> None:
    """Upper arm, forearm and hand of one side (shoulder, elbow, wrist), as far as the keypoints go."""
    shoulder, elbow, wrist = side
    if _visible(keypoints, shoulder, elbow):
        _capsule(
            mask, keypoints[shoulder, :2], keypoints[elbow, :2], UPPER_ARM[0] * unit, UPPER_ARM[1] * unit
        )
    if _visible(keypoints, elbow, wrist):
        _capsule(mask, keypoints[elbow, :2], keypoints[wrist, :2], FOREARM[0] * unit, FOREARM[1] * unit)
        direction = keypoints[wrist, :2] - keypoints[elbow, :2]
        direction /= max(float(np.linalg.norm(direction)), 1e-6)
        tip = keypoints[wrist, :2] + direction * 0.2 * unit
        _capsule(mask, keypoints[wrist, :2] + direction * 0.04 * unit, tip, HAND[0] * unit, HAND[1] * unit)


def _torso_polygon(keypoints: np.ndarray, unit: float) -> np.ndarray | None:
    """Shoulders to hips outline (int32 (N, 2)) following the keypoints, or None without neck and hips."""
    if not _visible(keypoints, NECK, R_HIP, L_HIP):
        return None
    neck = keypoints[NECK, :2]
    hips = (keypoints[R_HIP, :2] + keypoints[L_HIP, :2]) / 2.0
    axis = (hips - neck) / max(float(np.linalg.norm(hips - neck)), 1e-6)
    across = np.array([-axis[1], axis[0]])  # points to the image right when the body stands upright
    length = float(np.linalg.norm(hips - neck))

    def extents(indices: tuple[int, int], minimum: float) -> tuple[float, float]:
        """Half-widths to the image left and right of the axis, from the visible keypoints."""
        offsets = [float((keypoints[i, :2] - neck) @ across) for i in indices if keypoints[i, 2] > 0]
        left = max([-o for o in offsets] + [minimum])
        right = max(offsets + [minimum])
        return left, right

    minimum = MIN_TORSO_HALF_WIDTH * unit
    shoulder_left, shoulder_right = extents((R_SHOULDER, L_SHOULDER), minimum)
    hip_left, hip_right = extents((R_HIP, L_HIP), minimum * 0.7)
    shoulder_t = 0.04 * length
    # (t along the axis in pixels, half-width) from the collar line down to the crotch, per side.
    profile = [
        (shoulder_t - 0.05 * unit, 0.62, 0.0),
        (shoulder_t + 0.02 * unit, 1.0, 0.035 * unit),
        (shoulder_t + 0.22 * unit, 0.93, 0.0),
        (0.62 * length, 0.8, 0.0),
        (0.92 * length, None, 0.12 * unit),
        (1.1 * length, None, 0.06 * unit),
    ]
    sides = []
    for sign, shoulder_w, hip_w in ((-1.0, shoulder_left, hip_left), (1.0, shoulder_right, hip_right)):
        sides.append(
            [
                neck
                + axis * t
                + across * sign * ((shoulder_w * factor if factor is not None else hip_w) + extra)
                for t, factor, extra in profile
            ]
        )
    crotch = neck + axis * 1.2 * length
    # Left side top to bottom, the crotch, right side bottom to top: one simple outline.
    polygon = np.array([*sides[0], crotch, *sides[1][::-1]])
    return np.round(polygon).astype(np.int32)


def _head(mask: np.ndarray, keypoints: np.ndarray, unit: float) -> None:
    """Head ellipse centred on the eyes and ears (or above the neck), tilted with the torso, plus the neck."""
    face = [keypoints[i, :2] for i in (R_EYE, L_EYE, R_EAR, L_EAR) if keypoints[i, 2] > 0]
    neck = keypoints[NECK, :2] if keypoints[NECK, 2] > 0 else None
    if face:
        centre = np.mean(face, axis=0)
    elif keypoints[NOSE, 2] > 0:
        centre = keypoints[NOSE, :2] - np.array([0.0, 0.05 * unit])
    elif neck is not None:
        centre = neck - np.array([0.0, 0.42 * unit])
    else:
        return
    angle = 0.0
    if neck is not None:
        tilt = centre - neck
        angle = math.degrees(math.atan2(tilt[0], -tilt[1]))
        _capsule(
            mask, neck + np.array([0.0, 0.05 * unit]), centre, NECK_RADIUS * unit, NECK_RADIUS * unit * 0.9
        )
    axes = (round(HEAD_AXES[0] * unit), round(HEAD_AXES[1] * unit))
    cv2.ellipse(mask, (round(centre[0]), round(centre[1])), axes, angle, 0, 360, 255, -1, cv2.LINE_AA)


def _legs(mask: np.ndarray, keypoints: np.ndarray, unit: float) -> None:
    """Thighs, calves and feet."""
    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
        if _visible(keypoints, hip, knee):
            _capsule(mask, keypoints[hip, :2], keypoints[knee, :2], THIGH[0] * unit, THIGH[1] * unit)
        if _visible(keypoints, knee, ankle):
            _capsule(mask, keypoints[knee, :2], keypoints[ankle, :2], CALF[0] * unit, CALF[1] * unit)
            foot = keypoints[ankle, :2] + np.array([0.0, 0.07 * unit])
            axes = (round(0.065 * unit), round(0.075 * unit))
            cv2.ellipse(mask, (round(foot[0]), round(foot[1])), axes, 0, 0, 360, 255, -1, cv2.LINE_AA)


def _far_side(keypoints: np.ndarray) -> int | None:
    """Which arm is turned away (drawn behind the body): 0 = right, 1 = left, None = neither."""
    if not _visible(keypoints, NECK, R_SHOULDER, L_SHOULDER):
        return None
    right = float(np.linalg.norm(keypoints[R_SHOULDER, :2] - keypoints[NECK, :2]))
    left = float(np.linalg.norm(keypoints[L_SHOULDER, :2] - keypoints[NECK, :2]))
    if right < 0.85 * left:
        return 0
    if left < 0.85 * right:
        return 1
    return None


def _mannequin(image: np.ndarray, keypoints: np.ndarray, unit: float, skin: np.ndarray) -> None:
    """Three shaded layers (far arm, body, near arms) composited over the image, in place."""
    height, width = image.shape[:2]
    arms = ((R_SHOULDER, R_ELBOW, R_WRIST), (L_SHOULDER, L_ELBOW, L_WRIST))
    far = _far_side(keypoints)
    back, body, front = (np.zeros((height, width), dtype=np.uint8) for _ in range(3))
    for index, arm in enumerate(arms):
        _arm(back if index == far else front, keypoints, arm, unit)
    _legs(body, keypoints, unit)
    polygon = _torso_polygon(keypoints, unit)
    if polygon is not None:
        cv2.fillPoly(body, [polygon], 255, cv2.LINE_AA)
    _head(body, keypoints, unit)
    for layer, tint in ((back, 0.86), (body, 1.0), (front, 1.0)):
        _shade_layer(image, layer, skin * tint, unit)


def _soft_blur(values: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur computed at half size when the blur is wide (the result is smooth either way)."""
    if sigma < 3.0 or min(values.shape[:2]) < 8:
        return cv2.GaussianBlur(values, (0, 0), sigma)
    height, width = values.shape[:2]
    small = cv2.resize(values, (width // 2, height // 2), interpolation=cv2.INTER_AREA)
    small = cv2.GaussianBlur(small, (0, 0), sigma / 2.0)
    return cv2.resize(small, (width, height), interpolation=cv2.INTER_LINEAR)


def _shade_layer(image: np.ndarray, mask: np.ndarray, colour: np.ndarray, unit: float) -> None:
    """Composite one body layer in place: rounded shading from the edge distance, key light from the upper left."""
    x, y, w, h = cv2.boundingRect(mask)
    if w == 0 or h == 0:
        return
    halo_blur = max(1.0, 0.02 * unit)
    rows, cols = _box_around((x, y, x + w, y + h), 3 * halo_blur, mask.shape)
    region = mask[rows, cols]
    alpha = region.astype(np.float32) * (1.0 / 255.0)
    # 1. Depth from the distance to the silhouette: edges turn away from the light, like a cylinder.
    distance = cv2.distanceTransform(cv2.threshold(region, 127, 1, cv2.THRESH_BINARY)[1], cv2.DIST_L2, 3)
    roundness = np.sqrt(np.minimum(distance * (1.0 / (0.09 * unit)), 1.0))
    # 2. A key light from the upper left.
    xs = np.linspace(0.0, 1.0, region.shape[1], dtype=np.float32)[None, :]
    ys = np.linspace(0.0, 1.0, region.shape[0], dtype=np.float32)[:, None]
    lit = alpha * (0.7 + 0.3 * roundness) * (1.04 - 0.08 * xs - 0.05 * ys)
    # 3. A contact shadow on what lies below, just outside this layer's edge; then one blend.
    halo = _soft_blur(alpha, halo_blur)
    kept = (1.0 - alpha) * (1.0 - 0.22 * np.clip(halo - alpha, 0.0, 1.0))
    image[rows, cols] = image[rows, cols] * kept[..., None] + lit[..., None] * colour


def _garment_shadow(image: np.ndarray, alpha: np.ndarray, unit: float) -> None:
    """A soft shadow of the garment, offset down-right, in place (only around the garment's box)."""
    x, y, w, h = cv2.boundingRect(alpha)
    if w == 0 or h == 0:
        return
    blur = max(1.0, 0.025 * unit)
    shift = (0.012 * unit, 0.03 * unit)
    rows, cols = _box_around((x, y, x + w + shift[0], y + h + shift[1]), 3 * blur, image.shape)
    region = alpha[rows, cols].astype(np.float32) * (1.0 / 255.0)
    moved = np.array([[1, 0, shift[0]], [0, 1, shift[1]]], np.float32)
    region = _soft_blur(cv2.warpAffine(region, moved, (region.shape[1], region.shape[0])), blur)
    image[rows, cols] *= (1.0 - 0.28 * region)[..., None]
