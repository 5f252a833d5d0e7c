"""The classical packshot cutter: border background model, colour + edge evidence, GrabCut refinement.

No weights. Tuned for studio packshots and flat-lays: one garment (or a few parts) on a plain, possibly
graded or vignetted background, with soft shadows.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.segmentation.base import Segmentation
from pipelines.segmentation.matting import refine_alpha
from pipelines.segmentation.quality import (
    QualityLimits,
    assess_quality,
    mask_bbox,
    smooth_surface_fit,
    to_lab,
)


@dataclass(frozen=True)
class ClassicalOptions:
    """Knobs of the classical cutter; the defaults are what the benchmark measured."""

    work_side: int = 512  # long side of the evidence image
    grabcut_side: int = 0  # long side for an extra GrabCut pass (0 = off: measured no gain, 2.4x slower)
    grabcut_iterations: int = 2
    border_fraction: float = 0.03  # width of the frame band the background model is learned from
    colour_margin: float = 1.5  # colour evidence threshold: this times its 99th percentile on the frame
    colour_floor: float = 1.2  # ... and never below this CIELAB delta-E
    edge_margin: float = 1.5  # edge evidence threshold: this times its 99th percentile on the frame
    edge_floor: float = 0.06  # ... and never below this many delta-E per pixel
    edge_sigma: float = 1.5  # smoothing before the gradient: larger finds fainter rims, blurs thin gaps
    shadow_allowance: float = 0.10  # darkening (fraction of background L*) forgiven as a possible shadow
    watershed_band: float = 0.012  # boundary search band (JPEG ringing, edge blur), fraction of work_side
    ringing_fraction: float = 0.2  # evidence below this share of the nearby peak is ringing, not an edge
    sure_colour: float = 3.0  # colour evidence this strong is garment for sure (keeps thin coloured parts)
    texture_margin: float = 2.0  # texture evidence threshold: this times its 99th percentile on the frame
    texture_floor: float = 1.5  # ... and never below this local L* standard deviation
    seal_px: int = 1  # gaps in the garment's outline up to about twice this (work px) are sealed
    speck_pixels: int = 24  # evidence blobs smaller than this (at work_side) are noise, not garment edges
    min_component_fraction: float = 0.002  # garment parts smaller than this share of the image are dropped
    edge_softness_px: float = 0.8  # soft alpha edge width at full resolution
    edge_inset: float = 0.4  # soft mask values below this are background: pulls the alpha edge inward
    alpha_matting: bool = False  # guided-filter matting for fur / knit edges (slower)


def check_inputs(image: np.ndarray, options: ClassicalOptions) -> None:
    """Raise a ValueError that says what to pass instead."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
        raise ValueError(
            f"image must be an RGB array (H, W, 3); got {getattr(image, 'shape', type(image))}. "
            "Drop an alpha channel first, or use the 'alpha' backend for cut-out PNGs."
        )
    if image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 0..255; got {image.dtype}.")
    if min(image.shape[:2]) < 16:
        raise ValueError(
            f"image is {image.shape[1]}x{image.shape[0]} px; a garment photo needs at least 16 px."
        )
    if options.work_side < 64:
        raise ValueError(f"work_side must be >= 64 px; got {options.work_side}.")


def _resize_long(image: np.ndarray, side: int, upscale: bool = False) -> np.ndarray:
    """Scale so the long side is `side` (shrinking uses area averaging, which also lowers noise)."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    if scale == 1.0 or (scale > 1.0 and not upscale):
        return image
    method = cv2.INTER_AREA if scale < 1.0 else cv2.INTER_LINEAR
    return cv2.resize(image, (max(1, round(w * scale)), max(1, round(h * scale))), interpolation=method)


def _border_band(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Boolean mask of the frame band."""
    h, w = shape
    band = max(2, round(fraction * min(h, w)))
    frame = np.zeros(shape, dtype=bool)
    frame[:band], frame[-band:], frame[:, :band], frame[:, -band:] = True, True, True, True
    return frame


