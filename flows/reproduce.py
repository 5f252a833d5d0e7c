"""`onmodel reproduce IMAGE`: regenerate one image from the parameters it carries."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from catalog import fetch_image_bytes
from catalog.schema import ImageRef
from flows import caches
from flows.profile import profile_from_dict
from flows.tasks import cut_out_garment, image_policy
from pipelines.image_io import load_image, load_image_bytes, read_png_text, write_png_atomic
from pipelines.presets import apply_preset
from pipelines.render_inputs import build_render_job

BATCH_TOLERANCE = 2


class ReproduceError(ValueError):
    """The image carries no usable metadata, or its source changed."""


@dataclass
class ReproduceReport:
    """How the regenerated image compares with the original.

    A job rendered inside a diffusion batch can differ from the same job rendered alone by a level or two
    (batched float kernels round differently); `matches` allows that, `identical` does not.
    """

    original: Path
    regenerated: Path
    max_abs_diff: int
    tolerance: int = BATCH_TOLERANCE

    @property
    def identical(self) -> bool:
        return self.max_abs_diff == 0

    @property
    def matches(self) -> bool:
        return self.max_abs_diff <= self.tolerance

    def describe(self) -> str:
        if self.identical:
            verdict = "identical"
        elif self.matches:
            verdict = (
                f"matches (max pixel difference {self.max_abs_diff}, within the {self.tolerance}-level "
                "rounding of batched kernels)"
            )
        else:
            verdict = f"DIFFERS (max pixel difference {self.max_abs_diff})"
        return f"regenerated {self.original} -> {self.regenerated}: {verdict}"


def read_metadata(image_path: Path) -> dict[str, Any]:
    """The JSON sidecar if present, else the PNG text chunk."""
    sidecar = image_path.with_suffix(".json")
    if sidecar.exists():
        return json.loads(sidecar.read_text(encoding="utf-8"))
    if image_path.suffix.lower() == ".png":
        text = read_png_text(image_path)
        if "onmodel" in text:
            return json.loads(text["onmodel"])
    raise ReproduceError(
        f"{image_path} carries no onmodel metadata (no PNG text chunk 'onmodel' and no {sidecar.name} beside it)."
    )


def reproduce_image(image_path: Path, out_path: Path | None = None, device: str = "cpu") -> ReproduceReport:
    """Re-run segmentation, placement and the renderer with the recorded seed and profile."""
    # 1. Metadata and the profile it was made with.
    meta = read_metadata(image_path)
    profile = profile_from_dict(meta["profile"]).with_overrides(preset=meta["preset"])
    # 2. The same source bytes (the hash proves it).
    ref = ImageRef(
        raw=meta["source_image"],
        path=Path(meta["source_path"]) if meta.get("source_path") else None,
        url=meta.get("source_url") or None,
    )
    data = fetch_image_bytes(ref, image_policy(profile, str(ref.path.parent) if ref.path else ""))
    if hashlib.sha256(data).hexdigest() != meta["source_sha256"]:
        raise ReproduceError(
            f"the source photo {ref.raw} changed since {image_path.name} was made (hash differs)."
        )
    image = load_image_bytes(data, int(profile.images.get("max_pixels", 40_000_000)), ref.raw)
    # 3. Cutout, placement, masks and the render with the seed that was used.
    cutout, _flags = cut_out_garment(image, profile, device)
    if cutout is None:
        raise ReproduceError("segmentation found no garment in the source photo.")
    job, _ = build_render_job(
        job_id=meta["job_id"],
        sku=meta["sku"],
        pose=caches.pose_library()[meta["pose"]],
        variant=int(meta["variant"]),
        seed=int(meta["seed"]),
        cutout_rgba=cutout,
        garment_class=meta["garment_class"],
        canvas_size=profile.canvas,
        erode_px=profile.erode_px,
        feather_px=profile.feather_px,
        prompt=meta.get("prompt", ""),
        negative_prompt=meta.get("negative_prompt", ""),
        attributes=meta.get("attributes", {}),
    )
    renderer, lock = caches.renderer(profile.renderer_name, profile.renderer_options, device)
    with lock:
        rendered = renderer([job])[0]
    final = apply_preset(rendered.image, caches.presets()[profile.preset])
    # 4. Write it beside the original and compare pixels.
    target = out_path or image_path.with_name(f"{image_path.stem}.reproduced.png")
    write_png_atomic(
        target, final, text={"onmodel": json.dumps({**meta, "reproduced_from": str(image_path)})}
    )
    original = load_image(image_path)[..., :3]
    if original.shape != final.shape:
        return ReproduceReport(image_path, target, 255)
    diff = int(np.abs(original.astype(np.int16) - final.astype(np.int16)).max())
    return ReproduceReport(image_path, target, diff)
