"""Synthetic flat-lay packshots with exact ground-truth garment masks, for tests, benchmarks and demos."""

from __future__ import annotations

import colorsys
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import numpy as np

GARMENT_KINDS = ("tee", "shirt", "tank", "dress", "trousers", "skirt")
# Kinds drawn only when asked for (sample_specs keeps drawing GARMENT_KINDS, so sampled sets stay the same).
EXTRA_KINDS = ("vest", "cardigan", "halter", "one_shoulder")
ALL_KINDS = GARMENT_KINDS + EXTRA_KINDS
# Where each kind sits on the body (the garment class placement and landmarks take).
GARMENT_CLASS_OF_KIND = {
    "tee": "upper_body",
    "shirt": "upper_body",
    "tank": "upper_body",
    "vest": "upper_body",
    "cardigan": "upper_body",
    "dress": "full_body",
    "halter": "full_body",
    "one_shoulder": "full_body",
    "trousers": "lower_body",
    "skirt": "lower_body",
}
PATTERNS = ("solid", "stripes", "print", "logo")
BACKGROUNDS = ("white", "off_white", "light_grey", "gradient", "dark")
GROUPS = (
    "plain",
    "white_on_white",
    "pale_on_pale",
    "black_on_dark",
    "thin_straps",
    "striped",
    "printed_logo",
    "gradient_bg",
    "shadow_vignette",
    "jpeg_rotated",
)
DEFAULT_SIZES = (512, 640, 768, 1024, 1280, 1536, 2048)
MIN_CONTRAST = 4.0  # delta-E between a garment's base colour and its background in sampled specs
_NOISE_TILE = 256  # sensor noise is tiled from one small tile: generating full-size noise costs ~25 ms

