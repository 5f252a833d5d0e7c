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
    shrink_area,
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
    ramp_sigma: float = 4.0  # lightness gradient at this scale is a ramp (shadow), not an edge (0 = off)
    shadow_allowance: float = 0.10  # darkening (fraction of background L*) forgiven as a possible shadow
    # A second flood forgiving this much darkening where the chroma stays the background's, edges judged as
    # steps only (0 = off); its freed regions must look like a shadow (below). +0.04 IoU on shadow_vignette.
    shadow_depth: float = 0.3
    shadow_chroma: float = 3.0  # a* b* distance (delta-E) within which a darker pixel may be shadow
    shadow_min: float = 0.5  # a freed shadow region must be darker than the background by this many L*
    shadow_contact: float = (
        0.25  # a freed shadow region must lie along the background this much of its outline
    )
    shadow_texture: float = 2.5  # ... and be smooth: mean local L* std at most this (knit is not paper)
    shadow_min_fraction: float = 0.002  # ... and no smaller than this share of the image (not a stripe's end)
    # Freed parts split only by evidence lines up to about twice this thick (work px) are judged as one: JPEG
    # blocking draws faint contour lines across a shadow on a flat background (0 = off).
    shadow_bridge_px: int = 1
    # A deep flood that frees more than this share of the garment found first has leaked through a pale
    # garment's soft rim; it is flooded again with edges counted shadow_retry_gain times stronger.
    shadow_leak_share: float = 0.5
    shadow_retry_gain: float = 1.3
    watershed_band: float = 0.012  # boundary search band (JPEG ringing, edge blur), fraction of work_side
    ringing_fraction: float = 0.2  # evidence below this share of the nearby peak is ringing, not an edge
    # Judge an edge only against the peak across it (ringing is parallel to its edge): a light stripe's end
    # at the garment's side survives (striped, printed_logo).
    directional_ringing: bool = True
    # ... and against this share of the peak all round (JPEG blocking beside a slanted edge is axis-aligned)
    ringing_floor: float = 0.12
    # ... unless it continues a faint edge found away from strong edges (a white stripe's rim running into
    # the dark sleeve: +0.010 on printed_logo, and the real jersey's right sleeve stripe stays whole)
    rescue_anchored: bool = True
    # Background runs shorter than this share of the work side between garment above and below (a light
    # stripe between dark ones, reached by the flood through its ends) are garment where their colour is
    # off the background's (0 = off).
    stripe_gap: float = 0.04
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


def _work_image(image: np.ndarray, side: int) -> tuple[np.ndarray, tuple[int, int]]:
    """The image at a long side of `side` px, and the (height, width) of the part of the input it covers."""
    h, w = image.shape[:2]
    scale = side / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    if scale > 1.0:
        return cv2.resize(image, size, interpolation=cv2.INTER_LINEAR), (h, w)
    return shrink_area(np.ascontiguousarray(image), size)


def _inset_lut(inset: float) -> np.ndarray:
    """uint8 lookup: soft mask value to alpha, with values below `inset` (of 255) mapped to 0."""
    gain = 1.0 / (1.0 - inset)
    levels = np.arange(256, dtype=np.float64)
    return np.clip(levels * gain - inset * gain * 255.0 + 0.5, 0, 255).astype(np.uint8)


def _border_band(shape: tuple[int, int], fraction: float) -> np.ndarray:
    """Boolean mask of the frame band."""
    h, w = shape
    band = max(2, round(fraction * min(h, w)))
    frame = np.zeros(shape, dtype=bool)
    frame[:band], frame[-band:], frame[:, :band], frame[:, -band:] = True, True, True, True
    return frame


