"""Garment landmarks from a cutout's mask by classical outline geometry, for fitting the garment to a pose.

Names follow OpenPose (pipelines.poses): r_/l_ is the wearer's right/left, so on a front-view packshot r_ lies
on the image left, next to where a pose's r_shoulder would be. Coordinates are image pixels, the centre of
pixel (0, 0) at (0, 0) as in OpenCV.
  tops and dresses: neck (centre front), r_/l_shoulder, r_/l_armpit, r_/l_hem (corners); with sleeves also
    r_/l_cuff (cuff centres) and a SleeveAxis per side; dresses also r_/l_waist (narrowest point).
  trousers, shorts, skirts: r_/l_waist (waistband corners), r_/l_hem (outer hem corners); with legs also
    crotch and r_/l_hem_inner (each leg's inner hem corner).
No learned weights: the outline, its mirror-symmetry axis, its convex hull and the concavities under it
(neckline, armpits, crotch), extreme points and turning angles (corners), and bends away from chords.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import cv2
import numpy as np

from pipelines.poses import GARMENT_CLASSES

# kind_hint -> the garment classes it belongs to; None (the default) decides from the outline alone.
KIND_HINTS: dict[str, frozenset[str]] = {
    "tee": frozenset({"upper_body"}),
    "shirt": frozenset({"upper_body"}),
    "tank": frozenset({"upper_body"}),
    "dress": frozenset({"full_body"}),
    "trousers": frozenset({"lower_body"}),
    "shorts": frozenset({"lower_body"}),
    "skirt": frozenset({"lower_body"}),
}
SLEEVED_HINTS = frozenset({"tee", "shirt"})
SLEEVELESS_HINTS = frozenset({"tank"})
LEGGED_HINTS = frozenset({"trousers", "shorts"})
SKIRT_HINTS = frozenset({"skirt"})

TOP_REQUIRED = ("neck", "r_shoulder", "l_shoulder", "r_armpit", "l_armpit", "r_hem", "l_hem")
LOWER_REQUIRED = ("r_waist", "l_waist", "r_hem", "l_hem")
LEG_REQUIRED = ("crotch", "r_hem_inner", "l_hem_inner")
MIN_CONFIDENCE = 0.3  # a required landmark below this makes the result unusable (the flow places rigidly)
MIN_GARMENT_PX = 32  # shorter outlines have too few pixels for corners and concavities
MAX_WORK_SIDE = 2048  # larger masks are shrunk by a whole factor first: their outlines hold no more shape
MAX_OUTLINE_POINTS = 900  # the outline is thinned to about this many points (2-3 px apart at 512x768)

# Shape rules, as fractions of the garment's height H in its upright frame (tuned on pipelines.testing
# flat-lays; bench/landmarks.py measures them).
MAX_TILT_DEG = 25.0  # "near upright": the symmetry axis is searched within this
MIN_NECK_DEPTH = 0.02  # a neckline is a concavity in the top centre at least this deep
NECK_REACH = 0.1  # of the width: the centre-front neck lies this close to the symmetry axis
NECK_PLATEAU = 0.01  # the neckline's bottom: its points within this of its lowest (a V's tip, a flat stretch)
FLAT_NECK_CONFIDENCE = 0.5  # the top centre, when the outline shows no neckline concavity
MIN_ARMPIT_DEPTH = 0.03  # an underarm concavity between sleeve and torso
MIN_INNER_ARMPIT_BEND = 0.02  # an armpit inside a deeper concavity (short sleeve over a flared skirt)
MIN_CROTCH_DEPTH = 0.08  # the concavity between two legs
MIN_WAIST_DEPTH = 0.015  # a dress's waist: the side's inward bend between armpit and hem
CORNER_ARM = 0.04  # arm length over which a corner's turning angle is measured
SHOULDER_MIN_TURN_DEG = 15.0  # a sleeved shoulder is the first bend from the neck turning at least this
SHOULDER_ARM = 0.08  # shoulders are rounder than hems and cuffs: their turn is measured over longer arms
SHOULDER_INSET = 0.12  # of the width: a shoulder lies no further in than this from above its armpit
SLIT_MAX_DEG = 35.0  # an underarm narrower than this is a slit whose tip the mask cannot show
UNDERARM_MAX_DEG = 120.0  # underarm and side seam meet at most this open; rounder is no corner to sharpen
KINK_MIN_DEG, KINK_MAX_DEG = 100.0, 172.0  # a sleeveless armpit's edges meet this open; straighter is a line
KINK_PLATEAU = 0.004  # of the height: a side's points this close to its most outward one are as far out
KINK_SEARCH = 0.02, 3  # a kink's first fit fails near it: retry this share of the height further, this often
KINK_REFITS = (
    4  # a kink's corner is re-fitted from the outline point nearest the last estimate, at most this often
)
EDGE_FIT = 0.08  # of the height: the length of each edge fitted on either side of a corner
SLIT_FIT = 0.2  # a slit's edges meet at a shallow angle: longer fits steady where they cross
CUFF_MIN_TURN_DEG = 40.0  # a cuff's corners, walking back from the armpit, are the first bends this sharp
DRAPE_MAX_BEND = 0.01  # of the height: a side bending out less than this below the bodice's tip is straight
STRAP_FOOT_MIN_TURN_DEG = 30.0  # a strap meets its bodice in an inward bend at least this sharp
STRAP_FOOT_BELOW_NECK = (
    0.05  # of the height: a halter strap's foot lies no lower than this under the neckline
)
# Long sleeves merged with the body down to a slit (a cardigan laid with its sleeves beside it):
MERGED_CUFF_BELOW = 0.6  # the cuff lies in the garment's lower 40 %
MERGED_HEM_NEAR = 0.03  # of the height: a hem corner this close under the slit shares its confidence
MIN_SLIT_RISE = 0.06  # the slit's tip lies at least this far above the cuff's bottom
MIN_SLIT_TURN_DEG = 60.0  # and turns inward at least this sharply
MIN_MERGED_SLEEVE_WIDTH = 0.06  # of the width: the sleeve from the slit to its outer edge
MERGED_ARMHOLE_DEPTH = 0.24  # the hidden armpit this far below the shoulder point (a knit's armhole depth)
ESTIMATED_CONFIDENCE = 0.55  # a landmark the outline does not show (the merged sleeve's armpit): fixed, lower
SLEEVELESS_SHOULDER_DEG = 33.0  # a strap's top: the extreme point this far from straight up, outward
# Mean mirror mismatch (of the height) above which a garment is asymmetric (a one-shoulder dress: 0.027; the
# shared photos' symmetric garments and the synthetic flat-lays <= 0.011): upright frame, sides on their own.
ASYMMETRIC_ERROR = 0.018
MAX_SYMMETRY_ERROR = 0.12  # mean mirror mismatch of the outline; above it the blob is no garment
MIN_ROUNDNESS = 0.04  # 4 pi area / perimeter^2 of the outline: lower is a ragged, noisy blob
MIN_MAIN_SHARE = 0.85  # the outline's component must hold this share of the mask's pixels
MIN_FILL = 0.8  # and the mask must fill this share of what the outline encloses (mesh and lace keep most)


@dataclass(frozen=True)
class Landmark:
    """One garment landmark in image pixels, with a confidence in 0..1."""

    x: float
    y: float
    confidence: float

    @property
    def xy(self) -> tuple[float, float]:
        """(x, y) in image pixels."""
        return (self.x, self.y)


@dataclass(frozen=True)
class SleeveAxis:
    """A sleeve's axis from its root (middle of shoulder and armpit) to its cuff centre, in image pixels."""

    root: tuple[float, float]
    end: tuple[float, float]
    confidence: float

    @property
    def length(self) -> float:
        """Root-to-cuff length in pixels."""
        return math.hypot(self.end[0] - self.root[0], self.end[1] - self.root[1])

    @property
    def direction(self) -> tuple[float, float]:
        """Unit vector from root to cuff."""
        length = max(self.length, 1e-9)
        return ((self.end[0] - self.root[0]) / length, (self.end[1] - self.root[1]) / length)


