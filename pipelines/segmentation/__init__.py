"""Garment segmentation backends behind one interface, chosen by name in the run profile."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from pipelines.segmentation.base import Segmentation, Segmenter
from pipelines.segmentation.options import (
    UnknownOptionError,
    check_alpha_options,
    check_classical_options,
    check_rembg_options,
)
from pipelines.segmentation.quality import FLAG_NAMES, QualityLimits, assess_quality

BACKENDS = ("classical", "rembg", "alpha")
# backend -> its option check (pipelines/segmentation/options.py: no model, no rembg import).
OPTION_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "classical": check_classical_options,
    "rembg": check_rembg_options,
    "alpha": check_alpha_options,
}
if set(OPTION_CHECKS) != set(BACKENDS):  # a backend without a check would skip validation silently
    raise RuntimeError(f"every backend needs an option check: {BACKENDS} vs {sorted(OPTION_CHECKS)}.")

__all__ = [
    "BACKENDS",
    "FLAG_NAMES",
    "OPTION_CHECKS",
    "QualityLimits",
    "Segmentation",
    "Segmenter",
    "UnknownOptionError",
    "assess_quality",
    "check_segmentation_options",
    "get_segmenter",
]


def check_segmentation_options(backend: str, options: Mapping[str, Any], device: str = "cpu") -> None:
    """Validate a backend name and its options without building a segmenter or importing rembg."""
    if backend not in BACKENDS:
        raise ValueError(
            f"segmentation backend {backend!r} is unknown; choose one of {BACKENDS} "
            "(profile: segmentation.backend)."
        )
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(
            f"segmentation.options must be a mapping (e.g. options: {{model: u2net}}); "
            f"got {type(options).__name__}."
        )
    OPTION_CHECKS[backend](options or {}, device)


def get_segmenter(name: str, device: str = "cpu", **options: Any) -> Segmenter:
    """Build a backend once (loads its model, if any); rembg is imported only when chosen."""
    # The same check a run does up front, so both paths refuse a bad option with the same message.
    check_segmentation_options(name, options, device)
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
    raise ValueError(f"segmentation backend {name!r} has an option check but no builder in get_segmenter.")
