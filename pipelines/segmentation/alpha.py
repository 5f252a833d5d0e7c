"""The 'alpha' backend: a supplier's cut-out RGBA PNG already carries the garment mask; use it as is."""

from __future__ import annotations

import numpy as np

from pipelines.segmentation.base import Segmentation
from pipelines.segmentation.quality import QualityLimits, assess_quality, mask_bbox


def check_inputs(image: np.ndarray) -> None:
    """Raise a ValueError a merchandiser can act on."""
    if not isinstance(image, np.ndarray) or image.ndim != 3 or image.dtype != np.uint8:
        raise ValueError(
            f"image must be a uint8 RGBA array (H, W, 4); got {getattr(image, 'shape', type(image))}."
        )
    if image.shape[2] != 4:
        raise ValueError(
            f"the 'alpha' backend needs a cut-out image with transparency (RGBA); this one has {image.shape[2]} "
            "channels. Use the 'classical' or 'rembg' backend for photos on a background."
        )
    if image[..., 3].min() == 255:
        raise ValueError(
            "this RGBA image is fully opaque, so its alpha channel holds no cut-out. Export the packshot with a "
            "transparent background, or use the 'classical' backend."
        )


def segment_alpha(
    image: np.ndarray, threshold: int = 128, limits: QualityLimits | None = None
) -> Segmentation:
    """Cutout = the RGBA image itself; mask = alpha >= threshold."""
    check_inputs(image)
    # 1. The supplier's alpha is the truth; pixels are copied, never changed.
    cutout = image.copy()
    mask = np.where(image[..., 3] >= threshold, 255, 0).astype(np.uint8)
    # 2. Shared quality flags (judged on the colour channels).
    flags, details = assess_quality(image[..., :3], mask, limits)
    return Segmentation(cutout=cutout, mask=mask, flags=flags, bbox=mask_bbox(mask), details=details)


class AlphaSegmenter:
    """Callable 'alpha' backend; takes RGBA (H, W, 4)."""

    name = "alpha"

    def __init__(
        self, device: str = "cpu", threshold: int = 128, limits: QualityLimits | None = None
    ) -> None:
        if not 1 <= threshold <= 255:
            raise ValueError(f"threshold must be 1..255; got {threshold}.")
        self.device = device
        self.threshold = threshold
        self.limits = limits

    def __call__(self, image: np.ndarray) -> Segmentation:
        """Use the image's own alpha channel."""
        return segment_alpha(image, self.threshold, self.limits)