# Garment outlines in a unit box (x right, y down); width/height is the box aspect used when placing.
_OUTLINES: dict[str, tuple[float, list[tuple[float, float]]]] = {
    "tee": (
        1.0,
        [
            (0.38, 0.04),
            (0.20, 0.09),
            (0.02, 0.30),
            (0.14, 0.40),
            (0.25, 0.31),
            (0.25, 0.98),
            (0.75, 0.98),
            (0.75, 0.31),
            (0.86, 0.40),
            (0.98, 0.30),
            (0.80, 0.09),
            (0.62, 0.04),
            (0.56, 0.10),
            (0.50, 0.12),
            (0.44, 0.10),
        ],
    ),
    "shirt": (
        0.95,
        [
            (0.38, 0.05),
            (0.20, 0.09),
            (0.08, 0.40),
            (0.02, 0.95),
            (0.12, 0.96),
            (0.22, 0.45),
            (0.25, 0.98),
            (0.75, 0.98),
            (0.78, 0.45),
            (0.88, 0.96),
            (0.98, 0.95),
            (0.92, 0.40),
            (0.80, 0.09),
            (0.62, 0.05),
            (0.50, 0.14),
        ],
    ),
    "tank": (
        0.72,
        [
            (0.22, 0.22),
            (0.30, 0.36),
            (0.40, 0.40),
            (0.60, 0.40),
            (0.70, 0.36),
            (0.78, 0.22),
            (0.86, 0.42),
            (0.90, 0.98),
            (0.10, 0.98),
            (0.14, 0.42),
        ],
    ),
    # A sweater vest: wide shoulder seams, shallow armholes, the body as wide as the armholes' lower ends.
    "vest": (
        0.76,
        [
            (0.34, 0.02),
            (0.07, 0.06),
            (0.07, 0.24),
            (0.03, 0.46),
            (0.07, 0.98),
            (0.93, 0.98),
            (0.97, 0.46),
            (0.93, 0.24),
            (0.93, 0.06),
            (0.66, 0.02),
            (0.50, 0.30),
        ],
    ),
    # A cardigan laid with its long sleeves hanging beside the body, merged with it from the (hidden) armpit
    # down to a slit by the hem; the cuffs hang lower than the hem.
    "cardigan": (
        0.85,
        [
            (0.38, 0.03),
            (0.17, 0.08),
            (0.06, 0.30),
            (0.03, 0.97),
            (0.15, 0.97),
            (0.19, 0.80),
            (0.21, 0.86),
            (0.79, 0.86),
            (0.81, 0.80),
            (0.85, 0.97),
            (0.97, 0.97),
            (0.94, 0.30),
            (0.83, 0.08),
            (0.62, 0.03),
            (0.50, 0.32),
        ],
    ),
    # A halter dress: its straps rise from the bodice's top by the neckline (drawn always, see _STRAPS).
    "halter": (
        0.62,
        [
            (0.36, 0.20),
            (0.50, 0.25),
            (0.64, 0.20),
            (0.80, 0.36),
            (0.72, 0.50),
            (0.98, 0.98),
            (0.02, 0.98),
            (0.28, 0.50),
            (0.20, 0.36),
        ],
    ),
    # A one-shoulder dress: a strap over the wearer's right shoulder, a draped band over the left, an
    # off-centre neckline and a slanted hem (no mirror axis).
    "one_shoulder": (
        0.62,
        [
            (0.20, 0.02),
            (0.26, 0.02),
            (0.40, 0.30),
            (0.64, 0.03),
            (0.84, 0.05),
            (0.92, 0.16),
            (0.76, 0.48),
            (0.98, 0.98),
            (0.02, 0.93),
            (0.24, 0.50),
            (0.14, 0.32),
        ],
    ),
    "dress": (
        0.62,
        [
            (0.24, 0.16),
            (0.34, 0.24),
            (0.50, 0.27),
            (0.66, 0.24),
            (0.76, 0.16),
            (0.80, 0.30),
            (0.72, 0.45),
            (0.98, 0.98),
            (0.02, 0.98),
            (0.28, 0.45),
            (0.20, 0.30),
        ],
    ),
    "trousers": (
        0.62,
        [
            (0.12, 0.02),
            (0.88, 0.02),
            (0.94, 0.40),
            (0.98, 0.98),
            (0.60, 0.98),
            (0.52, 0.36),
            (0.48, 0.36),
            (0.40, 0.98),
            (0.02, 0.98),
            (0.06, 0.40),
        ],
    ),
    "skirt": (
        1.05,
        [
            (0.26, 0.04),
            (0.74, 0.04),
            (0.80, 0.30),
            (0.98, 0.96),
            (0.75, 0.99),
            (0.50, 1.00),
            (0.25, 0.99),
            (0.02, 0.96),
            (0.20, 0.30),
        ],
    ),
}
_STRAPS: dict[str, list[tuple[tuple[float, float], tuple[float, float]]]] = {
    "tank": [((0.30, 0.36), (0.30, 0.02)), ((0.70, 0.36), (0.70, 0.02))],
    "dress": [((0.30, 0.20), (0.32, 0.00)), ((0.70, 0.20), (0.68, 0.00))],
    "halter": [((0.38, 0.22), (0.44, 0.01)), ((0.62, 0.22), (0.56, 0.01))],
}
_ALWAYS_STRAPPED = frozenset(
    {"halter"}
)  # kinds whose straps are what they are: drawn whatever spec.straps says
# Landmarks the outline does not show, in the unit box: a merged sleeve's armpit, where its inner edge leaves
# the body's side (the polygon runs round sleeve and body together above the slit).
_HIDDEN: dict[str, np.ndarray] = {"cardigan": np.array([(0.19, 0.32), (0.81, 0.32)])}
_SHIRT_COLLAR = np.array([(0.36, 0.03), (0.50, 0.10), (0.64, 0.03), (0.60, 0.15), (0.50, 0.20), (0.40, 0.15)])
# Landmark name -> the (source, index) points it is the mean of: "o" a vertex of the jittered _OUTLINES entry,
# "c" of _SHIRT_COLLAR, "s" a strap's top end. Image-left vertices are the wearer's right (r_).
_Recipe = tuple[tuple[str, int], ...]
_LANDMARK_RECIPES: dict[str, dict[str, _Recipe]] = {
    "tee": {
        "neck": (("o", 13),),
        "r_shoulder": (("o", 1),),
        "l_shoulder": (("o", 10),),
        "r_armpit": (("o", 4),),
        "l_armpit": (("o", 7),),
        "r_cuff": (("o", 2), ("o", 3)),
        "l_cuff": (("o", 8), ("o", 9)),
        "r_hem": (("o", 5),),
        "l_hem": (("o", 6),),
    },
    "shirt": {
        "neck": (("c", 1),),  # the collar's V covers the body's neckline
        "r_shoulder": (("o", 1),),
        "l_shoulder": (("o", 12),),
        "r_armpit": (("o", 5),),
        "l_armpit": (("o", 8),),
        "r_cuff": (("o", 3), ("o", 4)),
        "l_cuff": (("o", 9), ("o", 10)),
        "r_hem": (("o", 6),),
        "l_hem": (("o", 7),),
    },
    "tank": {
        "neck": (("o", 2), ("o", 3)),
        "r_shoulder": (("o", 0),),
        "l_shoulder": (("o", 5),),
        "r_armpit": (("o", 9),),
        "l_armpit": (("o", 6),),
        "r_hem": (("o", 8),),
        "l_hem": (("o", 7),),
    },
    "vest": {
        "neck": (("o", 10),),
        "r_shoulder": (("o", 1),),
        "l_shoulder": (("o", 8),),
        "r_armpit": (("o", 3),),
        "l_armpit": (("o", 6),),
        "r_hem": (("o", 4),),
        "l_hem": (("o", 5),),
    },
    "cardigan": {
        "neck": (("o", 14),),
        "r_shoulder": (("o", 1),),
        "l_shoulder": (("o", 12),),
        "r_armpit": (("h", 0),),
        "l_armpit": (("h", 1),),
        "r_slit": (("o", 5),),
        "l_slit": (("o", 8),),
        "r_cuff": (("o", 3), ("o", 4)),
        "l_cuff": (("o", 9), ("o", 10)),
        "r_hem": (("o", 6),),
        "l_hem": (("o", 7),),
    },
    "halter": {
        "neck": (("o", 1),),
        "r_shoulder": (("s", 0),),
        "l_shoulder": (("s", 1),),
        "r_armpit": (("o", 8),),
        "l_armpit": (("o", 3),),
        "r_waist": (("o", 7),),
        "l_waist": (("o", 4),),
        "r_hem": (("o", 6),),
        "l_hem": (("o", 5),),
    },
    "one_shoulder": {
        "neck": (("o", 2),),
        "r_shoulder": (("o", 0), ("o", 1)),  # the strap's top end
        "l_shoulder": (("o", 4),),
        "r_armpit": (("o", 10),),
        "l_armpit": (("o", 5),),
        "r_waist": (("o", 9),),
        "l_waist": (("o", 6),),
        "r_hem": (("o", 8),),
        "l_hem": (("o", 7),),
    },
    "dress": {
        "neck": (("o", 2),),
        "r_shoulder": (("o", 0),),
        "l_shoulder": (("o", 4),),
        "r_armpit": (("o", 10),),
        "l_armpit": (("o", 5),),
        "r_waist": (("o", 9),),
        "l_waist": (("o", 6),),
        "r_hem": (("o", 8),),
        "l_hem": (("o", 7),),
    },
    "trousers": {
        "r_waist": (("o", 0),),
        "l_waist": (("o", 1),),
        "crotch": (("o", 5), ("o", 6)),
        "r_hem": (("o", 8),),
        "l_hem": (("o", 3),),
        "r_hem_inner": (("o", 7),),
        "l_hem_inner": (("o", 4),),
    },
    "skirt": {
        "r_waist": (("o", 0),),
        "l_waist": (("o", 1),),
        "r_hem": (("o", 7),),
        "l_hem": (("o", 3),),
    },
}
_STRAP_SHOULDERS = {"r_shoulder": 0, "l_shoulder": 1}  # _STRAPS lists the image-left strap first