def _edge_strength(
    lab: np.ndarray, sigma: float, ramp_sigma: float, with_direction: bool
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Gradient magnitude at a small scale; the same less the lightness gradient at a larger scale; direction.

    A garment rim is a step: its gradient falls as the scale grows. Shadows and vignettes are ramps: their
    gradient stays, so the second map keeps steps only (it also weakens a soft, shaded garment rim). The
    direction is the gradient's, in 4 bins (0: x, 1: x = y, 2: y, 3: x = -y), from the colour structure tensor.
    """
    smooth = cv2.GaussianBlur(lab, (0, 0), sigma)
    gx = cv2.Sobel(smooth, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    gy = cv2.Sobel(smooth, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    gxx, gyy = _channel_sum(gx * gx), _channel_sum(gy * gy)
    strength = cv2.sqrt(gxx + gyy)
    direction = None
    if with_direction:
        # Twice the structure tensor's main angle, 0 .. 2 pi (0 = along x); bins of pi/4 of the angle itself,
        # the last one (pi) folding back onto 0.
        doubled = cv2.phase(gxx - gyy, 2.0 * _channel_sum(gx * gy))
        direction = np.round(doubled * (2.0 / np.pi)).astype(np.uint8) % 4
    if ramp_sigma <= sigma:
        return strength, strength, direction
    wide = cv2.GaussianBlur(
        np.ascontiguousarray(smooth[..., 0]), (0, 0), float(np.sqrt(ramp_sigma**2 - sigma**2))
    )
    wx = cv2.Sobel(wide, cv2.CV_32F, 1, 0, ksize=3, scale=0.125)
    wy = cv2.Sobel(wide, cv2.CV_32F, 0, 1, ksize=3, scale=0.125)
    return strength, np.maximum(strength - cv2.magnitude(wx, wy), 0.0), direction


def _channel_sum(planes: np.ndarray) -> np.ndarray:
    """Sum over the last axis of a float32 (H, W, C) array (OpenCV: far faster than numpy's sum(axis=2))."""
    return cv2.transform(planes, np.ones((1, planes.shape[2]), np.float32))


def _peak_across(edges: np.ndarray, direction: np.ndarray, band: int) -> np.ndarray:
    """Strongest edge within band px along each pixel's own gradient direction (across its edge line).

    JPEG ringing repeats an edge beside it, parallel to it: it is displaced across the edge. A real weak edge
    that meets a strong one at an angle (a light stripe's end at the garment's side) is not judged by it.
    """
    size = 2 * band + 1
    lines = [np.zeros((size, size), np.uint8) for _ in range(4)]
    lines[0][band, :] = 1
    lines[2][:, band] = 1
    np.fill_diagonal(lines[1], 1)
    np.fill_diagonal(np.fliplr(lines[3]), 1)
    peak = cv2.dilate(edges, lines[0])
    for bin_, line in enumerate(lines[1:], start=1):
        cv2.copyTo(cv2.dilate(edges, line), (direction == bin_).view(np.uint8), peak)
    return peak


def _anchored(loose: np.ndarray, barrier: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Loose-only evidence connected to barrier pixels where no strong edge is near (float32 0 / 1).

    A faint rim (a white stripe's end) runs on into the zone beside a strong edge where the ringing floor
    drops it; JPEG blocking there hangs on the strong edge alone.
    """
    doubtful = loose & ~barrier
    anchors = barrier & free
    count, labels = cv2.connectedComponents((doubtful | anchors).view(np.uint8), connectivity=8)
    if count <= 1:
        return np.zeros(loose.shape, np.float32)
    hit = np.zeros(count, dtype=bool)
    hit[labels[anchors]] = True
    hit[0] = False
    return (hit[labels] & doubtful).astype(np.float32)


def _enclosed_runs(
    fg: np.ndarray,
    colour: np.ndarray,
    length: int,
    distinct_share: float = 0.9,
    aspect: float = 3.0,
    rim_colour: float = 3.0,
    rim_share: float = 0.5,
) -> np.ndarray:
    """Background gaps of fewer than length px between garment above and below that look like a stripe.

    A light stripe close to the background colour reads as ringing beside the dark stripes, and the flood
    gets into it through its ends; the dark stripes' ends continue the garment's side across it. A gap is
    taken when distinct_share of it stands out from the background (unjudged colour >= 1: a real gap shows
    the background), it is at least aspect times longer than thick, and at least rim_share of the garment
    within 3 px above it and below it has colour >= rim_colour (dark stripes, not a fragment of a JPEG halo).
    """
    closed = cv2.morphologyEx(fg.view(np.uint8), cv2.MORPH_CLOSE, np.ones((length, 1), np.uint8))
    gaps = closed.view(bool) & ~fg
    count, labels, stats, _ = cv2.connectedComponentsWithStats(gaps.view(np.uint8), connectivity=4)
    if count <= 1:
        return gaps
    areas = stats[:, cv2.CC_STAT_AREA]
    widths = stats[:, cv2.CC_STAT_WIDTH]
    distinct = np.bincount(labels[gaps], colour[gaps] >= 1.0, minlength=count)
    # A stripe is uniform and long (a blotchy JPEG halo, or a notch between collar points, is neither).
    keep = (distinct >= distinct_share * areas) & (widths * widths >= aspect * areas)
    label_map, reach = labels.astype(np.float32), np.ones((4, 1), np.uint8)
    # Its neighbours above and below: garment of clear colour (dark stripes), not a fragment of a JPEG halo.
    for anchor in ((0, 0), (0, 3)):  # garment just above the gap, then just below it
        near = cv2.dilate(label_map, reach, anchor=anchor).astype(np.int32)
        rim = fg & (near > 0)
        rim_count = np.bincount(near[rim], minlength=count)
        strong = np.bincount(near[rim], colour[rim] >= rim_colour, minlength=count)
        keep &= strong >= rim_share * np.maximum(rim_count, 1)
    keep[0] = False
    return keep[labels]


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


def _colour_evidence(
    lightness_diff: np.ndarray,
    chroma_sq: np.ndarray,
    background_lightness: np.ndarray,
    allowance: float,
    same_chroma: np.ndarray | None = None,
) -> np.ndarray:
    """CIELAB distance from the background model, forgiving mild darkening (soft shadows, vignetting).

    Takes the L* difference and the squared a* b* distance (computed once, shared by both floods). With
    `same_chroma`, the darkening is forgiven only there (where a* b* stay close to the background's).
    """
    forgiven = allowance * background_lightness
    if same_chroma is not None:
        forgiven = np.where(same_chroma, forgiven, np.float32(0.0))
    darker = np.maximum(-lightness_diff - forgiven, 0.0)
    lighter = np.maximum(lightness_diff, 0.0)
    return cv2.sqrt(chroma_sq + darker * darker + lighter * lighter)


def _flood_from_frame(evidence: np.ndarray, seeds: np.ndarray, options: ClassicalOptions) -> np.ndarray:
    """Background region: what the seeds (the frame) reach without crossing evidence >= 1."""
    # Specks of noise or JPEG blocking in the background are dropped first so they cannot wall it off.
    barrier: np.ndarray = _keep_components(evidence >= 1.0, options.speck_pixels, keep_one=False).astype(
        np.uint8
    )
    # A one-pixel-thicker barrier closes pinholes in faint edges; the ring it took is given back after.
    seal = np.ones((2 * options.seal_px + 1, 2 * options.seal_px + 1), np.uint8)
    barrier = cv2.dilate(barrier, seal)
    _, labels = cv2.connectedComponents(1 - barrier, connectivity=4)
    reached = np.zeros(int(labels.max()) + 1, dtype=bool)
    reached[labels[seeds & (barrier == 0)]] = True
    reached[0] = False
    region = reached[labels].view(np.uint8)
    return cv2.dilate(region, seal).astype(bool) & (evidence < 1.0)


def _along(
    candidate: np.ndarray,
    region: np.ndarray,
    min_contact: float,
    darkening: np.ndarray,
    min_darkening: float,
    texture: np.ndarray,
    max_texture: float,
    min_pixels: int,
    bridge_px: int = 0,
) -> np.ndarray:
    """Components of candidate that look like a shadow band along region.

    Shadow-like = at least min_pixels, mostly (60%) darker than min_darkening, smooth (mean local L* std
    at most max_texture: a white knit stripe with a shaded rim is not paper in shadow), and touching
    region for at least min_contact of the outline's length. Parts split by evidence lines up to about
    2 * bridge_px thick are judged as one (a shadow crossed by JPEG contour lines); only their own pixels
    are returned.
    """
    pixels = candidate
    if bridge_px > 0:
        size = 2 * bridge_px + 1
        closed = cv2.morphologyEx(candidate.view(np.uint8), cv2.MORPH_CLOSE, np.ones((size, size), np.uint8))
        candidate = closed.view(bool) & ~region
    count, labels = cv2.connectedComponents(candidate.view(np.uint8), connectivity=8)
    if count <= 1:
        return candidate & pixels
    cross = np.ones((3, 3), np.uint8)
    outline = candidate & ~cv2.erode(candidate.astype(np.uint8), cross).astype(bool)
    contact = outline & cv2.dilate(region.astype(np.uint8), cross).astype(bool)
    lengths = np.bincount(labels[outline], minlength=count)
    touching = np.bincount(labels[contact], minlength=count)
    inside = labels[candidate]  # only candidate pixels are counted (label 0 is the rest)
    areas = np.bincount(inside, minlength=count)
    dark = np.bincount(inside, darkening[candidate] >= min_darkening, minlength=count) / np.maximum(areas, 1)
    roughness = np.bincount(inside, texture[candidate], minlength=count) / np.maximum(areas, 1)
    keep = (touching >= min_contact * np.maximum(lengths, 1)) & (dark >= 0.6) & (roughness <= max_texture)
    keep &= areas >= min_pixels
    keep[0] = False
    return keep[labels] & pixels


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
    # The rectangle is unused with GC_INIT_WITH_MASK; OpenCV's stubs still want one, hence the ignore.
    cv2.grabCut(bgr, labels, None, bgd_model, fgd_model, iterations, cv2.GC_INIT_WITH_MASK)  # type: ignore[call-overload]
    return (labels == cv2.GC_FGD) | (labels == cv2.GC_PR_FGD)


def segment_classical(
    image: np.ndarray, options: ClassicalOptions | None = None, limits: QualityLimits | None = None
) -> Segmentation:
    """Cut the garment out of a packshot; the cutout keeps the source RGB untouched, only alpha is added."""
    options = options or ClassicalOptions()
    check_inputs(image, options)
    h, w = image.shape[:2]
    # 1. Evidence image: shrunk (speed, less noise), in CIELAB (distances match what people see).
    # Fixed scale: thresholds are in work pixels. `covered` is the part of the image the small copy shows.
    small, covered = _work_image(image, options.work_side)
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
    lightness_diff, diff_a, diff_b = cv2.split(lab - background)
    chroma_sq = diff_a * diff_a + diff_b * diff_b
    background_lightness = np.ascontiguousarray(background[..., 0])
    colour = _colour_evidence(lightness_diff, chroma_sq, background_lightness, options.shadow_allowance)
    colour = cv2.GaussianBlur(colour, (0, 0), 1.0).astype(np.float32, copy=False)
    colour_level = float(np.percentile(colour[calm], 99)) if calm.any() else 1.0
    colour_scale = max(options.colour_margin * colour_level, options.colour_floor)
    colour /= colour_scale
    shadow_pass = options.shadow_depth > options.shadow_allowance
    edges, steps, direction = _edge_strength(
        lab, options.edge_sigma, options.ramp_sigma if shadow_pass else 0.0, options.directional_ringing
    )
    edge_level = float(np.percentile(edges[calm], 99)) if calm.any() else 1.0
    edge_scale = max(options.edge_margin * edge_level, options.edge_floor)
    edges, steps = edges / edge_scale, steps / edge_scale
    # JPEG ringing and colour bleeding beside a strong edge are a fraction of it: judge evidence locally.
    band = max(2, round(options.watershed_band * max(sh, sw)))
    window = np.ones((2 * band + 1, 2 * band + 1), np.uint8)
    colour_peak, edge_peak = cv2.dilate(colour, window), cv2.dilate(edges, window)
    # Optionally judge an edge only against the peak across it (see `directional_ringing`).
    across = options.ringing_fraction * (
        _peak_across(edges, direction, band) if direction is not None else edge_peak
    )
    floored = direction is not None and options.ringing_floor > 0
    loose = edges / np.maximum(1.0, across) if floored and options.rescue_anchored else None
    if floored:
        across = np.maximum(across, options.ringing_floor * edge_peak)
    other = edges / np.maximum(1.0, across)
    other_steps = steps / np.maximum(1.0, across)
    ringing = np.maximum(1.0, options.ringing_fraction * edge_peak)
    # Texture evidence: knit, terry and weave vary locally where studio paper is smooth (white on white).
    raw_texture = _local_std(lab[..., 0], 2)
    if options.texture_margin > 0:
        texture = raw_texture.copy()
        texture_level = float(np.percentile(texture[calm], 99)) if calm.any() else 1.0
        texture /= max(options.texture_margin * texture_level, options.texture_floor)
        texture /= ringing
        other, other_steps = np.maximum(other, texture), np.maximum(other_steps, texture)
    colour_judged = colour / np.maximum(1.0, options.ringing_fraction * colour_peak)
    evidence = np.maximum(colour_judged, other)
    if loose is not None:
        # Edges the floor dropped come back where they continue a faint rim found away from strong edges and
        # colour (JPEG chroma blotches beside a saturated garment are colour, a white-on-white rim is not).
        free = (options.ringing_floor * edge_peak < 1.0) & (colour_judged < 1.0)
        rescued = _anchored(loose >= 1.0, evidence >= 1.0, free)
        evidence = np.maximum(evidence, rescued)
        other_steps = np.maximum(other_steps, rescued)
    # 4. Background = what the frame reaches without crossing evidence; the rest (holes filled) is garment.
    background_region = _flood_from_frame(evidence, frame, options)
    if options.stripe_gap > 0:
        gap = max(3, round(options.stripe_gap * max(sh, sw)))
        background_region &= ~_enclosed_runs(~background_region, colour, gap)
    first_fg = ~background_region
    # 4b. Deeper shadows: darker than the background but of its chroma, reached over a soft ramp (edges
    #     here are steps only). Forgiving them can also open a gap in a pale garment's soft rim, so a newly
    #     freed region is taken only where it lies along the background found before (a shadow band), not
    #     where it sits behind a thin gap (a leak into the garment).
    if shadow_pass and first_fg.any():
        # Only where the first flood stopped can a shadow be left: the pass works in that box (plus the
        # ringing band), flooding from the background already found there. Maps from step 3 are reused.
        x, y, bw, bh = cv2.boundingRect(first_fg.view(np.uint8))
        y0, y1, x0, x1 = max(0, y - band), min(sh, y + bh + band), max(0, x - band), min(sw, x + bw + band)
        box = np.s_[y0:y1, x0:x1]
        known = background_region[box]
        same_chroma = chroma_sq[box] < options.shadow_chroma**2
        deep = _colour_evidence(
            lightness_diff[box], chroma_sq[box], background_lightness[box], options.shadow_depth, same_chroma
        )
        deep = cv2.GaussianBlur(deep, (0, 0), 1.0) / colour_scale
        deep_evidence = np.maximum(
            deep / np.maximum(1.0, options.ringing_fraction * colour_peak[box]), other_steps[box]
        )
        freed = _flood_from_frame(deep_evidence, known | frame[box], options) & ~known
        if np.count_nonzero(freed) > options.shadow_leak_share * np.count_nonzero(~known):
            freed = _flood_from_frame(options.shadow_retry_gain * deep_evidence, known | frame[box], options)
            freed &= ~known
        background_region[box] = known | _along(
            freed,
            known,
            options.shadow_contact,
            -lightness_diff[box],
            options.shadow_min,
            raw_texture[box],
            options.shadow_texture,
            round(options.shadow_min_fraction * sh * sw),
            options.shadow_bridge_px,
        )
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
        # What the first flood kept, away from its rim, stays: only the shadow pass may take it (above).
        if shadow_pass:
            sure |= cv2.erode(first_fg.astype(np.uint8), window).astype(bool) & fg
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
    # 7. Full resolution, all in uint8 (the cutout is the full-size product image): a smooth upsampled
    #    boundary and a soft alpha edge.
    shrink = cv2.INTER_AREA if max(h, w) < max(sh, sw) else cv2.INTER_LINEAR
    soft = cv2.resize(fg.astype(np.uint8) * 255, covered[::-1], interpolation=shrink)
    if covered != (h, w):  # the few far rows / columns the fast shrink left out take their neighbours' value
        soft = cv2.copyMakeBorder(soft, 0, h - covered[0], 0, w - covered[1], cv2.BORDER_REPLICATE)
    if options.edge_softness_px > 0:
        soft = cv2.GaussianBlur(soft, (0, 0), options.edge_softness_px)
    # The work-resolution boundary is only good to about one work pixel: pulling the alpha ramp inward keeps
    # that uncertainty on the garment side, so no rim of background (halo) shows on a new backdrop.
    alpha = cv2.LUT(soft, _inset_lut(options.edge_inset))
    if options.alpha_matting:
        alpha = refine_alpha(image, alpha)
    mask = cv2.threshold(alpha, 127, 255, cv2.THRESH_BINARY)[1]
    # 8. Quality flags, shared with every backend.
    flags, details = assess_quality(image, mask, limits)
    details = {**details, "colour_level": colour_level, "edge_level": edge_level}
    cutout = cv2.cvtColor(image, cv2.COLOR_RGB2RGBA)
    cutout[..., 3] = alpha
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
