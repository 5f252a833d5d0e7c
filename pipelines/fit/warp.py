"""The piecewise-smooth warp: every canvas pixel looks up one point of the working garment image.

The forward map is F(q) = sum_k w_k(q) A_k q (blend weights from pipelines.fit.panels, one affine per panel).
Inverted per panel: a canvas pixel's candidate is A_k^-1 p, exact where panel k's weight is 1, refined by
Newton steps in the seam bands. Where panels overlap on the canvas the front one (by depth order) wins. Then
one bilinear remap of the premultiplied working image: the fitted garment's pixels are resampled source
pixels, never generated.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.fit.skirt import SkirtWarp

NEWTON_STEPS = 8
CONVERGED_PX = 0.25  # a band pixel whose residual stays above this is left empty rather than smeared
UNCLAIMED = -1.0e4  # map value that samples the transparent border
GIVE_UP_PX = 3.0  # a band point this far off after two Newton steps belongs to another panel
JUMP_PX = 3.0  # neighbouring canvas pixels whose lookups differ more than this show different layers


@dataclass(frozen=True)
class Warped:
    """The fitted garment in its canvas box, the lookup maps and which panel each pixel shows."""

    box: tuple[int, int, int, int] | None  # x0, y0, x1, y1 on the canvas; None when nothing lands on it
    premultiplied: np.ndarray  # float32 (h, w, 4): colour x alpha and alpha, 255x scale
    map_x: np.ndarray  # float32 (h, w): working-image x each box pixel samples (UNCLAIMED if none)
    map_y: np.ndarray
    panel: np.ndarray  # int8 (h, w): winning panel index, -1 where no garment


def _bilinear(stack: Sequence[np.ndarray], x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Sample each float32 (H, W) image of stack at float points; zero outside. Returns (K, n).

    One OpenCV remap per image over the points (a (1, n) map): no gather of the stack, no copy of it.
    """
    map_x = np.asarray(x, dtype=np.float32).reshape(1, -1)
    map_y = np.asarray(y, dtype=np.float32).reshape(1, -1)
    out = np.empty((len(stack), map_x.shape[1]), dtype=np.float32)
    for index, image in enumerate(stack):
        out[index] = cv2.remap(
            image, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )[0]
    return out


def _newton(
    p: np.ndarray,
    q: np.ndarray,
    fallback_inverse: np.ndarray,
    fields: Sequence[np.ndarray],
    affines: np.ndarray,
) -> tuple[np.ndarray, np.ndarray]:
    """Solve F(q) = p from q for band points (n, 2); returns (q, residual px).

    fields: 3K float32 (H, W) images, the K weights, then their x and y gradients (sampled once per step).
    """
    k = len(affines)
    q = q.copy()
    residual = np.full(len(p), np.inf)
    active = np.arange(len(p))
    coefficients = [tuple(float(v) for v in affines[panel].ravel()) for panel in range(k)]
    for step_index in range(NEWTON_STEPS):
        x, y = q[active, 0], q[active, 1]
        sampled = _bilinear(fields, x, y).astype(np.float64)
        # F and its Jacobian, entry by entry (flat arrays: ~2x faster than (n, 2, 2) broadcasts).
        fx, fy = np.zeros(len(active)), np.zeros(len(active))
        a, b, c, d = (
            np.zeros(len(active)),
            np.zeros(len(active)),
            np.zeros(len(active)),
            np.zeros(len(active)),
        )
        for panel, (a00, a01, b0, a10, a11, b1) in enumerate(coefficients):
            w, gx, gy = sampled[panel], sampled[k + panel], sampled[2 * k + panel]
            mx = a00 * x + a01 * y + b0
            my = a10 * x + a11 * y + b1
            fx += w * mx
            fy += w * my
            a += w * a00 + gx * mx
            b += w * a01 + gy * mx
            c += w * a10 + gx * my
            d += w * a11 + gy * my
        ex, ey = p[active, 0] - fx, p[active, 1] - fy
        residual[active] = np.hypot(ex, ey)
        # Converged, or (after two steps) still far off: a candidate of another panel's, not this one's.
        moving = (residual[active] >= 0.01) & ((step_index < 2) | (residual[active] < GIVE_UP_PX))
        if not moving.any():
            break
        active = active[moving]
        ex, ey, a, b, c, d = ex[moving], ey[moving], a[moving], b[moving], c[moving], d[moving]
        det = a * d - b * c
        steady = np.abs(det) > 1e-3
        safe = np.where(steady, det, 1.0)
        step = np.column_stack([d * ex - b * ey, a * ey - c * ex])
        step /= safe[:, None]
        step[~steady] = np.column_stack([ex[~steady], ey[~steady]]) @ fallback_inverse.T
        norm = np.hypot(step[:, 0], step[:, 1])
        step *= np.minimum(1.0, 8.0 / np.maximum(norm, 1e-9))[:, None]  # no wild jumps across a fold
        q[active] += step
    return q, residual