@dataclass(frozen=True)
class FlatlaySpec:
    """Everything that defines one synthetic packshot; make_flatlay(spec) is deterministic."""

    group: str
    kind: str = "tee"
    width: int = 768
    height: int = 1024
    garment_rgb: tuple[int, int, int] = (40, 90, 200)
    pattern: str = "solid"
    pattern_rgb: tuple[int, int, int] = (245, 245, 245)
    background: str = "white"
    background_rgb: tuple[int, int, int] = (252, 252, 252)
    background_rgb2: tuple[int, int, int] = (252, 252, 252)  # far end of a gradient background
    straps: bool = False
    strap_px: int = 6
    shadow: float = 0.0  # drop-shadow darkening at its core, 0..1
    vignette: float = 0.0  # corner darkening, 0..1
    jpeg_quality: int = 0  # 0 = no JPEG round trip
    noise_sigma: float = 1.0
    rotation_deg: float = 0.0
    offset: tuple[float, float] = (0.0, 0.0)  # garment centre shift as a fraction of the canvas
    fill: float = 0.75  # garment box height (or width) as a fraction of the canvas
    seed: int = 0


def check_inputs(spec: FlatlaySpec) -> None:
    """Raise a ValueError that names the field to fix."""
    if spec.kind not in _OUTLINES:
        raise ValueError(f"kind {spec.kind!r} is not one of {ALL_KINDS}.")
    if spec.pattern not in PATTERNS:
        raise ValueError(f"pattern {spec.pattern!r} is not one of {PATTERNS}.")
    if spec.background not in BACKGROUNDS:
        raise ValueError(f"background {spec.background!r} is not one of {BACKGROUNDS}.")
    if not (32 <= spec.width <= 8192 and 32 <= spec.height <= 8192):
        raise ValueError(f"width and height must be 32..8192 px; got {spec.width}x{spec.height}.")
    if not 0.1 <= spec.fill <= 0.98:
        raise ValueError(f"fill must be 0.1..0.98 of the canvas; got {spec.fill}.")
    if spec.jpeg_quality and not 10 <= spec.jpeg_quality <= 100:
        raise ValueError(f"jpeg_quality must be 0 (none) or 10..100; got {spec.jpeg_quality}.")


