"""The skirt panel: a skirt (or a dress below the hips) follows the legs between the hips and the hem.

Below the hip joints the torso panel's canvas image is deformed across the body only, more with depth: at the
hem it is narrowed (at most MAX_HEM_TAPER) toward the span of the legs at the hem's height and shifted onto
their centre line, so the hem swings with the legs (walking, contrapposto) instead of hanging where the
flat-lay put it. Heights are kept, so the deformation inverts in closed form: a canvas pixel's row gives its
depth, its depth the taper and shift, and the across coordinate is undone exactly (no Newton, no band).
Pixels are still resampled from the source, never generated.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from pipelines.fit.body import (
    CALF,
    L_ANKLE,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    LOOSENESS,
    R_ANKLE,
    R_HIP,
    R_KNEE,
    R_SHOULDER,
    THIGH,
    visible,
)

MAX_HEM_TAPER = 0.25  # the hem is narrowed across by at most this share
MAX_SKIRT_STRETCH = 0.25  # and the skirt's local stretch (taper and the shear of its sides) kept within this
# A top below its armpits narrows toward the waist (the torso's sides between shoulders and hips) within the
# torso panel's own bound (10 %), compression of turned poses included: frontal poses only, in effect.
MAX_WAIST_STRETCH = 0.095
MIN_SKIRT_DEPTH = 0.05  # of the torso length: a skirt reaching less far below the hips is left as it is


@dataclass(frozen=True)
class SkirtWarp:
    """Canvas -> canvas deformation of the torso panel below the hips: across-body scale and shift by depth.

    origin: the garment's centre line at the hips' height (canvas); down: the garment's down direction on the
    canvas (unit); depth: origin to the hem along down; taper: the hem's across scale (<= 1); shift: the hem's
    across shift in pixels (toward the legs' centre line).
    """

    origin: tuple[float, float]
    down: tuple[float, float]
    depth: float
    taper: float
    shift: float
    flare: float = 0.0  # the garment's hem width per its width at the hips, minus 1 (its sides' spread)

    @property
    def across(self) -> np.ndarray:
        """The across-body direction on the canvas (image right for an upright garment)."""
        return np.array([self.down[1], -self.down[0]])

    def stretch(self, half_width: float, compression: float = 1.0) -> float:
        """The largest local stretch (max |singular value - 1|) of the deformation over a garment whose sides
        run straight from +-half_width at the hips, spreading by the flare down to the taper's full depth;
        compression: the torso panel's own across-body compression (turned poses), which it adds to."""
        r = np.linspace(0.0, 1.0, 17)
        scale, shift = self._profile(r * self.depth)
        ds = np.gradient(scale, r) / max(self.depth, 1e-9)
        dshift = np.gradient(shift, r) / max(self.depth, 1e-9)
        worst = 0.0
        for side in (-1.0, 1.0):
            u = side * half_width * (1.0 + self.flare * r)
            # The Jacobian [[a, b], [0, d]] (across, down) of the deformation after the torso's compression.
            a, b, d = scale * compression, ds * u + dshift, np.ones_like(r)
            s1 = np.sqrt((a + d) ** 2 + b**2) / 2.0
            s2 = np.sqrt((a - d) ** 2 + b**2) / 2.0
            worst = max(
                worst, float(np.max(np.abs(s1 + s2 - 1.0))), float(np.max(np.abs(np.abs(s1 - s2) - 1.0)))
            )
        return worst

    def _profile(self, v: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Across scale and shift at depth v below the hips: none at the hips, all at the hem, and in between
        such that straight sides stay straight (the width runs linearly from the hips' to the new hem's)."""
        r = np.clip(v * np.float32(1.0 / max(self.depth, 1e-9)), 0.0, 1.0)
        natural = 1.0 + np.float32(self.flare) * r
        wanted = 1.0 + np.float32((1.0 + self.flare) * self.taper - 1.0) * r
        return wanted / natural, np.float32(self.shift) * r

    def inverse(self, xs: np.ndarray, ys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The undeformed canvas point of each deformed canvas point (float32 arrays, same shape)."""
        down, across = self.down, (self.down[1], -self.down[0])
        dx, dy = xs - np.float32(self.origin[0]), ys - np.float32(self.origin[1])
        v = dx * np.float32(down[0]) + dy * np.float32(down[1])
        u = dx * np.float32(across[0]) + dy * np.float32(across[1])
        scale, shift = self._profile(v)
        undone = ((u - shift) / scale - u).astype(np.float32)
        return xs + undone * np.float32(across[0]), ys + undone * np.float32(across[1])

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Deformed canvas points of undeformed ones (n, 2)."""
        down, across = np.asarray(self.down), self.across
        offset = points - np.asarray(self.origin)
        v, u = offset @ down, offset @ across
        scale, shift = self._profile(v)
        return points + ((u * scale + shift) - u)[:, None] * across

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the fit record."""
        return {
            "origin": [round(self.origin[0], 3), round(self.origin[1], 3)],
            "down": [round(self.down[0], 6), round(self.down[1], 6)],
            "depth": round(self.depth, 3),
            "taper": round(self.taper, 5),
            "shift": round(self.shift, 3),
            "flare": round(self.flare, 5),
        }


def skirt_warp(
    garment_class: str,
    silhouette: str,
    landmarks: Mapping[str, tuple[float, float]],
    axis: tuple[float, float],
    alpha: np.ndarray,
    torso: np.ndarray,
    keypoints: np.ndarray,
    torso_unit: float,
    compression: float = 1.0,
) -> SkirtWarp | None:
    """The torso panel's deformation: for skirts and dresses below the hips (toward the legs, swung with
    them), for tops below the armpits (toward the waist, within the torso's stretch bound); None for
    trousers or when the pose lacks what it follows.

    landmarks and alpha in working pixels; torso: the torso panel's (2, 3) affine working -> canvas;
    compression: its across-body compression (the stretch bounds count it).
    """
    if garment_class == "lower_body" and silhouette != "skirt":
        return None
    top = garment_class == "upper_body"
    needed = (R_SHOULDER, L_SHOULDER, R_HIP, L_HIP) if top else (R_HIP, L_HIP, R_KNEE, L_KNEE)
    if not visible(keypoints, *needed) or (top and not {"r_armpit", "l_armpit"} <= set(landmarks)):
        return None
    # 1. The garment's centre line and down direction on the canvas, and the level the deformation starts
    #    from: the hips (skirts), the armpits (tops).
    linear = torso[:, :2]
    down = linear @ np.asarray(axis, dtype=np.float64)
    down /= max(float(np.linalg.norm(down)), 1e-9)
    across = np.array([down[1], -down[0]])  # image right for an upright garment (SkirtWarp.across)
    hips = (keypoints[R_HIP, :2] + keypoints[L_HIP, :2]) / 2.0
    if top:
        armpits = (np.asarray(landmarks["r_armpit"]) + np.asarray(landmarks["l_armpit"])) / 2.0
        level = linear @ armpits + torso[:, 2]
    else:
        level = hips
    # Extents and depths need only the outline (a few thousand points, not every pixel); the centre line
    # runs through the pixels' centroid.
    binary = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)[1]
    moments = cv2.moments(binary, binaryImage=True)
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if moments["m00"] <= 0 or not contours:
        return None
    outline = np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)
    canvas = outline @ linear.T + torso[:, 2]
    centre = linear @ np.array([moments["m10"], moments["m01"]]) / moments["m00"] + torso[:, 2]
    origin = centre + down * float((level - centre) @ down)  # on the garment's centre line, at the level
    depths = (canvas - origin) @ down
    depth = float(depths.max())
    if depth < MIN_SKIRT_DEPTH * torso_unit:
        return None
    # 2. Its widest row in the lower half (a curved hem's corners lie above its middle), and the body's span
    #    and centre at that row's depth: the legs' (thigh and calf capsules), or the torso's.
    u_all = (canvas - origin) @ across
    lower = depths >= 0.5 * depth
    bins = np.round(depths[lower] / 2.0).astype(np.int64)
    if len(bins) == 0:
        return None
    low = np.full(bins.max() + 1, np.inf)
    high = np.full(bins.max() + 1, -np.inf)
    np.minimum.at(low, bins, u_all[lower])
    np.maximum.at(high, bins, u_all[lower])
    widest = int(np.argmax(high - low))
    width, at_depth = float(high[widest] - low[widest]), 2.0 * widest
    level_rows = np.abs(depths) <= 0.015 * depth + 1.0
    level_width = float(np.ptp(u_all[level_rows])) if level_rows.any() else width
    if top:
        edges = _torso_edges(keypoints, origin, down, across, at_depth)
    else:
        edges = []
        for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
            point, radius = _leg_at(keypoints, hip, knee, ankle, origin, down, at_depth, torso_unit)
            u = float((point - origin) @ across)
            edges += [u - radius, u + radius]
    span = max(edges) - min(edges) + 2.0 * LOOSENESS * torso_unit
    wanted = 1.0 if width <= 0 else min(1.0, max(1.0 - MAX_HEM_TAPER, span / width))
    # A hem swings as far as the legs' centre line at its height lies off the hips' centre (the garment's
    # own asymmetry is kept: it was centred on the body by the torso panel); a top's does not.
    shift = 0.0 if top else (max(edges) + min(edges)) / 2.0 - float((hips - origin) @ across)
    # 3. As far toward that as the stretch bound allows (the sides shear where it narrows fast): a top's
    #    is the torso panel's own, a skirt's its own.
    bound = MAX_WAIST_STRETCH if top else MAX_SKIRT_STRETCH
    warp = SkirtWarp(
        origin=(float(origin[0]), float(origin[1])),
        down=(float(down[0]), float(down[1])),
        depth=max(at_depth, 1.0),
        taper=wanted,
        shift=shift,
        flare=width / max(level_width, 1.0) - 1.0,
    )
    if wanted >= 1.0 and shift == 0.0:
        return None
    for fraction in np.linspace(1.0, 0.0, 11)[:-1]:
        candidate = replace(warp, taper=1.0 - (1.0 - wanted) * fraction, shift=shift * fraction)
        if candidate.stretch(level_width / 2.0, compression) <= bound:
            return candidate
    return None


