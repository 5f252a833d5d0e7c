"""The renderer interface: a callable that renders a batch of jobs. Flows never care which one runs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass(frozen=True)
class RenderJob:
    """Everything a renderer needs for one image, already on the pose canvas (H x W).

    placed_rgba:   uint8 (H, W, 4) the garment cutout placed on a transparent canvas.
    garment_mask:  uint8 (H, W) 255 where the garment is (alpha > 0.5), else 0.
    inpaint_mask:  uint8 (H, W) 255 = paint here; the complement of the garment, the garment side
                   eroded and the edge feathered (0..255 in the band).
    keep_mask:     float32 (H, W) 1.0 = original garment pixel, 0.0 = generated, soft in the feather band.
    control_image: uint8 (H, W, 3) OpenPose-style rendering of the pose keypoints.
    keypoints:     float32 (18, 3) OpenPose-18 x, y (canvas pixels) and confidence (0 = absent).
    fit:           JSON-able record of how the garment was fitted (warp parameters, pose adaptations, or
                   the rigid fallback's reason): written into the image's sidecar.
    """

    job_id: str
    sku: str
    pose: str
    variant: int
    seed: int
    placed_rgba: np.ndarray
    garment_mask: np.ndarray
    inpaint_mask: np.ndarray
    keep_mask: np.ndarray
    control_image: np.ndarray
    keypoints: np.ndarray
    garment_class: str = "upper_body"
    prompt: str = ""
    negative_prompt: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # title, color, gender, category
    fit: dict[str, Any] = field(default_factory=dict)

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) of the canvas."""
        return int(self.placed_rgba.shape[1]), int(self.placed_rgba.shape[0])


@dataclass
class RenderedImage:
    """A renderer's output for one job: RGB uint8 (H, W, 3) with the garment already composited back."""

    job_id: str
    image: np.ndarray
    seed: int  # the seed actually used (a retry after a black image moves to the next seed)
    params: dict[str, Any] = field(default_factory=dict)  # everything needed to regenerate it
    flags: list[str] = field(default_factory=list)  # quality notes for the contact sheet / manifest


class Renderer(Protocol):
    """Loads once (in __init__), renders a batch per call; `name` goes into every image's metadata."""

    name: str

    def __call__(self, jobs: Sequence[RenderJob]) -> list[RenderedImage]: ...

    def describe(self) -> dict[str, Any]:
        """Model ids, revisions, dtype, scheduler ... recorded in metadata and the config fingerprint."""
        ...