def _garment_frame(
    spec: FlatlaySpec, rng: np.random.Generator
) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """The jittered unit outline and the map from unit-box points to image pixels (scale, rotation, offset).

    The one source of truth for where a garment lies: the drawn polygons and the ground-truth landmarks both
    come from here. The jitter is the first draw from rng: callers pass a fresh default_rng(spec.seed).
    """
    aspect, outline = _OUTLINES[spec.kind]
    points = np.asarray(outline, dtype=np.float64) + rng.normal(0.0, 0.008, (len(outline), 2))
    box_h = spec.fill * min(spec.height, spec.width / aspect)
    box_w = box_h * aspect
    centre = np.array([spec.width * (0.5 + spec.offset[0]), spec.height * (0.5 + spec.offset[1])])
    angle = np.deg2rad(spec.rotation_deg)
    rotation = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])

    def to_pixels(unit: np.ndarray) -> np.ndarray:
        local = (unit - 0.5) * np.array([box_w, box_h])
        return local @ rotation.T + centre

    return points, to_pixels


def _garment_geometry(spec: FlatlaySpec, rng: np.random.Generator) -> tuple[list[np.ndarray], list[tuple]]:
    """Pixel polygons and strap segments (start, end, thickness) after jitter, scale, rotation and offset."""
    points, to_pixels = _garment_frame(spec, rng)
    polygons = [to_pixels(points)]
    if spec.kind == "shirt":  # a pointed collar that overlaps the neckline
        polygons.append(to_pixels(_SHIRT_COLLAR))
    straps = []
    if (spec.straps or spec.kind in _ALWAYS_STRAPPED) and spec.kind in _STRAPS:
        for start, end in _STRAPS[spec.kind]:
            a, b = to_pixels(np.array([start, end]))
            straps.append((a, b, spec.strap_px))
    return polygons, straps


