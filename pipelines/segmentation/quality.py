"""Quality flags for a garment mask, shared by every backend: a bad cutout is flagged, never passed silently."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

FLAG_NAMES = (
    "touches_border",
    "multiple_components",
    "mask_too_small",
    "mask_too_large",
    "low_contrast",
    "background_not_uniform",
)
_WORK_SIDE = 256  # flags are judged on a small copy: they describe the photo, not its pixels
_FIT_SAMPLES = 4000  # points a background surface fit uses at most


@dataclass(frozen=True)
class QualityLimits:
    """Where each flag trips; the defaults suit packshots (garment centred, 20-70% of the frame)."""

    border_touch_fraction: float = 0.01  # of the frame's perimeter covered by the garment
    large_component_ratio: float = 0.15  # a second component this large (vs the largest) is "several"
    min_area_fraction: float = 0.03
    max_area_fraction: float = 0.85
    min_contrast: float = 6.0  # CIELAB delta-E between the garment rim and the background next to it
    max_background_residual: float = 6.0  # CIELAB delta-E spread of the background around a smooth fit
    min_garment_coverage: float = 0.8  # share of the clearly-not-background region the mask must cover
    garment_evidence: float = 8.0  # delta-E from the background model that is clearly not background


def check_inputs(image: np.ndarray, mask: np.ndarray) -> None:
    """Raise a ValueError that says which array is off."""
    if image.ndim != 3 or image.shape[2] not in (3, 4) or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB (H, W, 3) or RGBA; got {image.dtype} {image.shape}.")
    if mask.ndim != 2 or mask.dtype != np.uint8 or mask.shape != image.shape[:2]:
        raise ValueError(
            f"mask must be uint8 (H, W) 0/255 matching the image {image.shape[:2]}; got {mask.dtype} {mask.shape}."
        )


def mask_bbox(mask: np.ndarray) -> tuple[int, int, int, int]:
    """(x0, y0, x1, y1) of the nonzero pixels, exclusive end; (0, 0, 0, 0) for an empty mask."""
    if not mask.any():
        return (0, 0, 0, 0)
    x, y, w, h = cv2.boundingRect(np.ascontiguousarray((mask > 0).astype(np.uint8)))
    return (int(x), int(y), int(x + w), int(y + h))


def _row_norm(rows: np.ndarray) -> np.ndarray:
    """Euclidean length of each row of an (N, C) array (a product with ones: numpy's axis=1 norm is slow)."""
    return np.sqrt((rows * rows) @ np.ones(rows.shape[1], dtype=rows.dtype))


def smooth_surface_fit(
    values: np.ndarray, ys: np.ndarray, xs: np.ndarray, shape: tuple[int, int], rounds: int = 2
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Robust quadratic surface per channel through samples: (surface (H, W, C), residuals, inlier mask)."""
    h, w = shape
    values = values.astype(np.float64)
    u, v = xs / max(w - 1, 1) * 2.0 - 1.0, ys / max(h - 1, 1) * 2.0 - 1.0
    design = np.stack([np.ones_like(u), u, v, u * u, u * v, v * v], axis=1)
    # A quadratic has 6 unknowns: an even subsample of the points fits it as well (speed at large frames).
    step = max(1, len(values) // _FIT_SAMPLES)
    fit_design, fit_values = design[::step], values[::step]
    # Start from the median colour so a garment reaching the frame cannot bend the first fit.
    start = _row_norm(fit_values - np.median(fit_values, axis=0))
    keep = start < max(3.0 * 1.4826 * float(np.median(start)), 4.0)
    coeffs = np.zeros((6, values.shape[1]))
    # Reweighting drops garment pixels that reach the frame and other outliers.
    for _ in range(max(1, rounds)):
        if keep.sum() < 12:
            keep[:] = True
        kept = fit_design[keep]
        # Normal equations (6x6) with a tiny ridge: far faster than a least-squares solve on every point.
        coeffs = np.linalg.solve(kept.T @ kept + 1e-9 * np.eye(6), kept.T @ fit_values[keep])
        residual = _row_norm(fit_values - fit_design @ coeffs)
        spread = 1.4826 * np.median(np.abs(residual[keep])) + 0.5
        keep = residual < 3.0 * spread
    residuals = values - design @ coeffs
    inlier = _row_norm(residuals) < 3.0 * spread
    # The surface per channel as a row term, a column term and one cross term: no (H, W, 6) basis, float32.
    gu = np.arange(w, dtype=np.float64) / max(w - 1, 1) * 2.0 - 1.0
    gv = np.arange(h, dtype=np.float64) / max(h - 1, 1) * 2.0 - 1.0
    cross = np.multiply.outer(gv, gu).astype(np.float32)
    planes = []
    for c in coeffs.T:
        row = (c[0] + c[2] * gv + c[5] * gv * gv).astype(np.float32)
        col = (c[1] * gu + c[3] * gu * gu).astype(np.float32)
        planes.append(np.add.outer(row, col) + np.float32(c[4]) * cross)
    surface = cv2.merge(planes) if len(planes) > 1 else planes[0][..., None]
    return surface, residuals, inlier


def shrink_area(image: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, tuple[int, int]]:
    """Area-average down to size (w, h), fast: a whole-factor box shrink first (OpenCV's quick path).

    Returns the small image and the (height, width) of the top-left part of the input it covers (the whole
    factor drops at most factor - 1 rows / columns at the far edges).
    """
    h, w = image.shape[:2]
    factor = min(h // max(size[1], 1), w // max(size[0], 1))
    if factor >= 2:
        ch, cw = h - h % factor, w - w % factor
        image = cv2.resize(image[:ch, :cw], (cw // factor, ch // factor), interpolation=cv2.INTER_AREA)
    else:
        ch, cw = h, w
    if image.shape[1] != size[0] or image.shape[0] != size[1]:
        image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
    return image, (ch, cw)


def to_lab(rgb: np.ndarray) -> np.ndarray:
    """uint8 RGB to float32 CIELAB (L 0..100)."""
    return cv2.cvtColor(rgb[..., :3].astype(np.float32) * (1.0 / 255.0), cv2.COLOR_RGB2Lab)


def assess_quality(
    image: np.ndarray, mask: np.ndarray, limits: QualityLimits | None = None
) -> tuple[tuple[str, ...], dict[str, float]]:
    """Flags (names from FLAG_NAMES) and the numbers behind them, for any backend's mask."""
    check_inputs(image, mask)
    limits = limits or QualityLimits()
    details: dict[str, float] = {}
    flags: list[str] = []
    h, w = mask.shape
    garment = mask >= 128
    # 1. Area and framing, measured on the full mask (cheap and exact).
    area = cv2.countNonZero(garment.view(np.uint8)) / float(h * w)
    details["area_fraction"] = area
    edge = np.concatenate([garment[0], garment[-1], garment[:, 0], garment[:, -1]])
    details["border_touch_fraction"] = float(edge.mean())
    if details["border_touch_fraction"] > limits.border_touch_fraction:
        flags.append("touches_border")
    if area < limits.min_area_fraction:
        flags.append("mask_too_small")
    if area > limits.max_area_fraction:
        flags.append("mask_too_large")
    # 2. The rest on a small copy.
    scale = min(1.0, _WORK_SIDE / max(h, w))
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small_rgb, _ = shrink_area(np.ascontiguousarray(image[..., :3]), size)
    small = cv2.resize(garment.astype(np.uint8), size, interpolation=cv2.INTER_NEAREST)
    count, labels, stats, _ = cv2.connectedComponentsWithStats(small, connectivity=8)
    areas = np.sort(stats[1:, cv2.CC_STAT_AREA])[::-1] if count > 1 else np.zeros(0)
    large = int((areas >= limits.large_component_ratio * areas[0]).sum()) if len(areas) else 0
    details["large_components"] = float(large)
    if large > 1:
        flags.append("multiple_components")
    # 3. Contrast: garment rim against the background just outside it.
    lab = to_lab(small_rgb)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    inner = (small > 0) & ~cv2.erode(small, kernel).astype(bool)
    outer = cv2.dilate(small, kernel).astype(bool) & (small == 0)
    if inner.any() and outer.any():
        details["contrast"] = float(np.linalg.norm(np.median(lab[inner], 0) - np.median(lab[outer], 0)))
        if details["contrast"] < limits.min_contrast:
            flags.append("low_contrast")
    # 4. Background uniformity: spread around a smooth (gradient / vignette tolerant) fit.
    far = ~cv2.dilate(small, kernel, iterations=2).astype(bool)
    ys, xs = np.nonzero(far)
    if len(ys) >= 50:
        step = max(1, len(ys) // 4000)
        _, residual, inlier = smooth_surface_fit(
            lab[ys[::step], xs[::step]], ys[::step], xs[::step], lab.shape[:2]
        )
        details["background_residual"] = float(np.percentile(_row_norm(residual[inlier]), 90))
        details["background_outlier_fraction"] = float(1.0 - inlier.mean())
        if (
            details["background_residual"] > limits.max_background_residual
            or details["background_outlier_fraction"] > 0.15
        ):
            flags.append("background_not_uniform")
    # 5. Lost garment: pixels clearly unlike the background (their outer contour filled) the mask left out.
    coverage = _garment_coverage(lab, small > 0, limits.garment_evidence)
    if coverage is not None:
        details["garment_coverage"] = coverage
        if coverage < limits.min_garment_coverage and "mask_too_small" not in flags:
            flags.append("mask_too_small")
    return tuple(flags), details


def _garment_coverage(lab: np.ndarray, garment: np.ndarray, evidence: float) -> float | None:
    """Share of the filled outer contour of clearly-not-background pixels that the mask covers."""
    h, w = garment.shape
    band = max(2, round(0.03 * min(h, w)))
    frame = np.zeros((h, w), dtype=bool)
    frame[:band], frame[-band:], frame[:, :band], frame[:, -band:] = True, True, True, True
    ys, xs = np.nonzero(frame)
    background, _, _ = smooth_surface_fit(lab[ys, xs], ys, xs, (h, w))
    diff = lab - background
    distance2 = cv2.transform(diff * diff, np.ones((1, lab.shape[2]), np.float32))
    distinct: np.ndarray = (distance2 > evidence * evidence).astype(np.uint8)
    distinct = cv2.morphologyEx(distinct, cv2.MORPH_OPEN, np.ones((3, 3), np.uint8))
    # Fill each outer contour: a garment's plain parts between its coloured parts count too.
    contours, _ = cv2.findContours(distinct, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
    contours = [c for c in contours if cv2.contourArea(c) >= 0.002 * h * w]
    if not contours:
        return None
    filled = np.zeros((h, w), np.uint8)
    cv2.drawContours(filled, contours, -1, 1, thickness=cv2.FILLED)
    region = filled.astype(bool)
    return float((region & garment).sum() / region.sum())
