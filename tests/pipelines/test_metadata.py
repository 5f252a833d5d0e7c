"""The image-metadata contract: one typed, versioned record, written by the flow and read by reproduce."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from pipelines.image_io import write_bytes_atomic
from pipelines.metadata import METADATA_VERSION, ImageMetadata, MetadataError, read_image_metadata
from pipelines.presets import Preset, encode_for_preset


def _meta(**overrides: object) -> ImageMetadata:
    values: dict = dict(
        job_id="A__front__v0",
        sku="A",
        row=2,
        pose="front",
        variant=0,
        seed=11,
        planned_seed=10,
        garment_class="upper_body",
        source_image="a.png",
        source_path="/in/a.png",
        source_url="",
        source_sha256="ab" * 32,
        preset="master",
        config_fingerprint="fp",
        code_version="0.1.0",
        run_id="r1",
        profile={"name": "demo"},
        renderer={"renderer": "draft", "version": 1},
        flags=["garment_upscaled"],
    )
    values.update(overrides)
    return ImageMetadata(**values)


def test_round_trip_through_dict_and_json() -> None:
    meta = _meta(attributes={"title": "Tee"}, render_params={"steps": 2})
    data = json.loads(meta.to_json())
    assert data["onmodel"] == METADATA_VERSION and "version" not in data
    assert ImageMetadata.from_dict(data) == meta


def test_reads_version_1_files_of_onmodel_0_1() -> None:
    """The flat dict onmodel 0.1 wrote (no format, flags inside), as found in existing sidecars."""
    old = {
        "onmodel": 1, "job_id": "A__front__v0", "sku": "A", "row": 2, "pose": "front", "variant": 0,
        "seed": 11, "planned_seed": 11, "garment_class": "upper_body", "source_image": "a.png",
        "source_path": "/in/a.png", "source_url": "", "source_sha256": "ab" * 32, "prompt": "",
        "negative_prompt": "", "attributes": {"title": "Tee", "color": "", "gender": "", "category": "t-shirt"},
        "renderer": {"renderer": "draft"}, "render_params": {}, "flags": [], "preset": "master",
        "config_fingerprint": "fp", "profile": {"name": "demo"}, "code_version": "0.1.0+gabc", "run_id": "r0",
    }  # fmt: skip
    meta = ImageMetadata.from_dict(old)
    assert meta.version == 1 and meta.format == "png" and meta.attributes["category"] == "t-shirt"


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"sku": "A"}, "not onmodel image metadata"),
        ({**_meta().to_dict(), "onmodel": 9}, "newer than this onmodel reads"),
        ({k: v for k, v in _meta().to_dict().items() if k != "seed"}, "lacks seed"),
    ],
)
def test_unreadable_metadata_says_why(data: dict, message: str) -> None:
    with pytest.raises(MetadataError, match=message):
        ImageMetadata.from_dict(data)


@pytest.mark.parametrize("file_format", ["png", "jpeg"])
def test_read_from_the_embedded_text_when_there_is_no_sidecar(tmp_path: Path, file_format: str) -> None:
    meta = _meta(format=file_format)
    rgb = np.full((16, 16, 3), 90, np.uint8)
    data, extension = encode_for_preset(rgb, Preset("p", format=file_format), {"onmodel": meta.to_json()})
    path = tmp_path / f"image.{extension}"
    write_bytes_atomic(path, data)
    assert read_image_metadata(path) == meta
    sidecar = _meta(seed=99)
    path.with_suffix(".json").write_text(sidecar.to_json())
    assert read_image_metadata(path).seed == 99  # the sidecar wins when present


def test_an_image_without_metadata_is_refused(tmp_path: Path) -> None:
    data, _extension = encode_for_preset(np.zeros((8, 8, 3), np.uint8), Preset("p"))
    write_bytes_atomic(tmp_path / "plain.png", data)
    with pytest.raises(MetadataError, match="no onmodel metadata"):
        read_image_metadata(tmp_path / "plain.png")
