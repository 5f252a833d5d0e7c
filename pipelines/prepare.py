"""Prepare a product: photo bytes in, the garment cutout (cropped to it), a source thumbnail and flags out."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import cv2
import numpy as np

from pipelines.errors import InputError
from pipelines.image_io import load_image_bytes
from pipelines.segmentation.alpha import AlphaSegmenter
from pipelines.segmentation.base import Segmenter

THUMB_LONG_SIDE = 512
NO_GARMENT = "no garment found in the photo (the cutout is empty): is it a plain-background packshot?"


@dataclass(frozen=True)
class Cutout:
    """A product's garment: RGBA cropped to the garment, a small RGB source thumbnail, and quality flags."""

    rgba: np.ndarray
    thumbnail: np.ndarray
    flags: tuple[str, ...]


def image_hash(data: bytes) -> str:
    """The photo's SHA-256: part of every job's skip key and recorded in every image's metadata."""
    return hashlib.sha256(data).hexdigest()


def thumbnail(rgb: np.ndarray, long_side: int = THUMB_LONG_SIDE) -> np.ndarray:
    """A copy no longer than long_side on its long side (area resampling), for contact sheets."""
    height, width = rgb.shape[:2]
    scale = long_side / max(height, width)
    if scale >= 1:
        return rgb.copy()
    size = (max(1, round(width * scale)), max(1, round(height * scale)))
    return cv2.resize(rgb, size, interpolation=cv2.INTER_AREA)


def cut_out_garment(image: np.ndarray, segmenter: Segmenter) -> tuple[np.ndarray, tuple[str, ...]]:
    """Segment a decoded photo and crop the cutout to the garment; InputError when there is no garment.

    A photo with a real alpha channel (a supplier's cut-out PNG) is its own mask; otherwise the segmenter.
    """
    if image.shape[2] == 4:
        segmentation = AlphaSegmenter()(image)
        flags: tuple[str, ...] = ("supplied_alpha", *segmentation.flags)
    else:
        segmentation = segmenter(image)
        flags = tuple(segmentation.flags)
    if not segmentation.mask.any():
        raise InputError(NO_GARMENT)
    x0, y0, x1, y1 = segmentation.bbox
    return segmentation.cutout[y0:y1, x0:x1], flags


def prepare_cutout(
    data: bytes, segmenter: Segmenter, *, max_pixels: int = 40_000_000, name: str = "image"
) -> Cutout:
    """Decode the photo robustly (EXIF, CMYK, 16-bit, bombs, corrupt files), segment it, crop to the garment."""
    # 1. Decode (load_image_bytes checks its inputs); a bad file is an ImageLoadError (an InputError).
    image = load_image_bytes(data, max_pixels, name)
    # 2. Segment (or use the supplied alpha) and crop to the garment.
    rgba, flags = cut_out_garment(image, segmenter)
    # 3. The source thumbnail for the contact sheet.
    return Cutout(rgba=rgba, thumbnail=thumbnail(image[..., :3]), flags=flags)