@dataclass(frozen=True)
class GarmentLandmarks:
    """Landmarks of one garment mask; usable is False (with the reason) when the fit must fall back."""

    garment_class: str
    silhouette: str  # sleeved_top, sleeveless_top, sleeved_dress, sleeveless_dress, legs, skirt; "" unknown
    points: Mapping[str, Landmark] = field(default_factory=dict)
    sleeves: Mapping[str, SleeveAxis] = field(default_factory=dict)  # "r" / "l"; empty when sleeveless
    tilt_deg: float = 0.0  # the garment's symmetry axis, clockwise from straight down
    height_px: float = 0.0  # garment height along its axis: the scale of every tolerance
    reason: str = ""  # why the landmarks cannot be used; "" when usable

    @property
    def usable(self) -> bool:
        """True when every landmark the fit needs was found confidently."""
        return not self.reason


def check_inputs(mask: np.ndarray, garment_class: str, kind_hint: str | None = None) -> None:
    """Raise a ValueError that says what to pass instead."""
    if not isinstance(mask, np.ndarray) or mask.ndim != 2:
        raise ValueError(
            f"mask must be a 2-D uint8 array (H, W); got {getattr(mask, 'shape', type(mask))}. "
            "Pass the cutout's alpha channel, e.g. rgba[..., 3]."
        )
    if mask.dtype != np.uint8:
        raise ValueError(f"mask must be uint8 0..255 (garment > 127); got dtype {mask.dtype}.")
    if garment_class not in GARMENT_CLASSES:
        raise ValueError(f"unknown garment class {garment_class!r}; use one of {sorted(GARMENT_CLASSES)}.")
    if kind_hint is not None and kind_hint not in KIND_HINTS:
        raise ValueError(f"unknown kind_hint {kind_hint!r}; use one of {sorted(KIND_HINTS)} or None.")
    if kind_hint is not None and garment_class not in KIND_HINTS[kind_hint]:
        raise ValueError(
            f"kind_hint {kind_hint!r} is a {'/'.join(sorted(KIND_HINTS[kind_hint]))} garment, "
            f"not {garment_class}; fix the category or drop the hint."
        )
    if not mask.any():
        raise ValueError(
            "the mask is empty (all zero): segmentation found no garment; place it rigidly or skip."
        )


def find_landmarks(mask: np.ndarray, garment_class: str, kind_hint: str | None = None) -> GarmentLandmarks:
    """Landmarks of a garment mask (uint8, garment > 127, near upright); never raises on a shape."""
    check_inputs(mask, garment_class, kind_hint)
    # 1. The garment's outer outline in image pixels; ragged or fragmented masks are no garment.
    outline, problem = _outline(mask)
    if outline is None:
        return GarmentLandmarks(garment_class, "", reason=problem)
    # 2. The upright frame: the outline's mirror-symmetry axis through its centroid.
    frame, asymmetry = _symmetry_frame(outline)
    asymmetric = asymmetry > ASYMMETRIC_ERROR
    if asymmetric:  # a one-shoulder drape has no mirror axis to find: packshots are shot upright
        frame = _Frame(centre=frame.centre, tilt=0.0)
    shape = _Shape.build(frame.to_upright(outline))
    if asymmetry > MAX_SYMMETRY_ERROR:
        return GarmentLandmarks(
            garment_class,
            "",
            tilt_deg=frame.tilt_deg,
            height_px=shape.height,
            reason=f"the outline is not mirror-symmetric (mismatch {asymmetry:.0%} of its size): "
            "not a garment laid flat",
        )
    # 3. Landmarks by class, in the upright frame, each side measured as the image-right one.
    if garment_class == "lower_body":
        found = _lower_landmarks(shape, kind_hint)
    else:
        found = _top_landmarks(shape, kind_hint, full_body=garment_class == "full_body")
    # 4. Left/right agreement: a landmark whose mirror partner is far off is less certain (an asymmetric
    #    garment's sides are found each on its own, and disagree by design).
    points = dict(found.points) if asymmetric else _with_symmetry(found.points, shape.height)
    # 5. Back to image pixels; usable only when every landmark the fit needs is confident.
    return GarmentLandmarks(
        garment_class=garment_class,
        silhouette=found.silhouette,
        points={name: frame.landmark_to_image(p) for name, p in points.items()},
        sleeves={side: frame.sleeve_to_image(axis) for side, axis in found.sleeves.items()},
        tilt_deg=frame.tilt_deg,
        height_px=shape.height,
        reason=found.problem or _missing(points, found.required),
    )


# --- outline and frame ----------------------------------------------------------------------------------


