"""Put the original garment pixels back over a generated image: the garment is never redrawn."""

from __future__ import annotations

import cv2
import numpy as np


def check_inputs(generated: np.ndarray, placed_rgba: np.ndarray, keep_mask: np.ndarray) -> None:
    """Raise a ValueError that says which array is off and how."""
    if generated.ndim != 3 or generated.shape[2] != 3 or generated.dtype != np.uint8:
        raise ValueError(f"generated must be uint8 RGB (H, W, 3); got {generated.dtype} {generated.shape}.")
    if placed_rgba.ndim != 3 or placed_rgba.shape[2] != 4 or placed_rgba.dtype != np.uint8:
        raise ValueError(
            f"placed_rgba must be uint8 RGBA (H, W, 4); got {placed_rgba.dtype} {placed_rgba.shape}."
        )
    if generated.shape[:2] != placed_rgba.shape[:2] or keep_mask.shape != generated.shape[:2]:
        raise ValueError(
            "generated, placed_rgba and keep_mask must share one canvas size; got "
            f"{generated.shape[:2]}, {placed_rgba.shape[:2]} and {keep_mask.shape}. Resize the generated image "
            "to the canvas before compositing."
        )


def composite_garment(generated: np.ndarray, placed_rgba: np.ndarray, keep_mask: np.ndarray) -> np.ndarray:
    """Blend by keep_mask; where keep_mask == 1 the output is the placed source pixel, bit for bit."""
    check_inputs(generated, placed_rgba, keep_mask)
    # 1. Only the garment's box can change: outside it keep == 0 and the generated pixels stay as they are.
    out = generated.copy()
    x, y, w, h = cv2.boundingRect((keep_mask > 0).view(np.uint8))
    if w == 0 or h == 0:
        return out
    box = (slice(y, y + h), slice(x, x + w))
    # 2. Blend in float: the VAE round trip shifts colours everywhere, so the garment comes from the source.
    source = placed_rgba[box][..., :3]
    keep = keep_mask[box].astype(np.float32)[..., None]
    blended = keep * source.astype(np.float32) + (1.0 - keep) * generated[box].astype(np.float32)
    region = np.clip(np.round(blended), 0, 255).astype(np.uint8)
    # 3. The core is copied, not computed, so exactness never depends on float rounding.
    core = keep_mask[box] >= 1.0
    region[core] = source[core]
    out[box] = region
    return out