def _torso_edges(
    keypoints: np.ndarray, origin: np.ndarray, down: np.ndarray, across: np.ndarray, depth: float
) -> list[float]:
    """The torso's sides (across coordinates) at the given depth below origin: the shoulder-to-hip quad's."""
    edges = []
    for shoulder, hip in ((R_SHOULDER, R_HIP), (L_SHOULDER, L_HIP)):
        start, end = keypoints[shoulder, :2], keypoints[hip, :2]
        v0, v1 = float((start - origin) @ down), float((end - origin) @ down)
        t = min(max((depth - v0) / max(v1 - v0, 1e-6), 0.0), 1.0)
        edges.append(float((start + (end - start) * t - origin) @ across))
    return edges


def _leg_at(
    keypoints: np.ndarray,
    hip: int,
    knee: int,
    ankle: int,
    origin: np.ndarray,
    down: np.ndarray,
    depth: float,
    torso_unit: float,
) -> tuple[np.ndarray, float]:
    """The leg's axis point and capsule radius at the given depth below origin (thigh, then calf)."""
    chain = [(keypoints[hip, :2], keypoints[knee, :2], THIGH)]
    if keypoints[ankle, 2] > 0:
        chain.append((keypoints[knee, :2], keypoints[ankle, :2], CALF))
    for index, (start, end, (r0, r1)) in enumerate(chain):
        v0, v1 = float((start - origin) @ down), float((end - origin) @ down)
        if depth <= v1 or index == len(chain) - 1:
            t = min(max((depth - v0) / max(v1 - v0, 1e-6), 0.0), 1.0)
            return start + (end - start) * t, (r0 + (r1 - r0) * t) * torso_unit
    raise AssertionError("unreachable: the last segment always answers")


def hip_depth_of(warp: SkirtWarp, points_canvas: np.ndarray) -> np.ndarray:
    """Depth below the hips (along the warp's down direction) of canvas points (n, 2)."""
    return (points_canvas - np.asarray(warp.origin)) @ np.asarray(warp.down)
