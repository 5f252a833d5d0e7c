"""Finish a rendered image: output preset (size, aspect, background), encoding with its metadata embedded.

The flow writes what this returns; `onmodel reproduce` calls the same function and compares the decoded
result with the decoded file on disk, so a lossy (JPEG) preset compares like with like.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np

from pipelines.image_io import load_image_bytes
from pipelines.metadata import TEXT_KEY, ImageMetadata
from pipelines.presets import Preset, apply_preset, encode_for_preset


@dataclass(frozen=True)
class FinishedImage:
    """The encoded file (bytes, extension without the dot) and the metadata it carries."""

    data: bytes
    extension: str
    metadata: ImageMetadata
    metadata_json: str  # what the file embeds; the sidecar is the same text

    def decoded(self) -> np.ndarray:
        """The pixels a reader of the file sees (after the format's compression)."""
        return load_image_bytes(self.data, name=f"finished .{self.extension}")[..., :3]


def check_inputs(rgb: np.ndarray, preset: Preset, metadata: ImageMetadata) -> None:
    """Raise a ValueError naming what is off."""
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"a rendered image is uint8 RGB (H, W, 3); got {getattr(rgb, 'dtype', type(rgb))} "
            f"{getattr(rgb, 'shape', '')}."
        )
    if metadata.preset != preset.name:
        raise ValueError(
            f"metadata names preset {metadata.preset!r} but the image is finished as {preset.name!r}."
        )


def finish_image(rgb: np.ndarray, preset: Preset, metadata: ImageMetadata) -> FinishedImage:
    """Apply the preset and encode the image with its metadata (PNG text chunk or JPEG comment)."""
    check_inputs(rgb, preset, metadata)
    # 1. Size, aspect and padding for the sales channel (never cropping the garment).
    final = apply_preset(rgb, preset)
    # 2. The metadata records the format, so reproduce knows it compares against a lossy file or not.
    metadata = replace(metadata, format=preset.format)
    # 3. Encode with the metadata embedded.
    metadata_json = metadata.to_json()
    data, extension = encode_for_preset(final, preset, text={TEXT_KEY: metadata_json})
    return FinishedImage(data=data, extension=extension, metadata=metadata, metadata_json=metadata_json)


def finish_presets(
    rgb: np.ndarray, presets: Sequence[Preset], metadata: ImageMetadata
) -> list[FinishedImage]:
    """Every preset of one render from the same pixels: the master first, then each channel's derivative.

    A derivative made right after rendering and one made later from the stored master PNG are the same bytes,
    because the master is lossless: this is what lets a preset change skip the renderer.
    """
    return [finish_image(rgb, preset, replace(metadata, preset=preset.name)) for preset in presets]
