"""Split a garment (its mask in working pixels) at its landmarks into panels, and the panels' blend weights.

Panels: the torso (or, for trousers and shorts, the hip panel) and one limb panel per sleeve or leg, cut off
along a seam segment between two landmarks (shoulder -> armpit; crotch -> the outer side at crotch height).
A limb may be split once more across its axis (elbow, knee) into an upper and a lower part. Weights are a
partition of unity: 1 inside a panel, blended over a narrow band on the limb's side of each seam, so the
torso keeps its own transform exactly and the warp stays smooth across every seam.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import cv2
import numpy as np

BAND = 0.035  # of the garment height: the seam blend band, on the limb's side
BARRIER_PX = 3  # thickness of the cut drawn along a seam to separate the regions
MIN_LIMB_SHARE, MAX_LIMB_SHARE = 0.015, 0.4  # a limb region's share of the garment's pixels
MIN_LIMB_LENGTH = 0.05  # of the garment height
FAR_END = 0.85  # a limb's far end: its pixels at least this share of the farthest distance from the seam


@dataclass(frozen=True)
class Limb:
    """A sleeve or trouser leg region in working pixels: cut along seam (a -> b), hanging along direction."""

    name: str  # r_sleeve, l_sleeve, r_leg, l_leg
    side: str  # r / l (the wearer's)
    kind: str  # sleeve / leg
    region: int  # its label in Regions.labels (the torso is 0)
    seam: tuple[tuple[float, float], tuple[float, float]]
    # The whole cut, a polyline from seam[0]: the seam itself, or for a long sleeve merged with the body
    # shoulder -> (estimated) armpit -> the slit's tip.
    seam_path: tuple[tuple[float, float], ...]
    pivot: tuple[float, float]  # where it turns: the shoulder point, or the leg's top centre
    root: tuple[float, float]  # the seam's middle
    direction: tuple[float, float]  # unit vector from the root toward the region's centroid
    length: float  # farthest extent of the region along direction from the root
    width: float  # the region's extent across direction


@dataclass(frozen=True)
class Regions:
    """Which panel region each working pixel belongs to (every pixel, garment or not), and the limbs."""

    labels: np.ndarray  # int32 (H, W): 0 torso / hip panel, i for limbs[i - 1]
    limbs: tuple[Limb, ...]
    height: float  # the garment's height in working pixels: the scale of the band


@dataclass(frozen=True)
class Split:
    """A limb cut across its axis at distance t from its root into an upper and a lower panel."""

    limb: str
    t: float


def _point(landmarks: Mapping[str, tuple[float, float]], name: str) -> np.ndarray:
    return np.asarray(landmarks[name], dtype=np.float64)


Seam = tuple[str, str, str, np.ndarray, np.ndarray, np.ndarray]


def seams_for(
    garment_class: str, silhouette: str, landmarks: Mapping[str, tuple[float, float]], axis: np.ndarray
) -> list[Seam]:
    """(name, side, kind, a, b, path) per limb seam; a is the pivot end for sleeves (the shoulder); path (k, 2)
    the whole cut from a (a, b; or a, b, the slit's tip for a sleeve merged with the body)."""
    seams: list[Seam] = []
    if garment_class in ("upper_body", "full_body") and silhouette.startswith("sleeved"):
        for side in "rl":
            a, b = _point(landmarks, f"{side}_shoulder"), _point(landmarks, f"{side}_armpit")
            path = [a, b] + ([_point(landmarks, f"{side}_slit")] if f"{side}_slit" in landmarks else [])
            seams.append((f"{side}_sleeve", side, "sleeve", a, b, np.array(path)))
    elif garment_class == "lower_body" and silhouette == "legs":
        crotch = _point(landmarks, "crotch")
        across = np.array([axis[1], -axis[0]])  # image left when the axis points down (wearer's right)
        for side, sign in (("r", 1.0), ("l", -1.0)):
            waist, hem = _point(landmarks, f"{side}_waist"), _point(landmarks, f"{side}_hem")
            # Where the line through the crotch, across the garment, meets the outer side line waist -> hem.
            direction = across * sign
            side_dir = hem - waist
            matrix = np.column_stack([direction, -side_dir])
            if abs(np.linalg.det(matrix)) < 1e-9:
                continue
            t, _ = np.linalg.solve(matrix, waist - crotch)
            outer = crotch + direction * t
            seams.append((f"{side}_leg", side, "leg", outer, crotch, np.array([outer, crotch])))
    return seams


def split_regions(
    alpha: np.ndarray,
    garment_class: str,
    silhouette: str,
    landmarks: Mapping[str, tuple[float, float]],
    axis: tuple[float, float],
) -> tuple[Regions | None, str]:
    """The panel regions of a working-size garment mask, or None and why the garment cannot be split."""
    garment = alpha >= 128
    total = int(np.count_nonzero(garment))
    rows = np.flatnonzero(garment.any(axis=1))
    height = float(rows[-1] - rows[0] + 1) if len(rows) else 0.0
    if total == 0:
        return None, "the garment mask is empty at working size"
    axis_dir = np.asarray(axis, dtype=np.float64)
    seams = seams_for(garment_class, silhouette, landmarks, axis_dir)
    # 1. Cut the mask along every seam (extended past its ends, so the cut closes) and find the regions.
    cut = garment.astype(np.uint8)
    reach = max(3.0, 0.04 * height)
    for *_, path in seams:
        first = (path[1] - path[0]) / max(float(np.linalg.norm(path[1] - path[0])), 1e-9)
        last = (path[-1] - path[-2]) / max(float(np.linalg.norm(path[-1] - path[-2])), 1e-9)
        cut_line = np.vstack([path[0] - first * reach, path[1:-1], path[-1] + last * reach])
        cv2.polylines(cut, [np.round(cut_line).astype(np.int32)], False, 0, BARRIER_PX)
    count, components = cv2.connectedComponents(cut, connectivity=4)
    centre = _torso_seed(garment, landmarks, garment_class)
    torso_label = components[centre[1], centre[0]] if centre is not None else 0
    if torso_label == 0:
        return None, "no torso region found between the landmarks"
    labels = np.zeros(alpha.shape, dtype=np.int32)
    limbs: list[Limb] = []
    owner = np.zeros(count, dtype=np.int32)  # component -> panel label (0 torso)
    for name, side, kind, a, b, path in seams:
        component = _limb_component(
            components, garment, a, b, torso_label, axis_dir, np.asarray(centre, float), kind, height
        )
        if component is None:
            return None, f"the {name.replace('_', ' ')} is not separated from the torso at its seam"
        share = float(np.count_nonzero(components == component)) / total
        if not MIN_LIMB_SHARE <= share <= MAX_LIMB_SHARE:
            return None, f"the {name.replace('_', ' ')} holds {share:.0%} of the garment: not a {kind}"
        owner[component] = len(limbs) + 1
        cuff = landmarks.get(f"{side}_cuff") if len(path) > 2 else None
        limbs.append(_limb(name, side, kind, len(limbs) + 1, components == component, path, cuff, axis_dir))
    # 2. Every pixel (cut lines and background included) takes the label of its nearest labelled pixel.
    seeded = cut > 0
    labels_seeded = owner[components]
    _, nearest = cv2.distanceTransformWithLabels(
        (~seeded).astype(np.uint8), cv2.DIST_L2, 3, labelType=cv2.DIST_LABEL_PIXEL
    )
    seed_rows, seed_cols = np.nonzero(seeded)
    lookup = np.zeros(len(seed_rows) + 1, dtype=np.int32)
    lookup[1:] = labels_seeded[seed_rows, seed_cols]
    labels = lookup[nearest]
    for limb in limbs:
        if limb.length < MIN_LIMB_LENGTH * height:
            return None, f"the {limb.name.replace('_', ' ')} is too short to follow a limb"
    return Regions(labels=labels, limbs=tuple(limbs), height=height), ""


def _int(point: np.ndarray) -> tuple[int, int]:
    return (round(float(point[0])), round(float(point[1])))


def _torso_seed(
    garment: np.ndarray, landmarks: Mapping[str, tuple[float, float]], garment_class: str
) -> tuple[int, int] | None:
    """A garment pixel surely in the torso (hip panel): along the centre between the top and hem landmarks."""
    if garment_class == "lower_body":
        top = (_point(landmarks, "r_waist") + _point(landmarks, "l_waist")) / 2.0
        bottom = (
            _point(landmarks, "crotch")
            if "crotch" in landmarks
            else (_point(landmarks, "r_hem") + _point(landmarks, "l_hem")) / 2.0
        )
    else:
        top = (_point(landmarks, "r_shoulder") + _point(landmarks, "l_shoulder")) / 2.0
        bottom = (_point(landmarks, "r_hem") + _point(landmarks, "l_hem")) / 2.0
    height, width = garment.shape
    for t in (0.5, 0.4, 0.6, 0.3, 0.7, 0.2, 0.8):
        x, y = _int(top + (bottom - top) * t)
        if 0 <= x < width and 0 <= y < height and garment[y, x]:
            return x, y
    return None


def _limb_component(
    components: np.ndarray,
    garment: np.ndarray,
    a: np.ndarray,
    b: np.ndarray,
    torso_label: int,
    axis: np.ndarray,
    origin: np.ndarray,
    kind: str,
    height: float,
) -> int | None:
    """The component just beyond the seam's middle on the limb's side (outward for sleeves, down for legs)."""
    middle = (a + b) / 2.0
    seam = (b - a) / max(float(np.linalg.norm(b - a)), 1e-9)
    normal = np.array([-seam[1], seam[0]])
    # Outward (away from the axis through the garment) for a sleeve; down the garment for a leg.
    offset = middle - origin
    reference = axis if kind == "leg" else offset - axis * float(offset @ axis)
    if normal @ reference < 0:
        normal = -normal
    rows, cols = components.shape
    for step in np.linspace(BARRIER_PX, 0.25 * height, 24):
        x, y = _int(middle + normal * step)
        if not (0 <= x < cols and 0 <= y < rows) or not garment[y, x]:
            continue
        label = int(components[y, x])
        if label not in (0, torso_label):
            return label
        if label == torso_label:
            return None
    return None


def _limb(
    name: str,
    side: str,
    kind: str,
    label: int,
    region: np.ndarray,
    path: np.ndarray,
    cuff: tuple[float, float] | None = None,
    axis: np.ndarray | None = None,
) -> Limb:
    """The limb's geometry from its region's pixels.

    cuff (and the garment's down axis): its far end's landmark, for a sleeve cut along a polyline. It hangs
    beside its long seam, which runs down its inner edge: the pixels farthest from the seam are its outer edge,
    not its cuff, and the seam's middle is its inner edge. Its root is the middle of its width at the armpit.
    """
    a, b = path[0], path[1]
    ys, xs = np.nonzero(region)
    points = np.column_stack([xs, ys]).astype(np.float64)
    root = (a + b) / 2.0
    direction = _cuff_direction(points, a, b)
    if cuff is not None and axis is not None:
        level = points[np.abs((points - b) @ axis) <= 2.0]
        if len(level):
            root = (b + level[np.argmax(np.abs((level - b) @ np.array([axis[1], -axis[0]])))]) / 2.0
        direction = np.asarray(cuff, dtype=np.float64) - root
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
    if direction is None:  # no usable outline: toward the region's centroid
        direction = points.mean(axis=0) - root
        direction /= max(float(np.linalg.norm(direction)), 1e-9)
    along = (points - root) @ direction
    across = (points - root) @ np.array([-direction[1], direction[0]])
    # A sleeve turns about its shoulder point (about its seam's middle its cap would stick out like a wing
    # when it turns down); a merged sleeve about its seam's middle: turned about the shoulder point its
    # underarm, merely lying along the body, would swing off it from the top.
    pivot = (a if cuff is None else (a + b) / 2.0) if kind == "sleeve" else root
    return Limb(
        name=name,
        side=side,
        kind=kind,
        region=label,
        seam=((float(a[0]), float(a[1])), (float(b[0]), float(b[1]))),
        seam_path=tuple((float(px), float(py)) for px, py in path),
        pivot=(float(pivot[0]), float(pivot[1])),
        root=(float(root[0]), float(root[1])),
        direction=(float(direction[0]), float(direction[1])),
        length=float(along.max()),
        width=float(np.ptp(across)),
    )


def _cuff_direction(points: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray | None:
    """The limb's axis: from its seam's middle to the middle of its far end (the cuff, the hem).

    The far end is the region's pixels farthest from the seam line; a ghost-mannequin sleeve is a wedge whose
    centroid lies well off this axis.
    """
    seam = b - a
    normal = np.array([-seam[1], seam[0]]) / max(float(np.linalg.norm(seam)), 1e-9)
    distance = np.abs((points - a) @ normal)
    far = points[distance >= FAR_END * distance.max()]
    direction = far.mean(axis=0) - (a + b) / 2.0
    norm = float(np.linalg.norm(direction))
    return direction / norm if norm > 1e-6 else None


def panel_names(regions: Regions, splits: Sequence[Split]) -> list[str]:
    """Panel names in weight-channel order: the torso, each limb, then each split limb's lower part."""
    torso = "hips" if any(limb.kind == "leg" for limb in regions.limbs) else "torso"
    return [torso] + [limb.name for limb in regions.limbs] + [f"{split.limb}_lower" for split in splits]


def blend_weights(regions: Regions, splits: Sequence[Split], band: float = BAND) -> np.ndarray:
    """float32 (K, H, W) partition of unity over panel_names(regions, splits), smooth across each seam."""
    labels = regions.labels
    height, width = labels.shape
    names = panel_names(regions, splits)
    weights = np.zeros((len(names), height, width), dtype=np.float32)
    band_px = max(2.0, band * regions.height)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    limb_total = np.zeros((height, width), dtype=np.float32)
    split_of = {split.limb: split for split in splits}
    for index, limb in enumerate(regions.limbs, start=1):
        inside = labels == limb.region
        x, y, w, h = cv2.boundingRect(inside.astype(np.uint8))
        box = (slice(y, y + h), slice(x, x + w))  # the ramp is 0 outside the limb's own region
        # Blended across the seam only: a merged sleeve's cut on from its armpit to the slit's tip parts two
        # pieces of cloth that merely lie side by side (blending there would drag the body after the arm).
        (ax, ay), (bx, by) = limb.seam
        distance = _segment_distance(xs[box], ys[box], np.array([ax, ay]), np.array([bx, by]))
        ramp = _smoothstep(distance / band_px) * inside[box]
        weights[index][box] = ramp
        limb_total[box] += ramp
        split = split_of.get(limb.name)
        if split is not None:
            along = (xs[box] - limb.root[0]) * limb.direction[0] + (ys[box] - limb.root[1]) * limb.direction[
                1
            ]
            lower = _smoothstep((along - split.t) / (2.0 * band_px) + 0.5)
            channel = names.index(f"{limb.name}_lower")
            weights[channel][box] = ramp * lower
            weights[index][box] = ramp * (1.0 - lower)
    weights[0] = 1.0 - limb_total
    return weights


def _segment_distance(xs: np.ndarray, ys: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Euclidean distance of every pixel to the segment a-b."""
    ab = b - a
    length2 = max(float(ab @ ab), 1e-9)
    t = np.clip(((xs - a[0]) * ab[0] + (ys - a[1]) * ab[1]) / length2, 0.0, 1.0)
    return np.hypot(xs - (a[0] + t * ab[0]), ys - (a[1] + t * ab[1]))


def _smoothstep(t: np.ndarray) -> np.ndarray:
    """0 below 0, 1 above 1, C1-smooth between."""
    t = np.clip(t, 0.0, 1.0)
    return (t * t * (3.0 - 2.0 * t)).astype(np.float32)


def angle_of(vector: Sequence[float]) -> float:
    """atan2(dy, dx) of a 2-vector."""
    return math.atan2(float(vector[1]), float(vector[0]))
