"""Optional alpha matting for soft garment edges (fur, knit, fringes): a guided filter in the edge band."""

from __future__ import annotations

import cv2
import numpy as np


def check_inputs(image: np.ndarray, alpha: np.ndarray, radius: int, eps: float) -> None:
    """Raise a ValueError that says what to pass instead."""
    if image.ndim != 3 or image.shape[2] < 3 or image.dtype != np.uint8:
        raise ValueError(f"image must be uint8 RGB (H, W, 3); got {image.dtype} {image.shape}.")
    if alpha.ndim != 2 or alpha.dtype != np.uint8 or alpha.shape != image.shape[:2]:
        raise ValueError(f"alpha must be uint8 (H, W) matching the image; got {alpha.dtype} {alpha.shape}.")
    if radius < 1 or eps <= 0:
        raise ValueError(f"radius must be >= 1 px and eps > 0; got {radius} and {eps}.")


def refine_alpha(image: np.ndarray, alpha: np.ndarray, radius: int = 0, eps: float = 1e-3) -> np.ndarray:
    """Alpha that follows the image's own edges near the boundary; the garment core and far background stay."""
    radius = radius or max(2, round(0.004 * max(alpha.shape)))
    check_inputs(image, alpha, radius, eps)
    # 1. The unknown band: where the hard boundary is within `radius` pixels.
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    hard = (alpha >= 128).astype(np.uint8)
    band = cv2.dilate(hard, kernel) > cv2.erode(hard, kernel)
    if not band.any():
        return alpha.copy()
    # 2. Guided filter (He et al.) with the grey image as guide and the current alpha as input.
    guide = cv2.cvtColor(image[..., :3], cv2.COLOR_RGB2GRAY).astype(np.float32) / 255.0
    p = alpha.astype(np.float32) / 255.0
    size = (2 * radius + 1, 2 * radius + 1)
    mean_i, mean_p = cv2.blur(guide, size), cv2.blur(p, size)
    cov_ip = cv2.blur(guide * p, size) - mean_i * mean_p
    var_i = cv2.blur(guide * guide, size) - mean_i * mean_i
    a = cov_ip / (var_i + eps)
    b = mean_p - a * mean_i
    q = cv2.blur(a, size) * guide + cv2.blur(b, size)
    # 3. Only the band changes.
    refined = np.clip(q * 255.0 + 0.5, 0, 255).astype(np.uint8)
    return np.where(band, refined, alpha)
