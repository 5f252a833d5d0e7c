"""Output presets per sales channel: size, aspect, background and file format (configs/presets.yaml)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import yaml
from PIL import Image

from configs import config_root
from pipelines.image_io import encode_jpeg, encode_png

RESAMPLERS = {
    "lanczos": Image.Resampling.LANCZOS,
    "bicubic": Image.Resampling.BICUBIC,
    "bilinear": Image.Resampling.BILINEAR,
}
FORMATS = ("png", "jpeg")
# The stored render every other preset is derived from: native size, lossless PNG, rendered once per job.
MASTER = "master"
MAX_SIDE = 10_000  # Amazon's upper bound; larger is never useful for a catalogue image
BORDER_SAMPLE_PX = 4  # how deep into the image the backdrop colour is sampled when padding without a colour
BORDER_SMOOTH_PX = 31  # smooth the sampled edge along it so a garment touching the border doesn't streak


@dataclass(frozen=True)
class Preset:
    """One output target; width/height None = native size; background None = continue the image's border."""

    name: str
    width: int | None = None
    height: int | None = None
    background: str | None = None
    format: str = "png"
    jpeg_quality: int = 92
    resample: str = "lanczos"

    @property
    def extension(self) -> str:
        """File extension without the dot: "png" or "jpg"."""
        return "png" if self.format == "png" else "jpg"


def check_inputs(name: str, entry: Any, source: str) -> None:
    """Raise a ValueError naming the preset, the field and what it accepts."""
    where = f"{source}: preset {name!r}"
    if not isinstance(entry, Mapping):
        raise ValueError(f"{where} must be a mapping with width, height, background, format.")
    unknown = sorted(set(entry) - {"width", "height", "background", "format", "jpeg_quality", "resample"})
    if unknown:
        raise ValueError(
            f"{where}: unknown field(s) {unknown}; use width, height, background, format, jpeg_quality, resample."
        )
    for side in ("width", "height"):
        value = entry.get(side)
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int) or not 16 <= value <= MAX_SIDE
        ):
            raise ValueError(
                f"{where}: {side} must be a whole number of pixels 16..{MAX_SIDE} or null; got {value!r}."
            )
    background = entry.get("background")
    if background is not None and not _is_hex_colour(background):
        raise ValueError(
            f"{where}: background must be '#RRGGBB' (e.g. '#FFFFFF') or null; got {background!r}."
        )
    if entry.get("format", "png") not in FORMATS:
        raise ValueError(f"{where}: format must be one of {FORMATS}; got {entry.get('format')!r}.")
    quality = entry.get("jpeg_quality", 92)
    if isinstance(quality, bool) or not isinstance(quality, int) or not 1 <= quality <= 100:
        raise ValueError(f"{where}: jpeg_quality must be 1..100 (90-95 for catalogues); got {quality!r}.")
    if entry.get("resample", "lanczos") not in RESAMPLERS:
        raise ValueError(
            f"{where}: resample must be one of {sorted(RESAMPLERS)}; got {entry.get('resample')!r}."
        )


def _is_hex_colour(value: Any) -> bool:
    """True for '#RRGGBB'."""
    return (
        isinstance(value, str)
        and len(value) == 7
        and value.startswith("#")
        and all(c in "0123456789abcdefABCDEF" for c in value[1:])
    )


def load_presets(path: Path | None = None) -> dict[str, Preset]:
    """All presets in a YAML file (default: the repository's configs/presets.yaml), by name."""
    path = Path(path) if path is not None else config_root() / "presets.yaml"
    if not path.is_file():
        raise ValueError(f"presets file {path} not found; copy configs/presets.yaml from the repository.")
    try:
        document = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as error:
        raise ValueError(f"{path}: not valid YAML ({error}).") from error
    if not isinstance(document, Mapping) or not document:
        raise ValueError(f"{path}: must map preset names to settings, e.g. 'master: {{format: png}}'.")
    presets = {}
    for name, entry in document.items():
        check_inputs(str(name), entry, str(path))
        presets[str(name)] = Preset(name=str(name), **dict(entry))
    master = presets.get(MASTER)
    if master is None or (master.width, master.height, master.format) != (None, None, "png"):
        raise ValueError(
            f"{path}: needs a preset '{MASTER}' with width: null, height: null, format: png. It is the stored "
            "render (native size, lossless) that every other preset is derived from, so a preset change never "
            "renders again."
        )
    return presets


