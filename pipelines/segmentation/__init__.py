"""Garment segmentation backends behind one interface, chosen by name in the run profile."""

from __future__ import annotations

from typing import Any

from pipelines.segmentation.base import Segmentation, Segmenter
from pipelines.segmentation.quality import FLAG_NAMES, QualityLimits, assess_quality

BACKENDS = ("classical", "rembg", "alpha")

__all__ = [
    "BACKENDS",
    "FLAG_NAMES",
    "QualityLimits",
    "Segmentation",
    "Segmenter",
    "assess_quality",
    "get_segmenter",
]


def get_segmenter(name: str, device: str = "cpu", **options: Any) -> Segmenter:
    """Build a backend once (loads its model, if any); rembg is imported only when chosen."""
    if name == "classical":
        from pipelines.segmentation.classical import ClassicalSegmenter

        return ClassicalSegmenter(device=device, **options)
    if name == "rembg":
        try:
            from pipelines.segmentation.rembg_backend import RembgSegmenter
        except ImportError as error:  # pragma: no cover - depends on the install
            raise ValueError(
                "the 'rembg' backend needs the rembg extra: pip install 'onmodel[rembg]'."
            ) from error
        return RembgSegmenter(device=device, **options)
    if name == "alpha":
        from pipelines.segmentation.alpha import AlphaSegmenter

        return AlphaSegmenter(device=device, **options)
    raise ValueError(
        f"segmentation backend {name!r} is unknown; choose one of {BACKENDS} (profile: segmentation.backend)."
    )
