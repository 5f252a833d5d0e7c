"""The image-metadata contract: what every output image carries so it can be regenerated exactly.

Written by the finish step (PNG text chunk / JPEG comment and a JSON sidecar), read by `onmodel reproduce`.
Version 1 is the layout of onmodel 0.1 images (read, never written); version 2 adds the job-level flags of
placement apart from the renderer's own, and the preset's file format.
"""

from __future__ import annotations

import json
from dataclasses import MISSING, asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from pipelines.errors import InputError

METADATA_VERSION = 2
READABLE_VERSIONS = (1, 2)
TEXT_KEY = "onmodel"  # the PNG tEXt key / JPEG comment field holding the JSON


class MetadataError(InputError):
    """An image carries no onmodel metadata, or metadata this version cannot read."""


@dataclass(frozen=True)
class ImageMetadata:
    """Everything that made one image: the job, its source photo, the renderer, the profile and the code."""

    job_id: str
    sku: str
    row: int
    pose: str
    variant: int
    seed: int  # the seed actually used (a renderer may move on after a black image)
    planned_seed: int  # hash(base seed, sku, pose, variant)
    garment_class: str
    source_image: str  # the reference as written in the CSV
    source_path: str  # the resolved local file, "" for a URL
    source_url: str
    source_sha256: str
    preset: str
    config_fingerprint: str
    code_version: str
    run_id: str
    profile: dict[str, Any]  # the whole run profile, so reproduce needs nothing else
    renderer: dict[str, Any]  # the renderer's describe(): model ids, revisions, dtype, scheduler
    render_params: dict[str, Any] = field(default_factory=dict)
    prompt: str = ""
    negative_prompt: str = ""
    attributes: dict[str, str] = field(default_factory=dict)  # title, color, gender, category
    flags: list[str] = field(default_factory=list)  # placement and renderer quality flags
    format: str = "png"  # the preset's file format: reproduce compares like with like
    # The product in its source system (Shopify handle + colour, Merchant id / item group) and the variant
    # SKUs this image stands for, so outputs map back on upload; they do not change pixels.
    source_identity: dict[str, str] = field(default_factory=dict)
    variant_skus: list[str] = field(default_factory=list)
    # When this render replaces one a reviewer rejected: its seed, the reason, comment, reviewer and time.
    rerender_of: dict[str, Any] = field(default_factory=dict)
    # How the garment was fitted to the pose (warp parameters, pose adaptations, fallback) and the storage key
    # of the placed garment's mask (canvas-size PNG).
    fit: dict[str, Any] = field(default_factory=dict)
    garment_mask: str = ""
    version: int = METADATA_VERSION

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict; the version sits under the key 'onmodel' (as in version 1 files)."""
        data = asdict(self)
        data[TEXT_KEY] = data.pop("version")
        return data

    def to_json(self) -> str:
        """Compact, key-sorted JSON for the PNG text chunk / JPEG comment."""
        return json.dumps(self.to_dict(), sort_keys=True, default=str)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> ImageMetadata:
        """Read a version 1 or 2 dict; a newer or foreign one is a MetadataError that says what to do."""
        if not isinstance(data, dict) or TEXT_KEY not in data:
            raise MetadataError("this is not onmodel image metadata (no 'onmodel' version key).")
        version = data[TEXT_KEY]
        if version not in READABLE_VERSIONS:
            raise MetadataError(
                f"image metadata version {version!r} is newer than this onmodel reads "
                f"({', '.join(map(str, READABLE_VERSIONS))}); upgrade onmodel to reproduce it."
            )
        known = {f.name for f in fields(cls)} - {"version"}
        values = {key: value for key, value in data.items() if key in known}
        required = {f.name for f in fields(cls) if f.default is MISSING and f.default_factory is MISSING}
        missing = sorted(required - set(values))
        if missing:
            raise MetadataError(f"image metadata (version {version}) lacks {', '.join(missing)}.")
        if version == 1:
            values.setdefault("format", "png")  # version 1 recorded no format; its reproduce wrote PNG
        return cls(**values, version=int(version))


def read_image_metadata(image_path: Path) -> ImageMetadata:
    """The JSON sidecar beside the image if present, else the text embedded in the PNG / JPEG."""
    from pipelines.image_io import read_jpeg_text, read_png_text

    image_path = Path(image_path)
    sidecar = image_path.with_suffix(".json")
    if sidecar.exists():
        return ImageMetadata.from_dict(json.loads(sidecar.read_text(encoding="utf-8")))
    suffix = image_path.suffix.lower()
    text: dict[str, str] = {}
    if suffix == ".png":
        text = read_png_text(image_path)
    elif suffix in (".jpg", ".jpeg"):
        text = read_jpeg_text(image_path)
    if TEXT_KEY not in text:
        raise MetadataError(
            f"{image_path} carries no onmodel metadata (no embedded '{TEXT_KEY}' text and no {sidecar.name} "
            "beside it)."
        )
    return ImageMetadata.from_dict(json.loads(text[TEXT_KEY]))