def warp_panels(
    premultiplied: np.ndarray,
    alpha: np.ndarray,
    weights: np.ndarray,
    affines: Sequence[np.ndarray],
    order: Sequence[int],
    canvas_size: tuple[int, int],
    skirt: SkirtWarp | None = None,
    guard: np.ndarray | None = None,
    guarded: Sequence[int] = (),
) -> Warped:
    """Resample the working image (premultiplied float32 (h, w, 4), alpha uint8) onto the canvas box.

    weights: (K, h, w) partition of unity; affines: K (2, 3) working -> canvas; order: back to front.
    skirt: the torso panel's (panel 0) deformation below the hips, undone in closed form before its affine.
    guard (uint8 (h, w), nonzero: the torso's middle) and guarded (panel indices): a per-pixel depth order;
    a guarded panel in front of the torso does not cover the torso's pixels whose source lies in the guard.
    """
    width, height = canvas_size
    stack = np.asarray(affines, dtype=np.float64)
    grad_y, grad_x = np.gradient(weights, axis=(1, 2))
    fields = np.concatenate([weights, grad_x, grad_y]).astype(np.float32)
    alpha_f = alpha.astype(np.float32)
    K = len(stack)
    support_masks = [(weights[k] > 0).astype(np.uint8) for k in range(K)]
    neighbours = [
        np.array([j for j in range(K) if j == k or cv2.countNonZero(support_masks[k] & support_masks[j])])
        for k in range(K)
    ]
    # 1. Each panel's canvas box: its support (weight > 0 on the garment) mapped by its affine.
    boxes: list[tuple[int, int, int, int] | None] = []
    for k in range(len(stack)):
        support = ((weights[k] > 0) & (alpha > 0)).astype(np.uint8)
        x, y, w, h = cv2.boundingRect(support)
        if w == 0:
            boxes.append(None)
            continue
        corners = np.array(
            [[x - 1, y - 1], [x + w + 1, y - 1], [x - 1, y + h + 1], [x + w + 1, y + h + 1]], float
        )
        mapped = corners @ stack[k, :, :2].T + stack[k, :, 2]
        if k == 0 and skirt is not None:  # it narrows toward the centre line and shifts by at most shift
            mapped = np.vstack([mapped, mapped + skirt.across * skirt.shift])
        x0, y0 = (max(0, math.floor(v) - 1) for v in mapped.min(axis=0))
        x1 = min(width, math.ceil(mapped[:, 0].max()) + 2)
        y1 = min(height, math.ceil(mapped[:, 1].max()) + 2)
        boxes.append((x0, y0, x1, y1) if x0 < x1 and y0 < y1 else None)
    present = [b for b in boxes if b is not None]
    if not present:
        empty = np.zeros((0, 0), np.float32)
        return Warped(None, np.zeros((0, 0, 4), np.float32), empty, empty, np.zeros((0, 0), np.int8))
    bx0, by0 = min(b[0] for b in present), min(b[1] for b in present)
    bx1, by1 = max(b[2] for b in present), max(b[3] for b in present)
    map_x = np.full((by1 - by0, bx1 - bx0), UNCLAIMED, dtype=np.float32)
    map_y = np.full_like(map_x, UNCLAIMED)
    claimed_alpha = np.zeros_like(map_x)
    panel = np.full(map_x.shape, -1, dtype=np.int8)
    # 2. Per panel, back to front: candidates, Newton in the bands, claims where the panel owns the point.
    for k in order:
        box = boxes[k]
        if box is None:
            continue
        x0, y0, x1, y1 = box
        inverse = cv2.invertAffineTransform(stack[k])
        ys, xs = np.mgrid[y0:y1, x0:x1].astype(np.float32)
        if k == 0 and skirt is not None:  # where the undeformed torso panel would have put the point
            xs, ys = skirt.inverse(xs, ys)
        qx = (inverse[0, 0] * xs + inverse[0, 1] * ys + inverse[0, 2]).astype(np.float32)
        qy = (inverse[1, 0] * xs + inverse[1, 1] * ys + inverse[1, 2]).astype(np.float32)
        own = cv2.remap(weights[k], qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        seen = cv2.remap(alpha_f, qx, qy, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0)
        candidate = (own > 0) & (seen > 0)
        # Newton only where the nearest source pixel lies in a blend band: a hard cut's weights step from 0 to
        # 1 between two pixels (a merged sleeve's slit), and their bilinear fringe there is no band to solve.
        nearest = cv2.remap(
            weights[k], qx, qy, cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT, borderValue=0
        )
        band = candidate & (own < 0.999) & (nearest > 0) & (nearest < 0.999)
        if band.any():
            rows, cols = np.nonzero(band)
            p = np.column_stack([xs[rows, cols], ys[rows, cols]]).astype(np.float64)
            q = np.column_stack([qx[rows, cols], qy[rows, cols]]).astype(np.float64)
            # Only the panels whose weights reach into this one's support shape F here: the gather per Newton
            # step (3 fields per panel) costs in proportion to how many are sampled.
            near = neighbours[k]
            near_fields = [fields[i] for i in np.r_[near, near + K, near + 2 * K]]
            q, residual = _newton(p, q, inverse[:, :2], near_fields, stack[near])
            qx[rows, cols], qy[rows, cols] = q[:, 0], q[:, 1]
            refined = _bilinear((weights[k], alpha_f), q[:, 0], q[:, 1])
            own[rows, cols], seen[rows, cols] = refined[0], refined[1]
            own[rows[residual > CONVERGED_PX], cols[residual > CONVERGED_PX]] = 0.0
        owns = (own >= 0.5) & (seen > 0)
        sub = (slice(y0 - by0, y1 - by0), slice(x0 - bx0, x1 - bx0))
        # A front panel's soft edge does not punch a hole into the solid panel behind it.
        wins = owns & ((seen >= 127.5) | (seen > claimed_alpha[sub]))
        if guard is not None and k in guarded:
            # Where the torso already shows a pixel of its middle, it stays in front of this panel.
            torso_here = panel[sub] == 0
            if torso_here.any():
                middle = cv2.remap(
                    guard, map_x[sub], map_y[sub], cv2.INTER_NEAREST, borderMode=cv2.BORDER_CONSTANT
                )
                wins &= ~(torso_here & (middle > 0))
        map_x[sub][wins], map_y[sub][wins] = qx[wins], qy[wins]
        claimed_alpha[sub][wins] = seen[wins]
        panel[sub][wins] = k
    # 3. One bilinear lookup of the premultiplied working image.
    resampled = cv2.remap(
        premultiplied, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT, borderValue=0
    )
    return Warped((bx0, by0, bx1, by1), resampled.reshape(*map_x.shape, 4), map_x, map_y, panel)


def local_stretch(warped: Warped, labels: np.ndarray, region: int, nominal: float = 1.0) -> np.ndarray:
    """Per-pixel stretch of one region on the canvas: max |singular value / nominal - 1| of the forward map's
    local Jacobian (working -> canvas), from finite differences of the lookup maps, at canvas pixels that show
    the region (labels: the working image's region map) and whose four neighbours do too."""
    if warped.box is None or warped.map_x.shape[0] < 3 or warped.map_x.shape[1] < 3:
        return np.zeros(0)
    height, width = labels.shape
    claimed = warped.panel >= 0
    xs = np.clip(np.round(warped.map_x), 0, width - 1).astype(np.intp)
    ys = np.clip(np.round(warped.map_y), 0, height - 1).astype(np.intp)
    # The seam's own pixels belong to the blend band (on the limb's side): stay two pixels inside the region.
    # Nor within two source pixels of another region: a merged sleeve's cut beyond its armpit has no blend
    # band, and the weights' bilinear fringe across it (one pixel) is a blend of two transforms.
    source = cv2.erode((labels == region).astype(np.uint8), np.ones((5, 5), np.uint8)) > 0
    mine = cv2.erode((claimed & source[ys, xs]).astype(np.uint8), np.ones((3, 3), np.uint8)) > 0
    inner = mine[1:-1, 1:-1] & mine[:-2, 1:-1] & mine[2:, 1:-1] & mine[1:-1, :-2] & mine[1:-1, 2:]
    mx, my = warped.map_x.astype(np.float64), warped.map_y.astype(np.float64)
    dxx = (mx[1:-1, 2:] - mx[1:-1, :-2]) / 2.0
    dxy = (mx[2:, 1:-1] - mx[:-2, 1:-1]) / 2.0
    dyx = (my[1:-1, 2:] - my[1:-1, :-2]) / 2.0
    dyy = (my[2:, 1:-1] - my[:-2, 1:-1]) / 2.0
    # A jump of the lookup between neighbours is an occlusion edge (one panel in front of another), no stretch.
    steady = (
        (np.abs(dxx) < JUMP_PX) & (np.abs(dxy) < JUMP_PX) & (np.abs(dyx) < JUMP_PX) & (np.abs(dyy) < JUMP_PX)
    )
    inner &= steady
    a, b, c, d = dxx[inner], dxy[inner], dyx[inner], dyy[inner]
    # Singular values of the inverse Jacobian [[a, b], [c, d]]; the forward map's are their reciprocals.
    s1 = np.sqrt((a + d) ** 2 + (c - b) ** 2) / 2.0
    s2 = np.sqrt((a - d) ** 2 + (c + b) ** 2) / 2.0
    largest, smallest = s1 + s2, np.abs(s1 - s2)
    forward_max = 1.0 / np.maximum(smallest, 1e-9)
    forward_min = 1.0 / np.maximum(largest, 1e-9)
    return np.maximum(np.abs(forward_max / nominal - 1.0), np.abs(forward_min / nominal - 1.0))
