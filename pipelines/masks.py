"""The mask set a renderer needs, built from the placed garment's alpha."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskSet:
    """garment_mask uint8 0/255; inpaint_mask uint8 (255 = paint); keep_mask float32 1.0 = original pixel."""

    garment_mask: np.ndarray
    inpaint_mask: np.ndarray
    keep_mask: np.ndarray


def check_inputs(alpha: np.ndarray, erode_px: int, feather_px: int) -> None:
    """Raise a ValueError that says what to pass instead."""
    if not isinstance(alpha, np.ndarray) or alpha.ndim != 2:
        raise ValueError(
            f"alpha must be a 2-D uint8 array (H, W); got {getattr(alpha, 'shape', type(alpha))}."
        )
    if alpha.dtype != np.uint8:
        raise ValueError(
            f"alpha must be uint8 0..255; got dtype {alpha.dtype}. Scale a float mask by 255 first."
        )
    if erode_px < 0 or feather_px < 0:
        raise ValueError(f"erode_px and feather_px must be >= 0 pixels; got {erode_px} and {feather_px}.")


def build_masks(alpha: np.ndarray, erode_px: int = 2, feather_px: int = 3) -> MaskSet:
    """Garment mask, its eroded core (kept exactly), a feather band, and the inpaint mask (the complement)."""
    check_inputs(alpha, erode_px, feather_px)
    # 1. The garment is where the cutout is at least half opaque.
    garment_mask = np.where(alpha >= 128, np.uint8(255), np.uint8(0))
    keep = np.zeros(alpha.shape, dtype=np.float32)
    inpaint = np.full(alpha.shape, 255, dtype=np.uint8)
    # Only the garment's box plus the feather reach can be kept: the rest of the canvas is paint.
    window = _garment_window(garment_mask, margin=2 * (feather_px + 1))
    if window is None:
        return MaskSet(garment_mask=garment_mask, inpaint_mask=inpaint, keep_mask=keep)
    x0, y0, x1, y1 = window
    local_alpha = alpha[y0:y1, x0:x1]
    garment = garment_mask[y0:y1, x0:x1] > 0
    # 2. Erode: the core whose pixels are delivered untouched; the rim is left for blending.
    if erode_px > 0:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * erode_px + 1, 2 * erode_px + 1))
        core = cv2.erode(garment.astype(np.uint8), kernel, borderValue=0).astype(bool)
    else:
        core = garment
    # 3. Feather outward from the core, never beyond the cutout's own alpha (no transparent pixels pasted).
    if feather_px > 0:
        distance = cv2.distanceTransform((~core).astype(np.uint8), cv2.DIST_L2, 3)
        ramp = np.clip(1.0 - distance / float(feather_px + 1), 0.0, 1.0)
        local_keep = np.minimum(ramp, local_alpha.astype(np.float32) / 255.0)
    else:
        local_keep = np.zeros(local_alpha.shape, dtype=np.float32)
    keep[y0:y1, x0:x1] = np.where(core, 1.0, local_keep)
    # 4. The inpaint mask is the complement of what is kept.
    inpaint[y0:y1, x0:x1] = np.round((1.0 - keep[y0:y1, x0:x1]) * 255.0).astype(np.uint8)
    return MaskSet(garment_mask=garment_mask, inpaint_mask=inpaint, keep_mask=keep)


def _garment_window(garment_mask: np.ndarray, margin: int) -> tuple[int, int, int, int] | None:
    """(x0, y0, x1, y1): the garment's bounding box grown by margin, within the image; None without garment.

    The margin must cover the feather: the 3x3 chamfer distance is at least 0.95x the pixel offset, so
    2 x (feather_px + 1) keeps every pixel with a non-zero ramp inside, and distances inside match the full image.
    """
    x, y, width, height = cv2.boundingRect(garment_mask)
    if width == 0 or height == 0:
        return None
    rows, cols = garment_mask.shape
    return (
        max(0, x - margin),
        max(0, y - margin),
        min(cols, x + width + margin),
        min(rows, y + height + margin),
    )
