"""`onmodel reproduce`: an image regenerates exactly from its metadata (draft and tiny diffusion renderer)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from flows import caches
from flows.cli import main
from flows.produce import run_catalog
from pipelines.image_io import load_image
from pipelines.metadata import MetadataError
from pipelines.production.reproduce import ReproduceError, reproduce_image
from pipelines.testing.random_models import save_random_components
from tests.flows.helpers import small_profile, write_csv, write_flatlays
from tests.pipelines.renderers.tiny_models import tiny_options

ONE_POSE = {"upper_body": ["front"], "lower_body": ["front"], "full_body": ["front"]}


def _reproduce(image: Path, out: Path | None = None) -> object:
    """reproduce_image with this process's models and libraries, as the CLI calls it."""
    return reproduce_image(
        image, models=caches.MODELS, poses=caches.pose_library(), presets=caches.presets(), out_path=out
    )


def test_draft_image_reproduces_exactly(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=2, poses=ONE_POSE)
    run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    image = sorted((tmp_path / "out" / "images").rglob("*__v1.png"))[0]
    assert main(["reproduce", str(image), "--out", str(tmp_path / "again.png"), "--check"]) == 0
    assert "identical" in capsys.readouterr().out
    assert (load_image(tmp_path / "again.png") == load_image(image)).all()


def test_changed_source_is_refused(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows[:1])
    profile = small_profile(tmp_path, variants=1, poses=ONE_POSE)
    run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    image = next((tmp_path / "out" / "images").rglob("*.png"))
    (tmp_path / "in" / "g00.png").write_bytes((tmp_path / "in" / "g01.png").read_bytes())
    with pytest.raises(ReproduceError, match="changed since"):
        _reproduce(image)


def test_image_without_metadata_is_refused(tmp_path: Path) -> None:
    from pipelines.image_io import write_png_atomic

    plain = tmp_path / "plain.png"
    write_png_atomic(plain, load_image(next(iter([_blank(tmp_path)]))))
    with pytest.raises(MetadataError, match="no onmodel metadata"):
        _reproduce(plain)


def _blank(tmp_path: Path) -> Path:
    from PIL import Image

    path = tmp_path / "blank_src.png"
    Image.new("RGB", (8, 8), (9, 9, 9)).save(path)
    return path


@pytest.mark.slow
def test_tiny_diffusion_catalogue_runs_through_the_flow_and_reproduces(tmp_path: Path) -> None:
    """The whole flow with the real diffusion renderer on tiny random SD 1.5 components (CPU, 2 steps)."""
    paths = save_random_components(tmp_path / "models", "sd15", "tiny")
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(
        tmp_path,
        variants=2,
        poses=ONE_POSE,
        canvas={"width": 64, "height": 96},
        renderer={"name": "diffusion", "batch_size": 2, "options": tiny_options(paths)},
    )
    summary = run_catalog(str(csv_path), str(profile), str(tmp_path / "out"))
    assert summary.counts["produced"] == 2 and summary.counts["failed"] == 0
    image = sorted((tmp_path / "out" / "images").rglob("*__v0.png"))[0]
    meta = json.loads(image.with_suffix(".json").read_text())
    assert meta["renderer"]["renderer"] == "diffusion"
    assert meta["render_params"]["seed"] == meta["seed"]
    # Rendered in a batch of 2, regenerated alone: batched CPU kernels may round a level differently.
    report = _reproduce(image, tmp_path / "again.png")
    assert report.matches, report.describe()
    assert report.max_abs_diff <= 2