def apply_preset(rgb: np.ndarray, preset: Preset) -> np.ndarray:
    """Fit the image inside the preset size (never cropping) and pad to its aspect; native size: a copy.

    Padding uses the preset's background colour, or continues the image's own border colours when it has
    none. White-background presets pad with white but keep the generated studio backdrop around the model:
    replacing the backdrop itself needs a person mask (future work).
    """
    # 1. Validate.
    if not isinstance(rgb, np.ndarray) or rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3:
        raise ValueError(
            f"apply_preset needs uint8 RGB (H, W, 3); got {getattr(rgb, 'dtype', type(rgb))} "
            f"{getattr(rgb, 'shape', '')}."
        )
    height, width = rgb.shape[:2]
    if preset.width is None and preset.height is None:
        return rgb.copy()
    # 2. The largest size that fits inside the target box, keeping the aspect ratio.
    target_width = preset.width or round(width * preset.height / height)
    target_height = preset.height or round(height * preset.width / width)
    scale = min(target_width / width, target_height / height)
    fitted_width = min(target_width, max(1, round(width * scale)))
    fitted_height = min(target_height, max(1, round(height * scale)))
    # 3. Resample (Lanczos by default; Pillow's filter also antialiases when shrinking).
    if (fitted_width, fitted_height) != (width, height):
        fitted = np.asarray(
            Image.fromarray(rgb).resize((fitted_width, fitted_height), RESAMPLERS[preset.resample])
        )
    else:
        fitted = rgb
    # 4. Pad to the target box, centred.
    return _pad(fitted, target_width, target_height, preset.background)


def _pad(image: np.ndarray, width: int, height: int, background: str | None) -> np.ndarray:
    """Centre image on a (height, width) canvas of the colour, or of its border colours continued outward."""
    left = (width - image.shape[1]) // 2
    top = (height - image.shape[0]) // 2
    if background is not None:
        colour = [int(background[i : i + 2], 16) for i in (1, 3, 5)]
        out = np.empty((height, width, 3), dtype=np.uint8)
        out[...] = colour
        out[top : top + image.shape[0], left : left + image.shape[1]] = image
        return out
    out = _extend(image, left, width - image.shape[1] - left, axis=1)
    return _extend(out, top, height - image.shape[0] - top, axis=0)


def _extend(image: np.ndarray, before: int, after: int, axis: int) -> np.ndarray:
    """Pad along axis (1 = columns) with each row's (or column's) smoothed border colour."""
    if before <= 0 and after <= 0:
        return image
    moved = np.moveaxis(image, axis, 0)  # the padded axis first: (n, length, 3)
    length = moved.shape[1]
    parts = []
    for count, edge in ((before, moved[:BORDER_SAMPLE_PX]), (after, moved[-BORDER_SAMPLE_PX:])):
        colour = np.median(edge, axis=0).astype(np.float32)  # (length, 3)
        colour = cv2.blur(colour[:, None, :], (1, min(BORDER_SMOOTH_PX, length)))[:, 0, :]
        parts.append(np.broadcast_to(np.round(colour).astype(np.uint8), (max(count, 0), length, 3)))
    return np.ascontiguousarray(np.moveaxis(np.concatenate([parts[0], moved, parts[1]], axis=0), 0, axis))


def encode_for_preset(
    rgb: np.ndarray, preset: Preset, text: dict[str, str] | None = None
) -> tuple[bytes, str]:
    """(file bytes, extension) in the preset's format, with text metadata (PNG tEXt / JPEG comment)."""
    if preset.format == "png":
        return encode_png(rgb, text=text, compress_level=1), "png"
    return encode_jpeg(rgb, quality=preset.jpeg_quality, text=text), "jpg"
