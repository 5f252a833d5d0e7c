"""The skirt panel: a skirt (or a dress below the hips) follows the legs between the hips and the hem.

Below the hip joints the torso panel's canvas image is deformed across the body only, more with depth: at the
hem it is narrowed (at most MAX_HEM_TAPER) toward the span of the legs at the hem's height and shifted onto
their centre line, so the hem swings with the legs (walking, contrapposto) instead of hanging where the
flat-lay put it. Heights are kept, so the deformation inverts in closed form: a canvas pixel's row gives its
depth, its depth the taper and shift, and the across coordinate is undone exactly (no Newton, no band).
Pixels are still resampled from the source, never generated.

Side panels (round 5): beyond a middle band (SIDE_MIDDLE of the garment's half-width at the level it starts
from) the sides are narrowed further toward the body's sides, as cloth wrapping round a body foreshortens
toward its silhouette; the middle (the print) keeps the taper's scale exactly. The sides have a stretch bound
of their own (MAX_SIDE_STRETCH); the middle keeps the torso's (tops) or the skirt's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

import cv2
import numpy as np

from pipelines.fit.body import (
    CALF,
    L_ANKLE,
    L_ELBOW,
    L_HIP,
    L_KNEE,
    L_SHOULDER,
    LOOSENESS,
    R_ANKLE,
    R_ELBOW,
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
# Side panels: the middle SIDE_MIDDLE of the garment's half-width keeps the taper's scale; beyond it, over a
# blend SIDE_BLEND of the middle's half-width, the across scale falls to the sides' own, at most
# MAX_SIDE_STRETCH below it (stretch measured on the sides alone, shear included).
SIDE_MIDDLE = 0.35
SIDE_BLEND = 0.35
SIDE_RAMP = 0.15  # of the torso length below the level: the depth over which the sides first narrow
ARM_HANGS_DEG, ARM_AWAY_DEG = 12.0, 24.0  # a sleeved top's side wraps in as its upper arm stands off the body
MAX_SIDE_STRETCH = 0.45


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
    # Side panels: the half-width about the centre line (undeformed canvas px) kept as the taper makes it, and
    # the sides' own across scale beyond it at full depth (1: none), image left then right (across < 0, > 0).
    # The scale runs linearly from 1 at the level they start from (lead above the origin) to sides_near ramp
    # below it, then to sides at full depth (a top's sides float most just below its armpits, where the body
    # narrows fastest; with the arms off the body a sleeveless top's from its shoulders, a dress's bodice too).
    middle: float = math.inf
    sides: tuple[float, float] = (1.0, 1.0)
    sides_near: tuple[float, float] = (1.0, 1.0)
    ramp: float = 0.0
    lead: float = 0.0

    @property
    def across(self) -> np.ndarray:
        """The across-body direction on the canvas (image right for an upright garment)."""
        return np.array([self.down[1], -self.down[0]])

    def stretch(self, half_width: float, compression: float = 1.0) -> float:
        """The largest local stretch (max |singular value - 1|) of the deformation over a garment whose sides
        run straight from +-half_width at the hips, spreading by the flare down to the taper's full depth;
        compression: the torso panel's own across-body compression (turned poses), which it adds to.
        The side panels aside: within the middle band the deformation is the taper's alone."""
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

    def stretches(self, half_width: float, compression: float = 1.0) -> tuple[float, float]:
        """(middle, sides): the largest local stretch over the middle band and over the side panels (0 when
        there are none), on a grid over the garment as in stretch(); central differences of the map."""
        depths = np.linspace(-self.lead, self.depth, 21)[:, None]
        spread = half_width * (1.0 + self.flare * np.clip(depths / max(self.depth, 1e-9), 0.0, 1.0))
        u = spread * np.linspace(-1.0, 1.0, 41)[None, :]
        v = np.broadcast_to(depths, u.shape)
        step = max(0.25, 1e-3 * half_width)
        across = (self._across_of(u + step, v) - self._across_of(u - step, v)) / (2.0 * step)
        down = (self._across_of(u, v + step) - self._across_of(u, v - step)) / (2.0 * step)
        # The Jacobian [[a, b], [0, 1]] (across, down) of the deformation after the torso's compression.
        a, b = across * compression, down
        s1 = np.sqrt((a + 1.0) ** 2 + b**2) / 2.0
        s2 = np.sqrt((a - 1.0) ** 2 + b**2) / 2.0
        worst = np.maximum(np.abs(s1 + s2 - 1.0), np.abs(np.abs(s1 - s2) - 1.0))
        sides = np.abs(u) > self.middle
        middle = float(worst[~sides].max()) if (~sides).any() else 0.0
        return middle, float(worst[sides].max()) if sides.any() else 0.0

    def _across_of(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The deformed across coordinate of undeformed (u across, v down) offsets from the origin."""
        scale, shift = self._profile(v)
        return self._wrap(u.astype(np.float64), v) * scale + shift

    @property
    def has_sides(self) -> bool:
        """True when side panels narrow the sides beyond the middle."""
        return math.isfinite(self.middle) and min(*self.sides, *self.sides_near) < 1.0

    def _side_scale(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The sides' across scale at depth v on u's side: 1 at the origin's level, sides_near at the ramp's
        depth, sides at full depth and below."""
        near = np.where(u < 0, np.float32(self.sides_near[0]), np.float32(self.sides_near[1]))
        far = np.where(u < 0, np.float32(self.sides[0]), np.float32(self.sides[1]))
        span = self.depth + self.lead
        ramp = min(max(self.ramp, 1e-6), span)
        w = v + np.float32(self.lead)
        first = np.clip(w * np.float32(1.0 / ramp), 0.0, 1.0)
        second = np.clip((w - np.float32(ramp)) * np.float32(1.0 / max(span - ramp, 1e-6)), 0.0, 1.0)
        return 1.0 - (1.0 - near) * first - (near - far) * second

    def _wrap(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The side panels: u kept within the middle; beyond it the scale falls linearly from 1 to the sides'
        over the blend (C1: no crease at the middle's edge), then stays."""
        if not self.has_sides:
            return u
        k = self._side_scale(u, v)
        blend = SIDE_BLEND * self.middle
        a = np.abs(u) - self.middle
        inner = a - (1.0 - k) * a * a / (2.0 * blend)
        outer = blend * (1.0 + k) / 2.0 + k * (a - blend)
        moved = np.where(a <= 0.0, np.abs(u), self.middle + np.where(a <= blend, inner, outer))
        return (np.sign(u) * moved).astype(u.dtype)

    def _unwrap(self, x: np.ndarray, v: np.ndarray) -> np.ndarray:
        """The inverse of _wrap at depth v (closed form: a quadratic over the blend, linear beyond)."""
        if not self.has_sides:
            return x
        k = self._side_scale(x, v)
        blend = np.float32(SIDE_BLEND * self.middle)
        b = np.abs(x) - np.float32(self.middle)
        knee = blend * (1.0 + k) / 2.0
        root = np.sqrt(np.maximum(1.0 - 2.0 * (1.0 - k) * b / blend, 0.0))
        inner = 2.0 * b / (1.0 + root)
        outer = blend + (b - knee) / np.maximum(k, 1e-6)
        moved = np.where(b <= 0.0, np.abs(x), np.float32(self.middle) + np.where(b <= knee, inner, outer))
        return (np.sign(x) * moved).astype(x.dtype)

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
        undone = (self._unwrap((u - shift) / scale, v) - u).astype(np.float32)
        return xs + undone * np.float32(across[0]), ys + undone * np.float32(across[1])

    def forward(self, points: np.ndarray) -> np.ndarray:
        """Deformed canvas points of undeformed ones (n, 2)."""
        down, across = np.asarray(self.down), self.across
        offset = points - np.asarray(self.origin)
        v, u = offset @ down, offset @ across
        scale, shift = self._profile(v)
        return points + ((self._wrap(u, v) * scale + shift) - u)[:, None] * across

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the fit record."""
        return {
            "origin": [round(self.origin[0], 3), round(self.origin[1], 3)],
            "down": [round(self.down[0], 6), round(self.down[1], 6)],
            "depth": round(float(self.depth), 3),
            "taper": round(float(self.taper), 5),
            "shift": round(float(self.shift), 3),
            "flare": round(float(self.flare), 5),
            "middle": round(float(self.middle), 3) if math.isfinite(self.middle) else None,
            "sides": [round(float(self.sides[0]), 5), round(float(self.sides[1]), 5)],
            "sides_near": [round(float(self.sides_near[0]), 5), round(float(self.sides_near[1]), 5)],
            "ramp": round(float(self.ramp), 3),
            "lead": round(float(self.lead), 3),
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
    torso_alpha: np.ndarray | None = None,
) -> SkirtWarp | None:
    """The torso panel's deformation: for skirts and dresses below the hips (toward the legs, swung with
    them), for tops below the armpits (toward the waist, within the torso's stretch bound); None for
    trousers or when the pose lacks what it follows.

    landmarks and alpha in working pixels; torso: the torso panel's (2, 3) affine working -> canvas;
    compression: its across-body compression (the stretch bounds count it); torso_alpha: the alpha of the
    torso panel's region alone (the side panels narrow its sides, not a flat-lay sleeve beside them).
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

    def body_edges(at: float) -> list[float]:
        if top or at < 0.0:  # a top's, or a dress's bodice above the hips
            return _torso_edges(keypoints, origin, down, across, at, torso_unit)
        edges = []
        for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
            point, radius = _leg_at(keypoints, hip, knee, ankle, origin, down, at, torso_unit)
            u = float((point - origin) @ across)
            edges += [u - radius, u + radius]
        return edges

    edges = body_edges(at_depth)
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
    tapered = None
    if wanted < 1.0 or shift != 0.0:
        for fraction in np.linspace(1.0, 0.0, 11)[:-1]:
            candidate = replace(warp, taper=1.0 - (1.0 - wanted) * fraction, shift=shift * fraction)
            if candidate.stretch(level_width / 2.0, compression) <= bound:
                tapered = candidate
                break
    # 4. The sides beyond the middle wrap on toward the body's sides (their own bound): where the taper,
    #    held to the middle's bound, leaves the widest row's edges off the body.
    base = tapered if tapered is not None else replace(warp, taper=1.0, shift=0.0)
    own = outline if torso_alpha is None else _outline(torso_alpha)
    if own is None:
        return tapered
    own_canvas = own @ linear.T + torso[:, 2]
    own_depths, own_u = (own_canvas - origin) @ down, (own_canvas - origin) @ across
    # A top's sides float most just below its armpits (the body narrows from there); a skirt's at its hem
    # (narrowed near the hips it would only lose fabric lying on the thighs).
    # Where the arms stand off the body the sides wrap in from higher up: a sleeveless top's from its
    # shoulders (no sleeve is sewn to its armhole), a dress's bodice from its armpits.
    # No sleeve covers a sleeveless garment's sides: they wrap in whatever the arms do.
    away = (1.0, 1.0) if silhouette.startswith("sleeveless") else _arms_away(keypoints, origin, down, across)
    lead = 0.0
    if max(away) > 0.0 and visible(keypoints, R_SHOULDER, L_SHOULDER):
        shoulders = (keypoints[R_SHOULDER, :2] + keypoints[L_SHOULDER, :2]) / 2.0
        if not top:
            start = shoulders
            if {"r_armpit", "l_armpit"} <= set(landmarks):
                start = linear @ (
                    (np.asarray(landmarks["r_armpit"]) + np.asarray(landmarks["l_armpit"])) / 2.0
                )
                start = start + torso[:, 2]
            lead = max(0.0, float((origin - start) @ down))
        elif silhouette.startswith("sleeveless"):
            lead = max(0.0, float((origin - shoulders) @ down))
    # The sides reach their near scale SIDE_RAMP below the armpits (a top's level; a dress's bodice starts
    # there), from where they start; a skirt's only at its hem.
    if top:
        ramp = min(lead + SIDE_RAMP * torso_unit, base.depth + lead)
    else:
        ramp = min(SIDE_RAMP * torso_unit, base.depth + lead) if lead > 0.0 else base.depth
    margin = LOOSENESS * torso_unit
    scales: list[tuple[float, float]] = []
    for at in (ramp - lead, base.depth):
        row = np.abs(own_depths - at) <= 2.0
        if not row.any():
            return tapered
        edges_at = body_edges(at)
        scale, shift_at = (float(v[0]) for v in base._profile(np.array([at], np.float32)))
        reach = (-float(own_u[row].min()), float(own_u[row].max()))
        limits = (shift_at - min(edges_at) + margin, max(edges_at) + margin - shift_at)
        scales.append(_side_scales(reach, limits, scale, SIDE_MIDDLE * level_width / 2.0))
    # Beside an arm hanging along the body its sleeve covers the side (drawn over it, round 4): only where the
    # arm leaves the body (hands on the hips) does a sleeved top's side (a dress's bodice) wrap in.
    for index in range(2 if top else (1 if lead > 0.0 else 0)):
        scales[index] = (1.0 - (1.0 - scales[index][0]) * away[0], 1.0 - (1.0 - scales[index][1]) * away[1])
    sided = _side_panels(base, scales[0], scales[1], ramp, lead, level_width, compression)
    return sided if sided is not None else tapered


def _arms_away(
    keypoints: np.ndarray, origin: np.ndarray, down: np.ndarray, across: np.ndarray
) -> tuple[float, float]:
    """How far (0..1) the upper arm on each side (image left, right) stands off the body: 0 up to
    ARM_HANGS_DEG outward from the body's down direction, 1 from ARM_AWAY_DEG (library poses: hanging arms
    2-12 deg, hands on the hips 28 deg)."""
    away = [0.0, 0.0]
    for shoulder, elbow in ((R_SHOULDER, R_ELBOW), (L_SHOULDER, L_ELBOW)):
        if not visible(keypoints, shoulder, elbow):
            continue
        side = 1 if float((keypoints[shoulder, :2] - origin) @ across) > 0 else 0
        arm = keypoints[elbow, :2] - keypoints[shoulder, :2]
        outward = float(arm @ across) * (1.0 if side else -1.0)
        angle = math.degrees(math.atan2(outward, float(arm @ down)))
        away[side] = min(1.0, max(0.0, (angle - ARM_HANGS_DEG) / (ARM_AWAY_DEG - ARM_HANGS_DEG)))
    return away[0], away[1]


def _outline(alpha: np.ndarray) -> np.ndarray | None:
    """The outline points (n, 2) of a mask's pixels >= 128, or None when it has none."""
    binary = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)[1]
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None
    return np.concatenate([c.reshape(-1, 2) for c in contours]).astype(np.float64)


def _side_scales(
    reach: tuple[float, float], limits: tuple[float, float], scale: float, middle: float
) -> tuple[float, float]:
    """The sides' across scales (left, right) that put the garment's edges (reach: undeformed offsets from
    the centre line) on the body's (limits: the offsets fabric may reach, after the taper's scale and shift)
    at one depth; 1 where the edge lies on the body already or too close to the middle to move."""
    blend = SIDE_BLEND * middle
    wanted = []
    for edge, limit in zip(reach, limits, strict=True):
        target = limit / max(scale, 1e-9)  # where the wrap must put the edge, before the taper's scale
        room = edge - middle - blend / 2.0
        if room <= 0.0 or target >= edge:
            wanted.append(1.0)
        else:
            wanted.append(min(1.0, max(1.0 - MAX_SIDE_STRETCH, (target - middle - blend / 2.0) / room)))
    return wanted[0], wanted[1]


def _side_panels(
    warp: SkirtWarp,
    near: tuple[float, float],
    far: tuple[float, float],
    ramp: float,
    lead: float,
    level_width: float,
    compression: float,
) -> SkirtWarp | None:
    """The warp with side panels at these scales (near: at the ramp's depth, far: at full depth), scaled back
    until the sides' stretch (shear included) is within MAX_SIDE_STRETCH; None when no side needs any."""
    if min(*near, *far) >= 1.0:
        return None
    middle = SIDE_MIDDLE * level_width / 2.0
    for fraction in np.linspace(1.0, 0.0, 11)[:-1]:
        candidate = replace(
            warp,
            middle=middle,
            sides=(1.0 - (1.0 - far[0]) * fraction, 1.0 - (1.0 - far[1]) * fraction),
            sides_near=(1.0 - (1.0 - near[0]) * fraction, 1.0 - (1.0 - near[1]) * fraction),
            ramp=ramp,
            lead=lead,
        )
        if candidate.stretches(level_width / 2.0, compression)[1] <= MAX_SIDE_STRETCH:
            return candidate
    return None


def _torso_edges(
    keypoints: np.ndarray,
    origin: np.ndarray,
    down: np.ndarray,
    across: np.ndarray,
    depth: float,
    torso_unit: float = 0.0,
) -> list[float]:
    """The body's sides (across coordinates) at the given depth below origin: the shoulder-to-hip quad's, and
    (torso_unit > 0) the thighs' where they reach that depth (round the hip joints they are the wider)."""
    edges = []
    for shoulder, hip in ((R_SHOULDER, R_HIP), (L_SHOULDER, L_HIP)):
        start, end = keypoints[shoulder, :2], keypoints[hip, :2]
        v0, v1 = float((start - origin) @ down), float((end - origin) @ down)
        t = min(max((depth - v0) / max(v1 - v0, 1e-6), 0.0), 1.0)
        edges.append(float((start + (end - start) * t - origin) @ across))
    if torso_unit <= 0.0 or not visible(keypoints, R_KNEE, L_KNEE):
        return edges
    for hip, knee, ankle in ((R_HIP, R_KNEE, R_ANKLE), (L_HIP, L_KNEE, L_ANKLE)):
        point, radius = _leg_at(keypoints, hip, knee, ankle, origin, down, depth, torso_unit)
        above = float((keypoints[hip, :2] - origin) @ down) - depth  # above the hip joint: its disc's chord
        if above > 0.0:
            radius = math.sqrt(max(radius * radius - above * above, 0.0))
        if radius > 0.0:
            u = float((point - origin) @ across)
            edges += [u - radius, u + radius]
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