def _edge_strength(lab: np.ndarray, sigma: float) -> np.ndarray:
    """Gradient magnitude at a small scale: a garment rim is a step, shadows and vignettes are ramps."""
    smooth = cv2.GaussianBlur(lab, (0, 0), sigma)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return np.sqrt((gx * gx + gy * gy).sum(axis=2))


def _local_std(channel: np.ndarray, radius: int) -> np.ndarray:
    """Local standard deviation in a (2r+1)^2 box."""
    size = (2 * radius + 1, 2 * radius + 1)
    mean = cv2.blur(channel, size)
    return np.sqrt(np.maximum(cv2.blur(channel * channel, size) - mean * mean, 0.0))


def _watershed(rgb: np.ndarray, fg: np.ndarray, sure_fg: np.ndarray, band_px: int) -> np.ndarray:
    """Move the boundary onto the strongest colour step within band_px of it (the barrier is a few px thick)."""
    size = 2 * band_px + 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))
    fg8 = fg.astype(np.uint8)
    markers = np.zeros(fg.shape, np.int32)
    markers[~cv2.dilate(fg8, kernel).astype(bool)] = 1
    markers[cv2.erode(fg8, kernel).astype(bool) | (sure_fg & fg)] = 2
    if not (markers == 1).any() or not (markers == 2).any():
        return fg
    relief = cv2.GaussianBlur(np.ascontiguousarray(rgb), (0, 0), 0.7)
    cv2.watershed(relief, markers)
    # Ridge pixels (-1) go to the garment side: thin parts are all ridge.
    return (markers == 2) | ((markers == -1) & fg)


def _colour_evidence(lab: np.ndarray, background: np.ndarray, allowance: float) -> np.ndarray:
    """CIELAB distance from the background model, forgiving mild darkening (soft shadows, vignetting)."""
    diff = lab - background
    darker = np.maximum(-diff[..., 0] - allowance * background[..., 0], 0.0)
    lighter = np.maximum(diff[..., 0], 0.0)
    return np.sqrt(diff[..., 1] ** 2 + diff[..., 2] ** 2 + darker**2 + lighter**2)


def _keep_components(fg: np.ndarray, min_pixels: int, keep_one: bool = True) -> np.ndarray:
    """Drop foreground components smaller than min_pixels (dust, noise), keep every real garment part."""
    count, labels, stats, _ = cv2.connectedComponentsWithStats(fg.astype(np.uint8), connectivity=8)
    if count <= 1:
        return fg
    keep = stats[:, cv2.CC_STAT_AREA] >= min_pixels
    keep[0] = False
    if keep_one and not keep[1:].any():  # never return nothing when something was found: keep the largest
        keep[1 + int(np.argmax(stats[1:, cv2.CC_STAT_AREA]))] = True
    return keep[labels]