def _outline(mask: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The main outer contour (n, 2) float64 in image pixels, clockwise on screen; or None and why not."""
    x0, y0, width, height = cv2.boundingRect(mask)
    crop = mask[y0 : y0 + height, x0 : x0 + width]
    factor = max(1, math.ceil(max(width, height) / MAX_WORK_SIDE))
    if factor > 1:  # area-average first so thin straps survive, then threshold like the full mask
        crop = cv2.resize(crop, (width // factor, height // factor), interpolation=cv2.INTER_AREA)
    binary = cv2.threshold(crop, 127, 255, cv2.THRESH_BINARY)[1]
    contours, _ = cv2.findContours(binary, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_NONE)
    if not contours:
        return None, "the mask has no pixel above 127"
    areas = [cv2.contourArea(c) for c in contours]
    main = contours[int(np.argmax(areas))]
    _, _, main_w, main_h = cv2.boundingRect(main)
    if max(main_w, main_h) * factor < MIN_GARMENT_PX:
        return None, f"the garment is only {max(main_w, main_h) * factor} px: need >= {MIN_GARMENT_PX} px"
    outline = main.reshape(-1, 2)
    # Straps that segmentation (or a flat-lay) left a few pixels apart belong to the garment: splice them in.
    reach = 0.05 * max(main_w, main_h)
    for contour, area in zip(contours, areas, strict=True):
        if contour is not main and area >= 1e-3 * max(areas):
            outline = _splice(outline, contour.reshape(-1, 2), reach)
    # Pixels the outline encloses: its polygon runs through boundary pixel centres, half a pixel inside.
    area = cv2.contourArea(outline) + cv2.arcLength(outline, True) / 2.0 + 1.0
    pixels = float(np.count_nonzero(binary))
    if area < MIN_MAIN_SHARE * pixels:
        return None, f"the mask is in pieces (the largest holds {area / pixels:.0%} of it): not one garment"
    if pixels < MIN_FILL * area:
        return (
            None,
            f"the outline is {pixels / area:.0%} filled: holes everywhere (speckle or noise), not a garment",
        )
    roundness = 4.0 * math.pi * area / max(cv2.arcLength(outline, True) ** 2, 1.0)
    if roundness < MIN_ROUNDNESS:
        return None, f"the outline is ragged (roundness {roundness:.3f}): speckle or noise, not a garment"
    # Every pixel of a long outline adds cost, not shape: keep every k-th (still a point every few pixels).
    stride = math.ceil(len(outline) / MAX_OUTLINE_POINTS)
    shift = np.array([x0, y0]) + (factor - 1) / 2.0
    points = outline[::stride].astype(np.float64) * factor + shift
    if _signed_area(points) < 0:
        points = points[::-1].copy()
    return points, ""


def _splice(outline: np.ndarray, piece: np.ndarray, reach: float) -> np.ndarray:
    """The outline with piece spliced in at their closest points (a zero-width bridge), if within reach."""
    stride = max(1, len(outline) // 500)  # coarse search, then exact within one stride
    coarse = outline[::stride].astype(np.float64)
    gaps = np.hypot(*(coarse[:, None, :] - piece[None, :, :].astype(np.float64)).transpose(2, 0, 1))
    i, j = np.unravel_index(int(np.argmin(gaps)), gaps.shape)
    if gaps[i, j] > reach:
        return outline
    window = np.arange(i * stride - stride, i * stride + stride + 1) % len(outline)
    near = window[np.argmin(np.hypot(*(outline[window] - piece[j]).T))]
    # Both run the same way round, so going around the piece at the bridge keeps one consistent boundary.
    return np.concatenate(
        [outline[: near + 1], np.roll(piece, -int(j), axis=0), piece[j : j + 1], outline[near:]]
    )


def _signed_area(points: np.ndarray) -> float:
    """Shoelace area; positive when the polygon runs clockwise on screen (y down)."""
    x, y = points[:, 0], points[:, 1]
    return 0.5 * float(np.dot(x, np.roll(y, -1)) - np.dot(np.roll(x, -1), y))


@dataclass(frozen=True)
class _Frame:
    """Image <-> upright coordinates: turned about the centroid so the symmetry axis is x = 0, downward."""

    centre: np.ndarray
    tilt: float  # radians; the axis runs along (-sin, cos) in the image

    @property
    def tilt_deg(self) -> float:
        """The tilt in degrees, clockwise on screen."""
        return math.degrees(self.tilt)

    def _rotation(self) -> np.ndarray:
        """The upright -> image rotation matrix."""
        cos, sin = math.cos(self.tilt), math.sin(self.tilt)
        return np.array([[cos, -sin], [sin, cos]])

    def to_upright(self, points: np.ndarray) -> np.ndarray:
        """Image points (n, 2) in the upright frame."""
        return (points - self.centre) @ self._rotation()

    def to_image(self, point: np.ndarray) -> tuple[float, float]:
        """One upright point back in image pixels."""
        x, y = self._rotation() @ np.asarray(point, dtype=np.float64) + self.centre
        return (float(x), float(y))

    def landmark_to_image(self, landmark: Landmark) -> Landmark:
        """An upright landmark in image pixels."""
        x, y = self.to_image(np.array([landmark.x, landmark.y]))
        return Landmark(x, y, landmark.confidence)

    def sleeve_to_image(self, axis: SleeveAxis) -> SleeveAxis:
        """An upright sleeve axis in image pixels."""
        return SleeveAxis(
            self.to_image(np.array(axis.root)), self.to_image(np.array(axis.end)), axis.confidence
        )


def _symmetry_frame(points: np.ndarray) -> tuple[_Frame, float]:
    """The mirror axis through the centroid that best maps the outline onto itself, and the mean mismatch / H.

    Chamfer matching: the outline is drawn small, its distance transform read at the reflected outline points
    for candidate angles, coarse then fine; garments are left-right symmetric, so the best reflection is
    their axis (the second moments are not: a tee's are nearly isotropic and jitter turns them 10+ degrees).
    """
    low, high = points.min(axis=0), points.max(axis=0)
    moments = cv2.moments((points - low).astype(np.float32))  # relative: float32 keeps sub-pixel precision
    centre = low + np.array([moments["m10"], moments["m01"]]) / max(moments["m00"], 1e-9)
    # 1. The outline at 96 px with a margin, and each pixel's distance to it.
    side = 96.0
    scale = side / max(float((high - low).max()), 1.0)
    pad = 16.0
    small = (points - low) * scale + pad
    size = int(side + 2 * pad) + 1
    canvas = np.full((size, size), 255, np.uint8)
    cv2.polylines(canvas, [np.round(small * 16).astype(np.int32)], True, 0, 1, cv2.LINE_8, 4)
    distance = cv2.distanceTransform(canvas, cv2.DIST_L2, 3)
    # 2. Mean distance of ~300 reflected outline points, over a coarse then a fine fan of axes.
    origin = (centre - low) * scale + pad
    sample = small[:: max(1, len(points) // 300)] - origin

    def errors(angles: np.ndarray) -> np.ndarray:
        axes = np.stack([-np.sin(angles), np.cos(angles)], axis=1)  # (A, 2)
        reflected = 2.0 * (axes @ sample.T)[..., None] * axes[:, None, :] - sample[None] + origin
        cols = np.clip(np.rint(reflected[..., 0]).astype(np.intp), 0, size - 1)
        rows = np.clip(np.rint(reflected[..., 1]).astype(np.intp), 0, size - 1)
        return distance[rows, cols].mean(axis=1)

    coarse = np.deg2rad(np.arange(-MAX_TILT_DEG, MAX_TILT_DEG + 0.01, 2.5))
    best = float(coarse[int(np.argmin(errors(coarse)))])
    fine = best + np.deg2rad(np.arange(-2.5, 2.51, 0.5))
    fine_errors = errors(fine)
    index = int(np.argmin(fine_errors))
    tilt = float(fine[index])
    if 0 < index < len(fine) - 1:  # parabola through the neighbours for sub-step precision
        a, b, c = fine_errors[index - 1 : index + 2]
        curvature = a - 2.0 * b + c
        if curvature > 1e-9:
            tilt += float(0.5 * (a - c) / curvature) * float(fine[1] - fine[0])
    return _Frame(centre=centre, tilt=tilt), float(fine_errors[index]) / side


# --- the outline in its upright frame ------------------------------------------------------------------


@dataclass(frozen=True)
class _Shape:
    """The upright outline (clockwise on screen, axis x = 0), each point's hull depth and turning angles."""

    points: np.ndarray  # (n, 2)
    hull: np.ndarray  # indices of the convex hull's vertices, ascending
    depth: np.ndarray  # (n,) distance inside the convex hull edge spanning the point (0 on the hull)
    edge: np.ndarray  # (n,) which hull edge spans the point: points of one concavity share it
    turn: np.ndarray  # (n,) convex turning angle in degrees over arms of CORNER_ARM x height (< 0: concave)
    round_turn: np.ndarray  # (n,) the same over SHOULDER_ARM x height, for round corners
    top: float
    bottom: float
    width: float
    step: float  # mean spacing of outline points

    @property
    def height(self) -> float:
        """Top to bottom in the upright frame."""
        return self.bottom - self.top

    @staticmethod
    def build(points: np.ndarray) -> _Shape:
        """Hull, depths and turning angles of an upright outline."""
        hull = np.sort(cv2.convexHull(points.astype(np.float32), returnPoints=False).reshape(-1))
        edge = _hull_edges(hull, len(points))
        start = points[hull[edge]]
        direction = points[hull[(edge + 1) % len(hull)]] - start
        length = np.maximum(np.hypot(direction[:, 0], direction[:, 1]), 1e-9)
        offset = points - start
        depth = np.abs(direction[:, 0] * offset[:, 1] - direction[:, 1] * offset[:, 0]) / length
        step = max(float(np.hypot(*np.diff(points, axis=0, append=points[:1]).T).mean()), 1e-9)
        top, bottom = float(points[:, 1].min()), float(points[:, 1].max())
        height = bottom - top
        return _Shape(
            points=points,
            hull=hull,
            depth=depth,
            edge=edge,
            turn=_turns(points, max(2, round(CORNER_ARM * height / step))),
            round_turn=_turns(points, max(2, round(SHOULDER_ARM * height / step))),
            top=top,
            bottom=bottom,
            width=float(np.ptp(points[:, 0])),
            step=step,
        )

    def mirrored(self) -> _Shape:
        """The outline mirrored about the axis (still clockwise): the image-left side becomes the right."""
        n = len(self.points)
        hull = np.sort(n - 1 - self.hull)
        return _Shape(
            points=self.points[::-1] * np.array([-1.0, 1.0]),
            hull=hull,
            depth=self.depth[::-1],  # a mirror and a reversal: depths and turns stay, in reverse order
            edge=_hull_edges(hull, n),
            turn=self.turn[::-1],
            round_turn=self.round_turn[::-1],
            top=self.top,
            bottom=self.bottom,
            width=self.width,
            step=self.step,
        )

    def path(self, start: int, end: int) -> np.ndarray:
        """Indices from start forward (clockwise) to end, both included."""
        n = len(self.points)
        return np.arange(start, start + (end - start) % n + 1) % n

    def extreme(self, indices: np.ndarray, direction: tuple[float, float]) -> int | None:
        """The index among indices farthest along direction; None if there are none."""
        if len(indices) == 0:
            return None
        scores = self.points[indices] @ np.asarray(direction, dtype=np.float64)
        return int(indices[int(np.argmax(scores))])

    def turn_deg(self, index: int, round_corner: bool = False) -> float:
        """Convex turning angle at a point in degrees (negative: a concave bend)."""
        return float((self.round_turn if round_corner else self.turn)[index])

    def corner_quality(
        self, index: int, round_corner: bool = False, floor: float = 10.0, span: float = 30.0
    ) -> float:
        """0..1: how sharp a convex corner the point is, (turn - floor) / span; a round blob's outline turns
        ~10 degrees over CORNER_ARM."""
        return _unit((self.turn_deg(index, round_corner) - floor) / span)

    def deviation(self, indices: np.ndarray, a: int, b: int) -> np.ndarray:
        """Signed distance of points from the chord a -> b; positive on the chord's left (outward going down
        an image-right side)."""
        start, end = self.points[a], self.points[b]
        direction = end - start
        length = max(float(np.hypot(*direction)), 1e-9)
        offset = self.points[indices] - start
        return (direction[1] * offset[:, 0] - direction[0] * offset[:, 1]) / length


def _hull_edges(hull: np.ndarray, n: int) -> np.ndarray:
    """For each of n outline points, the hull edge k with hull[k] <= index < hull[k + 1] (cyclically)."""
    edge = np.searchsorted(hull, np.arange(n), side="right") - 1
    edge[edge < 0] = len(hull) - 1
    return edge


def _turns(points: np.ndarray, k: int) -> np.ndarray:
    """Turning angle in degrees at every point between the chords to the points k before and k after."""
    before = points - np.roll(points, k, axis=0)
    after = np.roll(points, -k, axis=0) - points
    cross = before[:, 0] * after[:, 1] - before[:, 1] * after[:, 0]
    return np.degrees(np.arctan2(cross, np.einsum("ij,ij->i", before, after)))


@dataclass
class _Found:
    """Landmarks in the upright frame as one class's search left them."""

    silhouette: str
    required: tuple[str, ...]
    points: dict[str, Landmark] = field(default_factory=dict)
    sleeves: dict[str, SleeveAxis] = field(default_factory=dict)
    problem: str = ""


def _landmark(shape: _Shape, index: int, confidence: float) -> Landmark:
    """The outline point at index as a landmark, confidence clipped to 0..1."""
    x, y = shape.points[index]
    return Landmark(float(x), float(y), _unit(confidence))


def _unit(value: float) -> float:
    """value clipped to 0..1 (np.clip costs microseconds per scalar)."""
    return min(1.0, max(0.0, float(value)))


def _mirror_landmark(landmark: Landmark) -> Landmark:
    """A landmark mirrored about the upright axis."""
    return Landmark(-landmark.x, landmark.y, landmark.confidence)


def _centre_concavity(shape: _Shape, at_top: bool, min_depth: float) -> tuple[int, float] | None:
    """The concavity under the hull edge crossing the axis at the top (neckline) or bottom (crotch).

    Returns its centre point (a V-neck's tip, a neckline's bottom on the axis, a crotch's middle) and depth.
    """
    hull = shape.hull
    starts, ends = shape.points[hull], shape.points[np.roll(hull, -1)]
    crossing = np.flatnonzero((starts[:, 0] <= 0.0) != (ends[:, 0] <= 0.0))
    if len(crossing) == 0:
        return None
    mid_y = (starts[crossing, 1] + ends[crossing, 1]) / 2.0
    edge = int(crossing[np.argmin(mid_y) if at_top else np.argmax(mid_y)])
    members = np.flatnonzero(shape.edge == edge)
    if len(members) == 0:
        return None
    deepest = int(members[np.argmax(shape.depth[members])])
    depth = float(shape.depth[deepest])
    if depth < min_depth * shape.height:
        return None
    if at_top:  # a V's tip, a round or flat neckline's bottom: the middle of its lowest stretch near the axis
        return _neckline_bottom(shape, members), depth
    # A crotch's short flat top: its middle (the axis, a little off, would slide along it).
    top = members[shape.depth[members] >= depth - 0.03 * shape.height]
    middle = (shape.points[top, 0].min() + shape.points[top, 0].max()) / 2.0
    return int(top[np.argmin(np.abs(shape.points[top, 0] - middle))]), depth


def _neckline_bottom(shape: _Shape, members: np.ndarray) -> int:
    """The neckline's centre front: the middle of its points within NECK_PLATEAU of its lowest, near the axis
    unless the neckline's lowest point lies off it.

    Measured along the symmetry axis, so a mirror image picks the mirrored point; not the point deepest under
    the hull edge, which the shoulders' heights tilt, and which slides from end to end of a shallow V.
    """
    # Rounded: the frame's coordinates carry float noise that would break ties differently once translated.
    x, y = np.round(shape.points[members, 0], 6), np.round(shape.points[members, 1], 6)
    near = np.abs(x) <= NECK_REACH * shape.width
    if not near.any() or y.max() - y[near].max() > NECK_PLATEAU * shape.height:
        near = np.ones(len(members), dtype=bool)  # an off-centre neckline (a one-shoulder dress's)
    plateau = near & (y >= y[near].max() - NECK_PLATEAU * shape.height)
    middle = (x[plateau].min() + x[plateau].max()) / 2.0
    candidates = np.flatnonzero(plateau)
    return int(members[candidates[np.argmin(np.abs(x[candidates] - middle))]])


# --- tops and dresses ------------------------------------------------------------------------------------


def _top_landmarks(shape: _Shape, kind_hint: str | None, full_body: bool) -> _Found:
    """Neck, shoulders, armpits, hem corners, sleeves (when there are), and a dress's waist."""
    noun = "dress" if full_body else "top"
    found = _Found(silhouette=f"sleeveless_{noun}", required=TOP_REQUIRED)
    # 1. The neckline: the concavity in the top centre; its bottom on the axis is the centre-front neck.
    neck = _centre_concavity(shape, at_top=True, min_depth=MIN_NECK_DEPTH)
    if neck is not None and shape.points[neck[0], 1] > shape.top + 0.6 * shape.height:
        neck = None  # a concavity reaching below the middle is no neckline
    if neck is not None:
        top_centre, depth = neck
        found.points["neck"] = _landmark(shape, top_centre, depth / (2.5 * MIN_NECK_DEPTH * shape.height))
    else:  # no neckline (a flat collar, the back neck showing): where the axis leaves the top stands in
        upper = np.flatnonzero(shape.points[:, 1] < shape.top + 0.3 * shape.height)
        top_centre = int(upper[np.argmin(np.abs(shape.points[upper, 0]))])
        found.points["neck"] = _landmark(shape, top_centre, FLAT_NECK_CONFIDENCE)
    # 2. Each side as the image-right one: the wearer's left as is, the wearer's right mirrored.
    sides = {"l": _top_side(shape, top_centre, full_body)}
    sides["r"] = _mirror_side(_top_side(shape.mirrored(), len(shape.points) - 1 - top_centre, full_body))
    for side, result in sides.items():
        found.points.update({f"{side}_{name}": p for name, p in result.points.items()})
        if result.sleeve is not None:
            found.sleeves[side] = result.sleeve
    # 3. Sleeves come in pairs: one alone is a bump in the outline, not a sleeve (its side keeps the shoulder
    #    and armpit found with it; the mirror check lowers their confidence).
    if len(found.sleeves) == 1:
        found.sleeves.clear()
        for side in "rl":
            found.points.pop(f"{side}_cuff", None)
    # 4. Long sleeves hanging beside the body, merged with it down to a slit by the hem, show no underarm
    #    concavity (read as sleeveless, the slits are its armpits, the cuffs its hem): when both sides show
    #    such a slit, with cuff corners below it, they are sleeves.
    if not found.sleeves and kind_hint not in SLEEVELESS_HINTS:
        left = _merged_sleeve(shape, top_centre)
        right = _merged_sleeve(shape.mirrored(), len(shape.points) - 1 - top_centre)
        if left is not None and right is not None:
            found.points = {"neck": found.points["neck"]}
            for side, result in (("l", left), ("r", _mirror_side(right))):
                found.points.update({f"{side}_{name}": p for name, p in result.points.items()})
                if result.sleeve is not None:
                    found.sleeves[side] = result.sleeve
    if found.sleeves:
        found.silhouette = f"sleeved_{noun}"
    if kind_hint in SLEEVED_HINTS and not found.sleeves:
        found.problem = f"a {kind_hint} has sleeves, but the outline shows no armpit concavities"
    if kind_hint in SLEEVELESS_HINTS and found.sleeves:
        found.problem = f"a {kind_hint} has no sleeves, but the outline shows two"
    return found


@dataclass(frozen=True)
class _SideResult:
    """One side's landmarks (names without r_/l_) and sleeve axis, if it has a sleeve."""

    points: dict[str, Landmark]
    sleeve: SleeveAxis | None


def _mirror_side(result: _SideResult) -> _SideResult:
    """A side found in the mirrored shape, back in the shape's own frame."""
    return _SideResult(
        {name: _mirror_landmark(p) for name, p in result.points.items()},
        _mirror_sleeve(result.sleeve) if result.sleeve else None,
    )


def _mirror_sleeve(axis: SleeveAxis) -> SleeveAxis:
    """A sleeve axis mirrored about the upright axis."""
    return SleeveAxis((-axis.root[0], axis.root[1]), (-axis.end[0], axis.end[1]), axis.confidence)


def _top_side(shape: _Shape, top_centre: int, full_body: bool) -> _SideResult:
    """The image-right side of a top: shoulder, armpit, hem corner, cuff and sleeve axis, waist."""
    points: dict[str, Landmark] = {}
    x, y = shape.points[:, 0], shape.points[:, 1]
    height = shape.height
    neck_y = float(y[top_centre])
    outer = x > 0.02 * shape.width
    # 1. A sleeve shows as an underarm concavity at the side whose outline, followed back toward the neck,
    #    runs outward and not upward (a dress's waist concavity runs up to the armpit instead).
    underarm = _underarm(shape, neck_y)
    armpit, sleeve = None, None
    if underarm is not None:
        armpit, depth = underarm
        found = _sleeve(shape, armpit, top_centre)
        if found is not None:
            shoulder, cuff, sleeve, sleeve_path = found
            points["shoulder"] = shoulder
            points["cuff"] = cuff
            points["armpit"] = _landmark(shape, armpit, depth / (2.0 * MIN_ARMPIT_DEPTH * height))
            # Where underarm and side seam meet: sharper than the outline at an inner corner, and a hanging
            # sleeve's slit (long edges, a shallow angle) has its tip where the mask is under a pixel wide.
            tip = _edges_meet(shape, armpit, 0.0, SLIT_MAX_DEG, SLIT_FIT)
            if tip is None:
                tip = _edges_meet(shape, armpit, SLIT_MAX_DEG, UNDERARM_MAX_DEG)
            if tip is not None:
                points["armpit"] = Landmark(float(tip[0]), float(tip[1]), points["armpit"].confidence)
            off_sleeve = np.ones(len(x), dtype=bool)
            off_sleeve[sleeve_path] = False
            torso = np.flatnonzero(outer & off_sleeve & (y > y[armpit]))
        else:
            armpit = None
    # 2. Sleeveless: the shoulder is the strap's (or bodice's) top, outward.
    if armpit is None:
        tilt = math.radians(SLEEVELESS_SHOULDER_DEG)
        top_half = np.flatnonzero(outer & (y < shape.top + 0.5 * height))
        shoulder_index = shape.extreme(top_half, (math.sin(tilt), -math.cos(tilt)))
        if shoulder_index is None:
            return _SideResult(points, None)
        points["shoulder"] = _landmark(shape, shoulder_index, _peak_quality(shape, shoulder_index))
        torso = np.flatnonzero(outer & (y > shape.top + 0.5 * height))
    # 3. The hem corner: the torso's extreme down and outward.
    hem = shape.extreme(torso, (math.sqrt(0.5), math.sqrt(0.5)))
    if hem is None:
        return _SideResult(points, sleeve)
    points["hem"] = _landmark(shape, hem, shape.corner_quality(hem))
    # 4. Sleeveless armpit: where the armhole meets the side seam, the side's most outward bend between the
    #    shoulder and the waist (or hem); a dress's waist is the most inward bend below it.
    if armpit is None:
        shoulder_index = _index_of(shape, points["shoulder"])
        armpit, armpit_quality = _sleeveless_armpit(shape, shoulder_index, hem, neck_y, full_body)
        if armpit is None:
            return _SideResult(points, None)
        points["armpit"] = _landmark(shape, armpit, armpit_quality)
        kink = _settled_kink(shape, armpit)
        if kink is not None:
            points["armpit"] = Landmark(float(kink[0]), float(kink[1]), points["armpit"].confidence)
    if full_body:
        side_path = shape.path(armpit, hem)
        inward = -shape.deviation(side_path, armpit, hem)
        deepest = int(np.argmax(inward))
        if inward[deepest] >= MIN_WAIST_DEPTH * height:
            points["waist"] = _landmark(
                shape, int(side_path[deepest]), inward[deepest] / (2.0 * MIN_WAIST_DEPTH * height)
            )
    return _SideResult(points, sleeve)


def _peak_quality(shape: _Shape, index: int, reach: int = 2) -> float:
    """The sharpest corner quality within reach outline points of index: the thinned outline samples a
    corner's vertex, or a point beside it, depending on where its sampling starts (a mirror image's starts
    elsewhere), and an extreme point may sit a point off the corner's sharpest turn."""
    near = np.arange(index - reach, index + reach + 1) % len(shape.points)
    return max(shape.corner_quality(int(j)) for j in near)


def _index_of(shape: _Shape, landmark: Landmark) -> int:
    """The outline point nearest a landmark."""
    distances = np.hypot(shape.points[:, 0] - landmark.x, shape.points[:, 1] - landmark.y)
    return int(np.argmin(distances))


def _underarm(shape: _Shape, neck_y: float) -> tuple[int, float] | None:
    """The image-right armpit and its depth: a side concavity from which the outline runs outward to a cuff.

    Toward the cuff an underarm runs down, level, or up by less than 45 degrees; a dress's waist concavity
    runs steeply up to the armpit instead. With short sleeves over a flared skirt one concavity holds both:
    then the armpit is the corner inside it, between its sleeve-side end and its deepest point.
    """
    x, y = shape.points[:, 0], shape.points[:, 1]
    height = shape.height
    rows = (x > 0.08 * shape.width) & (y > neck_y - 0.1 * height) & (y < shape.top + 0.8 * height)
    n = len(shape.points)
    k = max(2, round(0.08 * height / shape.step))
    # The deepest point of each concavity (hull edge), deepest concavity first.
    order = np.lexsort((-shape.depth, shape.edge))
    firsts = order[np.r_[True, shape.edge[order][1:] != shape.edge[order][:-1]]]
    firsts = firsts[(shape.depth[firsts] >= MIN_ARMPIT_DEPTH * height) & (x[firsts] > 0.08 * shape.width)]
    for deepest in firsts[np.argsort(-shape.depth[firsts])].tolist():
        depth, start = float(shape.depth[deepest]), int(shape.hull[shape.edge[deepest]])
        candidates = [(deepest, depth)]
        inner = shape.path(start, deepest)
        if len(inner) > 2:
            bend = np.abs(shape.deviation(inner, start, deepest))
            corner = int(np.argmax(bend))
            if bend[corner] >= MIN_INNER_ARMPIT_BEND * height:
                candidates.append((int(inner[corner]), float(bend[corner])))
        for index, index_depth in candidates:
            back = shape.points[(index - k) % n] - shape.points[index]  # toward the cuff on a sleeve
            if rows[index] and back[0] > 0 and back[1] > -back[0]:
                return index, index_depth
    return None


def _edges_meet(
    shape: _Shape, index: int, min_deg: float, max_deg: float, length: float = EDGE_FIT
) -> np.ndarray | None:
    """Where the straight edges on either side of a corner at index meet, when the angle between them (0 for
    a slit, 180 for a straight line) is within min_deg..max_deg; None otherwise.

    Sub-pixel and steadier than any one outline point: a slit's tip is lost where it is under a pixel wide,
    and a faint bend's farthest point slides along its edges.
    """
    n = len(shape.points)
    near, far = (max(1, round(f * shape.height / shape.step)) for f in (0.01, length))
    if far - near < 3:
        return None
    offsets = np.arange(near, far)
    lines = []
    for side in (-1, 1):  # fit each edge's line, pointing away from the corner
        edge = shape.points[(index + side * offsets) % n]
        centre = edge.mean(axis=0)
        direction = np.linalg.svd(edge - centre, full_matrices=False)[2][0]
        if direction @ (centre - shape.points[index]) < 0:
            direction = -direction
        lines.append((centre, direction))
    (c1, d1), (c2, d2) = lines
    angle = math.degrees(math.acos(max(-1.0, min(1.0, float(d1 @ d2)))))
    cross = d1[0] * d2[1] - d1[1] * d2[0]
    if not min_deg <= angle <= max_deg or abs(cross) < 1e-9:
        return None
    offset = c2 - c1  # c1 + a d1 = c2 + b d2, solved for a
    meet = c1 + d1 * (offset[0] * d2[1] - offset[1] * d2[0]) / cross
    if float(np.hypot(*(meet - shape.points[index]))) > EDGE_FIT * shape.height:  # too far to be its corner
        return None
    return meet


def _settled_kink(shape: _Shape, index: int) -> np.ndarray | None:
    """A faint kink's corner by _edges_meet, re-fitted from the outline point nearest each estimate until it
    settles: a first guess off the corner fits one edge across it (a mirror image's first guess lies
    elsewhere along the same faint bend), and that edge's line points past the corner."""
    meet = None
    # The most outward point of a side whose edge below the kink runs nearly along the chord lies anywhere
    # on that edge: its fits take the corner for a straight line; the kink is a little way up.
    stride = max(1, round(KINK_SEARCH[0] * shape.height / shape.step))
    for attempt in range(KINK_SEARCH[1] + 1):
        for offset in (0,) if attempt == 0 else (-attempt * stride, attempt * stride):
            start = (index + offset) % len(shape.points)
            if _edges_meet(shape, start, KINK_MIN_DEG, KINK_MAX_DEG) is not None:
                break
        else:
            continue
        index = start
        break
    for _ in range(KINK_REFITS):
        found = _edges_meet(shape, index, KINK_MIN_DEG, KINK_MAX_DEG)
        if found is None:
            return meet
        meet = found
        nearest = int(np.argmin(np.hypot(*(shape.points - meet).T)))
        if nearest == index:
            break
        index = nearest
    return meet


def _sleeve(
    shape: _Shape, armpit: int, top_centre: int
) -> tuple[Landmark, Landmark, SleeveAxis, np.ndarray] | None:
    """Shoulder, cuff centre and sleeve axis of the image-right sleeve whose underarm ends at armpit."""
    x = shape.points[:, 0]
    height = shape.height
    # The sleeve's outline: from the top centre forward (clockwise) over the shoulder and cuff to the armpit.
    around = shape.path(top_centre, armpit)
    # 1. The cuff's inner corner: walking back from the armpit along the underarm, the first sharp corner.
    back = around[::-1]
    corners = _corners(shape, back, CUFF_MIN_TURN_DEG)
    if not corners:
        return None
    cuff_in = corners[0]
    # 2. The shoulder: the first clear bend from the neck's side toward the cuff that lies roughly above the
    #    armpit (a collar's corners lie further in).
    neck_side = int(shape.hull[np.searchsorted(shape.hull, top_centre, side="right") % len(shape.hull)])
    upper = shape.path(neck_side, cuff_in)
    inner_limit = x[armpit] - SHOULDER_INSET * shape.width
    bends = [
        c
        for c in _corners(shape, upper, SHOULDER_MIN_TURN_DEG, round_corner=True)
        if x[c] >= inner_limit and c != cuff_in
    ]
    if bends:
        shoulder = bends[0]
    else:  # a round shoulder without a clear bend: the most outward point beyond the collar
        outside = upper[x[upper] >= inner_limit]
        if len(outside) < 3:
            return None
        shoulder = int(outside[int(np.argmax(shape.deviation(outside, int(outside[0]), cuff_in)))])
    # 3. The cuff's outer corner: the next sharp corner back from the inner one; a short or cut-off sleeve
    #    may have none, then the sleeve's most outward point between shoulder and cuff stands in.
    top_edge = shape.path(shoulder, cuff_in)
    cuff_out = next((c for c in corners[1:] if c in top_edge), None)
    if cuff_out is None:
        cuff_out = int(top_edge[int(np.argmax(shape.deviation(top_edge, shoulder, cuff_in)))])
    root = (shape.points[shoulder] + shape.points[armpit]) / 2.0
    cuff_centre = (shape.points[cuff_out] + shape.points[cuff_in]) / 2.0
    if float(np.hypot(*(cuff_centre - root))) < 0.03 * height:
        return None
    cuff_quality = min(shape.corner_quality(cuff_out), shape.corner_quality(cuff_in))
    shoulder_landmark = _landmark(
        shape, shoulder, shape.corner_quality(shoulder, round_corner=True, floor=5.0, span=20.0)
    )
    cuff = Landmark(float(cuff_centre[0]), float(cuff_centre[1]), cuff_quality)
    sleeve_axis = SleeveAxis(
        (float(root[0]), float(root[1])),
        (float(cuff_centre[0]), float(cuff_centre[1])),
        min(cuff_quality, shoulder_landmark.confidence),
    )
    return shoulder_landmark, cuff, sleeve_axis, shape.path(shoulder, armpit)


def _merged_sleeve(shape: _Shape, top_centre: int) -> _SideResult | None:
    """The image-right long sleeve hanging beside the body, merged with it down to a slit by the hem.

    The outline holds no armpit: from the cuff it runs up the sleeve's inner edge to the slit's tip (where the
    mask joins sleeve and body), then down the body's side to the hem. The armpit is estimated straight above
    the tip (the body's side runs along the axis), at the usual armhole depth below the shoulder, with
    ESTIMATED_CONFIDENCE; the fit cuts the sleeve off along shoulder -> armpit -> slit tip.
    """
    x, y = shape.points[:, 0], shape.points[:, 1]
    height, width = shape.height, shape.width
    # 1. The cuff's bottom: the side's extreme down and outward, low on the garment.
    low = np.flatnonzero((x > 0.25 * width) & (y > shape.top + MERGED_CUFF_BELOW * height))
    cuff_low = shape.extreme(low, (math.sqrt(0.5), math.sqrt(0.5)))
    bottom = np.flatnonzero(y > shape.top + 0.5 * height)
    if cuff_low is None or len(bottom) == 0:
        return None
    hem_middle = int(bottom[np.argmin(np.abs(x[bottom]))])
    # 2. The slit's tip: the sharpest inward bend between the cuff and the hem's middle, well above the cuff.
    inward = shape.path(cuff_low, hem_middle)
    raised = inward[(y[inward] <= y[cuff_low] - MIN_SLIT_RISE * height) & (x[inward] > 0.15 * width)]
    if len(raised) == 0:
        return None
    sharp = raised[shape.turn[raised] <= -MIN_SLIT_TURN_DEG]
    if len(sharp) == 0:
        return None
    # The highest of its sharply bending points: every point near a narrow V's tip bends about as sharply,
    # and a mirror image would pick another of them by its turn; by height it picks the same.
    slit = int(sharp[np.argmin(y[sharp])])
    if x[cuff_low] - x[slit] < MIN_MERGED_SLEEVE_WIDTH * width:
        return None
    tip_xy = shape.points[slit]
    # 3. The cuff's corners, walking back from the slit toward the cuff: inner, then outer.
    neck_side = int(shape.hull[np.searchsorted(shape.hull, top_centre, side="right") % len(shape.hull)])
    corners = _corners(shape, shape.path(neck_side, slit)[::-1], CUFF_MIN_TURN_DEG)
    if len(corners) < 2:
        return None
    cuff_in, cuff_out = corners[0], corners[1]
    if y[cuff_out] < shape.top + MERGED_CUFF_BELOW * height:  # no outer cuff corner low on the sleeve
        return None
    # 4. The shoulder: the first clear bend from the neck toward the cuff, beyond the body's side.
    upper = shape.path(neck_side, cuff_out)
    inner_limit = float(tip_xy[0]) - SHOULDER_INSET * width
    bends = [
        c
        for c in _corners(shape, upper, SHOULDER_MIN_TURN_DEG, round_corner=True)
        if x[c] >= inner_limit and y[c] < shape.top + 0.4 * height
    ]
    if not bends:
        return None
    shoulder = bends[0]
    shoulder_landmark = _landmark(
        shape, shoulder, shape.corner_quality(shoulder, round_corner=True, floor=5.0, span=20.0)
    )
    # 5. The armpit, estimated; the hem corner: the body's extreme down and outward past the slit.
    armpit_y = min(float(y[shoulder]) + MERGED_ARMHOLE_DEPTH * height, float(tip_xy[1]) - 0.05 * height)
    armpit = Landmark(float(tip_xy[0]), armpit_y, ESTIMATED_CONFIDENCE)
    body = shape.path(slit, hem_middle)
    body = body[np.hypot(*(shape.points[body] - tip_xy).T) > 0.01 * height]  # the body's, not the slit's
    hem = shape.extreme(body, (math.sqrt(0.5), math.sqrt(0.5)))
    if hem is None:
        return None
    # Close under the slit (the body's side can be a few pixels long, or none: the sleeve meets the hem's
    # corner) the corner's turn mixes with the slit's: its quality is its own sharpest turn nearby, or the
    # slit's as it comes within MERGED_HEM_NEAR of it (smoothly: no threshold for a mirror image to flip).
    near_slit = np.arange(slit - 2, slit + 3) % len(shape.points)
    slit_quality = _unit(
        -float(shape.turn[near_slit].min()) / 90.0
    )  # its sharpest bend nearby (as _peak_quality)
    nearness = _unit(2.0 - math.dist(shape.points[hem], tip_xy) / (MERGED_HEM_NEAR * height))
    hem_landmark = _landmark(shape, hem, max(_peak_quality(shape, hem), slit_quality * nearness))
    cuff_centre = (shape.points[cuff_in] + shape.points[cuff_out]) / 2.0
    cuff_quality = min(shape.corner_quality(cuff_in), shape.corner_quality(cuff_out))
    root = (np.array(shoulder_landmark.xy) + np.array(armpit.xy)) / 2.0
    points = {
        "shoulder": shoulder_landmark,
        "armpit": armpit,
        "slit": Landmark(float(tip_xy[0]), float(tip_xy[1]), slit_quality),
        "cuff": Landmark(float(cuff_centre[0]), float(cuff_centre[1]), cuff_quality),
        "hem": hem_landmark,
    }
    axis = SleeveAxis(
        (float(root[0]), float(root[1])),
        (float(cuff_centre[0]), float(cuff_centre[1])),
        min(cuff_quality, armpit.confidence),
    )
    return _SideResult(points, axis)


def _corners(shape: _Shape, path: np.ndarray, min_turn_deg: float, round_corner: bool = False) -> list[int]:
    """Convex corners along path, in path order: points turning >= min_turn_deg, sharpest within one arm.

    A corner at the path's first point (the corner the path starts from) is left out.
    """
    arm = SHOULDER_ARM if round_corner else CORNER_ARM
    reach = max(2, round(arm * shape.height / shape.step))
    if len(path) < 3:
        return []
    turns = (shape.round_turn if round_corner else shape.turn)[path]
    padded = np.pad(turns, reach, constant_values=-np.inf)
    local_max = np.lib.stride_tricks.sliding_window_view(padded, 2 * reach + 1).max(axis=1)
    peaks = np.flatnonzero((turns >= min_turn_deg) & (turns >= local_max))
    corners: list[int] = []
    last = -reach - 1
    for peak in peaks:
        if peak - last > reach and peak >= reach:  # one per plateau, not the start's own
            corners.append(int(path[peak]))
        last = int(peak)
    return corners


def _sleeveless_armpit(
    shape: _Shape, shoulder: int, hem: int, neck_y: float, full_body: bool
) -> tuple[int | None, float]:
    """The armhole's lower end on the image-right side: the most outward bend of the side, and its quality."""
    height = shape.height
    side_path = shape.path(shoulder, hem)
    # 1. The bodice's outer tip: where a strap meets the bodice, the sharpest convex bend above the neckline.
    tips = [c for c in _corners(shape, side_path, 30.0) if shape.points[c, 1] < neck_y - 0.08 * height]
    tip = max(tips, key=shape.turn_deg, default=shoulder)
    if not tips:  # a halter's strap rises from the bodice's top by the neck: the armhole starts at its foot
        tip = _strap_foot(shape, side_path, neck_y) or shoulder
    below = shape.path(tip, hem)[1:]
    if len(below) < 3:
        return None, 0.0
    # 2. A dress's waist bends the side inward: the armpit is the outward bend above it.
    lower = hem
    if full_body:
        inward = -shape.deviation(below, tip, hem)
        deepest = int(np.argmax(inward))
        if inward[deepest] >= MIN_WAIST_DEPTH * height:
            lower = int(below[deepest])
    span = below[: int(np.flatnonzero(below == lower)[0]) + 1]
    outward = shape.deviation(span, tip, lower)
    most = float(outward.max())
    if tip != shoulder and most < DRAPE_MAX_BEND * height:  # the side runs straight in from the bodice's tip:
        # That corner is the armpit (a drape's band over one shoulder); its quality over long arms, as for a
        # round shoulder: over short ones the thinned outline's sampling moves its turn by 5 degrees.
        return tip, shape.corner_quality(tip, round_corner=True, floor=5.0, span=20.0)
    # Along a side edge that runs nearly parallel to the chord the most outward point is anywhere on it: the
    # middle of the stretch within KINK_PLATEAU of it is the same point in a mirror image.
    best = int(np.argmax(outward))
    level = outward >= most - KINK_PLATEAU * height
    first, last = best, best
    while first > 0 and level[first - 1]:
        first -= 1
    while last < len(span) - 1 and level[last + 1]:
        last += 1
    return int(span[(first + last) // 2]), most / (0.03 * height)


def _strap_foot(shape: _Shape, side_path: np.ndarray, neck_y: float) -> int | None:
    """Where a strap running up from the neckline (a halter's) meets the bodice: the first sharp inward bend
    down the side, no lower than just under the neckline; None for a bodice that has none."""
    x, y = shape.points[:, 0], shape.points[:, 1]
    reach = max(2, round(CORNER_ARM * shape.height / shape.step))
    for offset, index in enumerate(side_path.tolist()):
        if y[index] > neck_y + STRAP_FOOT_BELOW_NECK * shape.height:
            return None
        if offset >= reach and shape.turn[index] <= -STRAP_FOOT_MIN_TURN_DEG and x[index] > 0:
            window = side_path[offset : offset + reach]
            return int(window[np.argmin(shape.turn[window])])
    return None


# --- trousers, shorts, skirts ---------------------------------------------------------------------------


def _lower_landmarks(shape: _Shape, kind_hint: str | None) -> _Found:
    """Waistband corners, hem corners, and for legs the crotch and each leg's inner hem corner."""
    found = _Found(silhouette="skirt", required=LOWER_REQUIRED)
    height = shape.height
    # 1. The crotch: a deep concavity in the bottom centre (a skirt's hem has none).
    crotch = (
        None
        if kind_hint in SKIRT_HINTS
        else _centre_concavity(shape, at_top=False, min_depth=MIN_CROTCH_DEPTH)
    )
    if crotch is not None:
        index, depth = crotch
        found.silhouette = "legs"
        found.required = LOWER_REQUIRED + LEG_REQUIRED
        found.points["crotch"] = _landmark(shape, index, depth / (2.0 * MIN_CROTCH_DEPTH * height))
    elif kind_hint in LEGGED_HINTS:
        found.problem = f"{kind_hint} have two legs, but the outline shows no crotch concavity"
    # 2. Corners per side, as the image-right one.
    crotch_y = float(shape.points[crotch[0], 1]) if crotch is not None else None
    for side, side_shape in (("l", shape), ("r", shape.mirrored())):
        for name, landmark in _lower_side(side_shape, crotch_y).items():
            found.points[f"{side}_{name}"] = landmark if side == "l" else _mirror_landmark(landmark)
    # 3. The waistband is a straight top edge: a round blob has no corners joined by one.
    if "r_waist" in found.points and "l_waist" in found.points:
        straightness = _edge_straightness(shape, found.points["r_waist"], found.points["l_waist"])
        for side in "rl":
            landmark = found.points[f"{side}_waist"]
            found.points[f"{side}_waist"] = Landmark(
                landmark.x, landmark.y, landmark.confidence * straightness
            )
    return found


def _lower_side(shape: _Shape, crotch_y: float | None) -> dict[str, Landmark]:
    """The image-right side's waistband corner, outer hem corner and (with legs) inner hem corner."""
    x, y = shape.points[:, 0], shape.points[:, 1]
    points: dict[str, Landmark] = {}
    outer = np.flatnonzero(x > 0.02 * shape.width)
    half = math.sqrt(0.5)
    waist = shape.extreme(outer[y[outer] < shape.top + 0.5 * shape.height], (half, -half))
    hem = shape.extreme(outer[y[outer] > shape.top + 0.5 * shape.height], (half, half))
    if waist is not None:
        points["waist"] = _landmark(shape, waist, shape.corner_quality(waist))
    if hem is not None:
        points["hem"] = _landmark(shape, hem, shape.corner_quality(hem))
    if crotch_y is not None:
        leg = np.flatnonzero((x > 0) & (y > crotch_y))
        inner = shape.extreme(leg, (-half, half))
        if inner is not None:
            points["hem_inner"] = _landmark(shape, inner, shape.corner_quality(inner))
    return points


def _edge_straightness(shape: _Shape, start: Landmark, end: Landmark) -> float:
    """0..1: how straight the outline runs clockwise from start to end (1 within 2 % of the height)."""
    a, b = _index_of(shape, start), _index_of(shape, end)
    path = shape.path(a, b)
    bend = float(np.abs(shape.deviation(path, a, b)).max()) / shape.height
    return _unit(1.0 - (bend - 0.02) / 0.06)


# --- confidence and usability --------------------------------------------------------------------------


def _with_symmetry(points: Mapping[str, Landmark], height: float) -> dict[str, Landmark]:
    """Scale each r_/l_ landmark's confidence by how well it mirrors its partner across the axis."""
    out = dict(points)
    for name, landmark in points.items():
        if not name.startswith("r_"):
            continue
        partner = points.get("l_" + name[2:])
        if partner is None:
            continue
        mismatch = math.hypot(landmark.x + partner.x, landmark.y - partner.y) / height
        factor = _unit(1.0 - (mismatch - 0.03) / 0.12)
        out[name] = Landmark(landmark.x, landmark.y, landmark.confidence * factor)
        out[partner_name(name)] = Landmark(partner.x, partner.y, partner.confidence * factor)
    return out


def partner_name(name: str) -> str:
    """The mirror partner's name: r_shoulder <-> l_shoulder; centre landmarks are their own partner."""
    if name.startswith("r_"):
        return "l_" + name[2:]
    if name.startswith("l_"):
        return "r_" + name[2:]
    return name


def _missing(points: Mapping[str, Landmark], required: tuple[str, ...]) -> str:
    """'' when every required landmark is confident, else a reason naming the ones that are not."""
    absent = [name for name in required if name not in points]
    weak = [name for name in required if name in points and points[name].confidence < MIN_CONFIDENCE]
    parts = []
    if absent:
        parts.append(f"not found: {', '.join(absent)}")
    if weak:
        parts.append(f"too uncertain (< {MIN_CONFIDENCE}): {', '.join(weak)}")
    return "; ".join(parts)