def flatlay_landmarks(spec: FlatlaySpec) -> dict[str, tuple[float, float]]:
    """Ground-truth landmarks of make_flatlay(spec)'s garment in image pixels (x, y), by landmark name.

    Names follow pipelines.landmarks: r_/l_ is the wearer's right/left, so r_ lies on the image left of a
    front-view packshot (as OpenPose's r_shoulder does). With straps drawn, a shoulder is its strap's top end.
    A sleeve's axis runs from the middle of its shoulder and armpit to its cuff.
    """
    check_inputs(spec)
    points, to_pixels = _garment_frame(spec, np.random.default_rng(spec.seed))
    sources = {"o": points, "c": _SHIRT_COLLAR, "h": _HIDDEN.get(spec.kind, np.zeros((0, 2)))}
    if (spec.straps or spec.kind in _ALWAYS_STRAPPED) and spec.kind in _STRAPS:
        sources["s"] = np.array([end for _, end in _STRAPS[spec.kind]])
    unit: dict[str, np.ndarray] = {}
    for name, recipe in _LANDMARK_RECIPES[spec.kind].items():
        if "s" in sources and name in _STRAP_SHOULDERS:  # the strap's top end, not the bodice's tip
            recipe = (("s", _STRAP_SHOULDERS[name]),)
        unit[name] = np.mean([sources[source][index] for source, index in recipe], axis=0)
    pixels = to_pixels(np.array(list(unit.values())))
    return {name: (float(x), float(y)) for name, (x, y) in zip(unit, pixels, strict=True)}


def _draw_mask(shape: tuple[int, int], polygons: list[np.ndarray], straps: list[tuple]) -> np.ndarray:
    """Exact binary mask (0/255) of what is drawn; sub-pixel vertex precision via cv2 shift bits."""
    mask = np.zeros(shape, dtype=np.uint8)
    scale = 16  # 4 fractional bits
    cv2.fillPoly(mask, [np.round(p * scale).astype(np.int32) for p in polygons], 255, cv2.LINE_8, shift=4)
    for a, b, thickness in straps:
        pa = tuple(int(v) for v in np.round(a * scale))
        pb = tuple(int(v) for v in np.round(b * scale))
        cv2.line(mask, pa, pb, 255, int(thickness), cv2.LINE_8, shift=4)
    return mask


def _smooth_field(rng: np.random.Generator, shape: tuple[int, int], cells: int) -> np.ndarray:
    """A smooth random field in [-1, 1] (fabric folds), made tiny and upsampled: costs almost nothing."""
    small = rng.uniform(-1.0, 1.0, (cells, cells)).astype(np.float32)
    return cv2.resize(small, (shape[1], shape[0]), interpolation=cv2.INTER_CUBIC)


def _background(spec: FlatlaySpec, shape: tuple[int, int]) -> np.ndarray:
    """Float32 RGB background: flat colour, or a vertical gradient between the two colours."""
    h, w = shape
    top = np.asarray(spec.background_rgb, dtype=np.float32)
    if spec.background != "gradient":
        return np.broadcast_to(top, (h, w, 3)).astype(np.float32)
    bottom = np.asarray(spec.background_rgb2, dtype=np.float32)
    t = np.linspace(0.0, 1.0, h, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top + (bottom - top) * t, (h, w, 3)).astype(np.float32)