def _grabcut(rgb: np.ndarray, fg: np.ndarray, sure_fg: np.ndarray, iterations: int) -> np.ndarray:
    """GrabCut in a band around the current boundary; thin parts and strong evidence stay foreground."""
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (5, 5))
    fg8 = fg.astype(np.uint8)
    inside = cv2.erode(fg8, kernel).astype(bool)
    outside = ~cv2.dilate(fg8, kernel).astype(bool)
    labels = np.where(fg, cv2.GC_PR_FGD, cv2.GC_PR_BGD).astype(np.uint8)
    labels[inside | (sure_fg & fg)] = cv2.GC_FGD
    labels[outside] = cv2.GC_BGD
    if not (labels == cv2.GC_FGD).any() or not (labels == cv2.GC_BGD).any():
        return fg
    bgd_model = np.zeros((1, 65), np.float64)
    fgd_model = np.zeros((1, 65), np.float64)
    bgr = np.ascontiguousarray(rgb[..., ::-1])
    cv2.grabCut(bgr, labels, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def segment_classical(
    image: np.ndarray, options: ClassicalOptions | None = None, limits: QualityLimits | None = None
) -> Segmentation:
    """Cut the garment out of a packshot; the cutout keeps the source RGB untouched, only alpha is added."""
    options = options or ClassicalOptions()
    check_inputs(image, options)
    h, w = image.shape[:2]
    # 1. Evidence image: shrunk (speed, less noise), in CIELAB (distances match what people see).
    small = _resize_long(image, options.work_side, upscale=True)  # fixed scale: thresholds are in work pixels
    sh, sw = small.shape[:2]
    lab = to_lab(small)
    frame = _border_band((sh, sw), options.border_fraction)
    # 2. Background model from the frame: a smooth surface (gradients, vignetting) and its noise level.
    ys, xs = np.nonzero(frame)
    background, residual, inlier = smooth_surface_fit(lab[ys, xs], ys, xs, (sh, sw))
    calm = np.zeros((sh, sw), dtype=bool)
    calm[ys[inlier], xs[inlier]] = True  # frame pixels that really are background (a garment may reach it)
    outlier = np.zeros((sh, sw), dtype=np.uint8)
    outlier[ys[~inlier], xs[~inlier]] = 1
    if outlier.any():  # the garment's own rim next to where it reaches the frame is not background noise
        calm &= cv2.dilate(outlier, np.ones((9, 9), np.uint8)) == 0
    # 3. Colour evidence (far from the background colour) and edge evidence (a sharp step), each scaled by
    #    how high it runs on the calm frame: that adapts to sensor noise, JPEG blocking and clipped whites.
    colour = cv2.GaussianBlur(_colour_evidence(lab, background, options.shadow_allowance), (0, 0), 1.0)
    colour_level = float(np.percentile(colour[calm], 99)) if calm.any() else 1.0
    colour /= max(options.colour_margin * colour_level, options.colour_floor)
    edges = _edge_strength(lab, options.edge_sigma)
    edge_level = float(np.percentile(edges[calm], 99)) if calm.any() else 1.0
    edges /= max(options.edge_margin * edge_level, options.edge_floor)
    # JPEG ringing and colour bleeding beside a strong edge are a fraction of it: judge evidence locally.
    band = max(2, round(options.watershed_band * max(sh, sw)))
    window = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    colour_peak, edge_peak = cv2.dilate(colour, window), cv2.dilate(edges, window)
    evidence = np.maximum(
        colour / np.maximum(1.0, options.ringing_fraction * colour_peak),
        edges / np.maximum(1.0, options.ringing_fraction * edge_peak),
    )
    # Texture evidence: knit, terry and weave vary locally where studio paper is smooth (white on white).
    if options.texture_margin > 0:
        texture = _local_std(lab[..., 0], 2)
        texture_level = float(np.percentile(texture[calm], 99)) if calm.any() else 1.0
        texture /= max(options.texture_margin * texture_level, options.texture_floor)
        evidence = np.maximum(evidence, texture / np.maximum(1.0, options.ringing_fraction * edge_peak))
    # 4. Background = what the frame reaches without crossing evidence; the rest (holes filled) is garment.
    # A one-pixel-thicker barrier closes pinholes in faint edges; the ring it took is given back after.
    # Specks of noise or JPEG blocking in the background are dropped first so they cannot wall it off.
    barrier = _keep_components(evidence >= 1.0, options.speck_pixels, keep_one=False).astype(np.uint8)
    seal = np.ones((2 * options.seal_px + 1, 2 * options.seal_px + 1), np.uint8)
    barrier = cv2.dilate(barrier, seal)
    count, labels = cv2.connectedComponents(1 - barrier, connectivity=4)
    reached = np.unique(labels[frame & (barrier == 0)])
    background_region = np.isin(labels, reached[reached > 0]).astype(np.uint8)
    background_region = cv2.dilate(background_region, seal).astype(bool) & (evidence < 1.0)
    fg = ~background_region
    # 5. Morphology: open away one-pixel specks only (straps survive), drop dust below the size floor.
    fg = (
        cv2.morphologyEx(fg.astype(np.uint8), cv2.MORPH_OPEN, np.ones((2, 2), np.uint8)).astype(bool)
        | (colour >= 2.0) & fg
    )
    fg = _keep_components(fg, max(4, int(options.min_component_fraction * sh * sw)))
    # 6. Boundary onto the colour step (watershed), then GrabCut refinement at reduced resolution, in a band around the boundary.
    if fg.any() and not fg.all():
        # Sure garment: strong colour evidence that is also near the local peak (JPEG ringing is not).
        sure = (colour >= options.sure_colour) & (colour >= 0.5 * colour_peak)
        fg = _watershed(small, fg, sure, band)
    if options.grabcut_side > 0 and fg.any() and not fg.all():
        gc_rgb = _resize_long(small, options.grabcut_side)
        gh, gw = gc_rgb.shape[:2]
        gc_fg = cv2.resize(fg.astype(np.uint8), (gw, gh), interpolation=cv2.INTER_NEAREST).astype(bool)
        gc_sure = cv2.resize(
            (colour >= options.sure_colour).astype(np.uint8), (gw, gh), interpolation=cv2.INTER_NEAREST
        )
        refined = _grabcut(gc_rgb, gc_fg, gc_sure.astype(bool), options.grabcut_iterations)
        # Only accept changes near the old boundary at the evidence resolution.
        refined_small = cv2.resize(refined.astype(np.uint8), (sw, sh), interpolation=cv2.INTER_LINEAR) > 0
        band = cv2.dilate(fg.astype(np.uint8), np.ones((5, 5), np.uint8)) > cv2.erode(
            fg.astype(np.uint8), np.ones((5, 5), np.uint8)
        )
        fg = np.where(band, refined_small | (colour >= options.sure_colour) & fg, fg)
    # 7. Full resolution: a smooth upsampled boundary and a soft alpha edge.
    shrink = cv2.INTER_AREA if max(h, w) < max(sh, sw) else cv2.INTER_LINEAR
    soft = cv2.resize(fg.astype(np.float32), (w, h), interpolation=shrink)
    if options.edge_softness_px > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), options.edge_softness_px)
    # The work-resolution boundary is only good to about one work pixel: pulling the alpha ramp inward keeps
    # that uncertainty on the garment side, so no rim of background (halo) shows on a new backdrop.
    gain = 255.0 / (1.0 - options.edge_inset)
    alpha = np.clip(soft * gain + (0.5 - options.edge_inset * gain), 0, 255).astype(np.uint8)
    if options.alpha_matting:
        alpha = refine_alpha(image, alpha)
    mask = np.where(alpha >= 128, 255, 0).astype(np.uint8)
    # 8. Quality flags, shared with every backend.
    flags, details = assess_quality(image, mask, limits)
    details = {**details, "colour_level": colour_level, "edge_level": edge_level}
    cutout = np.empty((h, w, 4), np.uint8)
    cutout[..., :3], cutout[..., 3] = image, alpha
    return Segmentation(cutout=cutout, mask=mask, flags=flags, bbox=mask_bbox(mask), details=details)


class ClassicalSegmenter:
    """Callable classical backend (no weights to load)."""

    name = "classical"

    def __init__(self, device: str = "cpu", limits: QualityLimits | None = None, **options: object) -> None:
        self.device = device  # CPU only; accepted so every backend is built the same way
        self.options = ClassicalOptions(**options)  # type: ignore[arg-type]
        self.limits = limits

    def __call__(self, image: np.ndarray) -> Segmentation:
        """Cut one RGB uint8 image."""
        return segment_classical(image, self.options, self.limits)
