"""The segmentation backend interface: image in, RGBA cutout + mask + quality flags out."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


@dataclass(frozen=True)
class Segmentation:
    """cutout: uint8 (H, W, 4) source RGB with alpha; mask: uint8 (H, W) 0/255 hard garment mask.

    flags are short machine-readable names (e.g. "touches_border", "low_contrast"), shown on contact
    sheets and written to the manifest; bbox is (x0, y0, x1, y1) of the mask, exclusive end.
    """

    cutout: np.ndarray
    mask: np.ndarray
    flags: tuple[str, ...] = ()
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    details: dict[str, float] = field(default_factory=dict)  # measured numbers behind the flags


class Segmenter(Protocol):
    """Loads once (a model session, if any) and cuts one RGB uint8 image (H, W, 3) per call."""

    name: str

    def __call__(self, image: np.ndarray) -> Segmentation: ...
