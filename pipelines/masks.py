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
    garment = alpha >= 128
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
        keep = np.minimum(ramp, alpha.astype(np.float32) / 255.0)
    else:
        keep = np.zeros(alpha.shape, dtype=np.float32)
    keep = np.where(core, 1.0, keep).astype(np.float32)
    # 4. The inpaint mask is the complement of what is kept.
    inpaint = np.round((1.0 - keep) * 255.0).astype(np.uint8)
    return MaskSet(
        garment_mask=np.where(garment, 255, 0).astype(np.uint8),
        inpaint_mask=inpaint,
        keep_mask=keep,
    )