def _garment_texture(spec: FlatlaySpec, rng: np.random.Generator, mask: np.ndarray) -> np.ndarray:
    """Float32 RGB garment surface: base colour, pattern, fold shading."""
    h, w = mask.shape
    accent = np.asarray(spec.pattern_rgb, dtype=np.uint8)
    texture = np.empty((h, w, 3), dtype=np.uint8)  # uint8: cv2 text drawing needs it
    texture[:] = np.asarray(spec.garment_rgb, dtype=np.uint8)
    size = min(h, w)
    if spec.pattern == "stripes":
        period = max(6, int(size * rng.uniform(0.025, 0.06)))
        rows = (np.arange(h) // (period // 2)) % 2 == 1
        texture[rows] = accent
    elif spec.pattern in ("print", "logo"):
        ys, xs = np.nonzero(mask[:: max(1, h // 64), :: max(1, w // 64)])
        ys, xs = ys * max(1, h // 64), xs * max(1, w // 64)
        if spec.pattern == "print":
            for _ in range(int(rng.integers(12, 30))):
                k = int(rng.integers(len(xs)))
                colour = accent if rng.random() < 0.5 else rng.integers(0, 256, 3)
                radius = int(size * rng.uniform(0.01, 0.05))
                cv2.circle(
                    texture, (int(xs[k]), int(ys[k])), max(2, radius), colour.tolist(), -1, cv2.LINE_AA
                )
        else:
            cx, cy = int(np.median(xs)), int(np.percentile(ys, 35))
            scale = size / 500.0
            for line, text in enumerate(("ONMODEL", "SKI CLUB 95")):
                org = (int(cx - 110 * scale), int(cy + line * 40 * scale))
                cv2.putText(
                    texture,
                    text,
                    org,
                    cv2.FONT_HERSHEY_DUPLEX,
                    scale,
                    accent.tolist(),
                    max(1, int(2 * scale)),
                    cv2.LINE_AA,
                )
    shading = 1.0 - 0.02 * (1.0 + _smooth_field(rng, (h, w), 6))  # folds only darken: 0.96..1.0
    return texture.astype(np.float32) * shading[..., None]


def _noise_tile(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian sensor noise (float32), tiled from one small tile for speed."""
    tile = rng.normal(0.0, sigma, (_NOISE_TILE, _NOISE_TILE, 3)).astype(np.float32)
    reps = (shape[0] // _NOISE_TILE + 1, shape[1] // _NOISE_TILE + 1, 1)
    return np.tile(tile, reps)[: shape[0], : shape[1]]


def make_flatlay(spec: FlatlaySpec) -> tuple[np.ndarray, np.ndarray]:
    """Render one packshot: uint8 RGB (H, W, 3) and its exact garment mask uint8 (H, W) 0/255."""
    check_inputs(spec)
    rng = np.random.default_rng(spec.seed)
    shape = (spec.height, spec.width)
    # 1. Geometry and the ground-truth mask, drawn once, hard.
    polygons, straps = _garment_geometry(spec, rng)
    mask = _draw_mask(shape, polygons, straps)
    # 2. Background with a soft drop shadow (blurred at quarter size, offset down-right) and vignetting.
    image = _background(spec, shape)
    light = np.ones(shape, dtype=np.float32)
    if spec.shadow > 0:
        small = cv2.resize(
            mask, (max(1, spec.width // 4), max(1, spec.height // 4)), interpolation=cv2.INTER_AREA
        )
        blur = max(3, int(min(small.shape) * 0.03)) | 1
        small = cv2.GaussianBlur(small.astype(np.float32) / 255.0, (0, 0), blur)
        shift = np.array([[1, 0, small.shape[1] * 0.012], [0, 1, small.shape[0] * 0.018]], np.float32)
        small = cv2.warpAffine(small, shift, (small.shape[1], small.shape[0]))
        light -= spec.shadow * cv2.resize(small, (spec.width, spec.height), interpolation=cv2.INTER_LINEAR)
    if spec.vignette > 0:
        yy = np.linspace(-1.0, 1.0, spec.height, dtype=np.float32)[:, None]
        xx = np.linspace(-1.0, 1.0, spec.width, dtype=np.float32)[None, :]
        light *= 1.0 - spec.vignette * (xx * xx + yy * yy) / 2.0
    image *= light[..., None]
    # 3. The garment, edges anti-aliased like a lens would (the truth stays the hard drawn mask).
    garment = _garment_texture(spec, rng, mask) * light[..., None] ** 0.5
    alpha = cv2.GaussianBlur(mask.astype(np.float32) / 255.0, (3, 3), 0.6)[..., None]
    image = garment * alpha + image * (1.0 - alpha)
    # 4. Sensor noise, then an optional JPEG round trip.
    if spec.noise_sigma > 0:
        image += _noise_tile(rng, shape, spec.noise_sigma)
    rgb = np.clip(image + 0.5, 0, 255).astype(np.uint8)
    if spec.jpeg_quality:
        ok, encoded = cv2.imencode(".jpg", rgb[..., ::-1], [cv2.IMWRITE_JPEG_QUALITY, spec.jpeg_quality])
        decoded = cv2.imdecode(encoded, cv2.IMREAD_COLOR)
        if not ok or decoded is None:  # pragma: no cover - OpenCV fails only on invalid arrays
            raise ValueError(
                f"JPEG round trip of the synthetic flat-lay failed (quality {spec.jpeg_quality})."
            )
        rgb = np.ascontiguousarray(decoded[..., ::-1])
    return rgb, mask


def _delta_e(a: tuple[int, int, int], b: tuple[int, int, int]) -> float:
    """CIELAB distance between two RGB colours."""
    pair = np.array([[a, b]], dtype=np.float32) / 255.0
    lab = cv2.cvtColor(pair, cv2.COLOR_RGB2Lab)[0]
    return float(np.linalg.norm(lab[0] - lab[1]))


def _hsv_rgb(h: float, s: float, v: float) -> tuple[int, int, int]:
    """HSV (0..1) to an RGB uint8 triple."""
    r, g, b = colorsys.hsv_to_rgb(h, s, v)
    return int(r * 255), int(g * 255), int(b * 255)


def _grey(rng: np.random.Generator, low: int, high: int, tint: float = 2.0) -> tuple[int, int, int]:
    """A near-neutral colour with a slight random tint."""
    value = rng.uniform(low, high)
    return tuple(int(np.clip(value + rng.normal(0, tint), 0, 255)) for _ in range(3))  # type: ignore[return-value]


def _colour(rng: np.random.Generator, name: str) -> tuple[int, int, int]:
    """A garment or background colour by family name."""
    if name == "white":
        return _grey(rng, 236, 246, 1.5)
    if name == "cream":
        v = rng.uniform(232, 246)
        return int(v), int(v - rng.uniform(4, 10)), int(v - rng.uniform(16, 30))
    if name == "light_grey":
        return _grey(rng, 185, 215)
    if name == "black":
        return _grey(rng, 10, 28, 1.0)
    if name == "bg_white":
        return _grey(rng, 250, 255, 0.5)
    if name == "bg_off_white":
        v = rng.uniform(240, 248)
        return int(v), int(v - rng.uniform(1, 4)), int(v - rng.uniform(5, 12))
    if name == "bg_light_grey":
        return _grey(rng, 218, 232, 0.8)
    if name == "bg_dark":
        return _grey(rng, 48, 70, 1.0)
    # saturated / mid tones
    return _hsv_rgb(rng.random(), rng.uniform(0.55, 1.0), rng.uniform(0.35, 0.92))


def _spec_for_group(group: str, index: int, rng: np.random.Generator, sizes: tuple[int, ...]) -> FlatlaySpec:
    """Draw one spec of a hard-case group with mild random nuisances everywhere."""
    long_side = int(rng.choice(sizes))
    portrait = rng.random() < 0.6
    width, height = (int(long_side * 0.75), long_side) if portrait else (long_side, long_side)
    kind = str(rng.choice(GARMENT_KINDS))
    background = str(rng.choice(("white", "off_white", "light_grey")))
    garment = _colour(rng, "saturated")
    pattern, accent = "solid", _colour(rng, "saturated")
    straps, shadow, vignette = kind == "tank", 0.0, 0.0
    jpeg = int(rng.integers(75, 96)) if rng.random() < 0.5 else 0
    rotation = rng.uniform(-3.0, 3.0)
    offset = (rng.uniform(-0.04, 0.04), rng.uniform(-0.03, 0.03))
    if rng.random() < 0.3:
        shadow = rng.uniform(0.04, 0.10)
    if group == "white_on_white":
        background = str(rng.choice(("white", "off_white")))
        garment = _colour(rng, str(rng.choice(("white", "cream"))))
    elif group == "pale_on_pale":
        background = str(rng.choice(("off_white", "light_grey", "white")))
        garment = _colour(rng, str(rng.choice(("light_grey", "cream"))))
    elif group == "black_on_dark":
        background = "dark"
        garment = _colour(rng, "black")
        accent = _colour(rng, "light_grey")
    elif group == "thin_straps":
        kind = str(rng.choice(("tank", "dress")))
        straps = True
        garment = _colour(rng, str(rng.choice(("saturated", "white", "black", "light_grey"))))
    elif group == "striped":
        pattern = "stripes"
        accent = _colour(rng, str(rng.choice(("white", "saturated", "black"))))
    elif group == "printed_logo":
        pattern = str(rng.choice(("print", "logo")))
        garment = _colour(rng, str(rng.choice(("saturated", "white", "black"))))
        accent = _colour(rng, str(rng.choice(("white", "saturated", "black"))))
    elif group == "gradient_bg":
        background = "gradient"
    elif group == "shadow_vignette":
        shadow, vignette = rng.uniform(0.08, 0.18), rng.uniform(0.06, 0.16)
        garment = _colour(rng, str(rng.choice(("saturated", "white", "light_grey"))))
    elif group == "jpeg_rotated":
        jpeg = int(rng.integers(40, 65))
        rotation = rng.uniform(-10.0, 10.0)
        offset = (rng.uniform(-0.08, 0.08), rng.uniform(-0.06, 0.06))
    bg1 = _colour(rng, f"bg_{background}") if background != "gradient" else _colour(rng, "bg_light_grey")
    bg2 = _colour(rng, "bg_white") if background == "gradient" else bg1
    # A packshot always shows the garment somehow: at least MIN_CONTRAST delta-E against the background.
    family = {"white_on_white": "white", "pale_on_pale": "light_grey", "black_on_dark": "black"}.get(group)
    for _ in range(50):
        if min(_delta_e(garment, bg1), _delta_e(garment, bg2)) >= MIN_CONTRAST:
            break
        garment = _colour(rng, family or "saturated")
    strap_px = max(3, int(min(width, height) * rng.uniform(0.005, 0.012)))
    fill = rng.uniform(0.62, 0.80) if group != "jpeg_rotated" else rng.uniform(0.55, 0.70)
    return FlatlaySpec(
        group=group,
        kind=kind,
        width=width,
        height=height,
        garment_rgb=garment,
        pattern=pattern,
        pattern_rgb=accent,
        background=background,
        background_rgb=bg1,
        background_rgb2=bg2,
        straps=straps,
        strap_px=strap_px,
        shadow=float(shadow),
        vignette=float(vignette),
        jpeg_quality=jpeg,
        noise_sigma=float(rng.uniform(0.6, 2.0)),
        rotation_deg=float(rotation),
        offset=(float(offset[0]), float(offset[1])),
        fill=float(fill),
        seed=int(rng.integers(2**31)) ^ index,
    )


def sample_specs(n: int, seed: int, sizes: tuple[int, ...] = DEFAULT_SIZES) -> list[FlatlaySpec]:
    """n specs cycling through every hard-case group in turn, reproducible from the seed."""
    if n < 0:
        raise ValueError(f"n must be >= 0; got {n}.")
    if not sizes or min(sizes) < 64:
        raise ValueError(f"sizes must list long sides of at least 64 px; got {sizes}.")
    rng = np.random.default_rng(seed)
    return [_spec_for_group(GROUPS[i % len(GROUPS)], i, rng, tuple(sizes)) for i in range(n)]
