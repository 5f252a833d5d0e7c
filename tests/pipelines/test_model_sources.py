"""Model resolution offline: local folders, the HF cache, and errors that say how to pre-fetch."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pipelines.model_sources import (
    ModelNotAvailableError,
    ModelRef,
    allow_patterns,
    download_models,
    resolve_model,
    resolve_models,
)
from pipelines.testing.random_models import save_random_components

CLOSED_PORT = "http://127.0.0.1:9"  # nothing listens: a hub call fails at once, like an air-gapped worker


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return save_random_components(tmp_path_factory.mktemp("models"), "sd15", "tiny")


def options_for(tiny: dict[str, Path]) -> dict[str, object]:
    return {
        "family": "sd15",
        "models": {
            "inpaint": {"id": str(tiny["inpaint"])},
            "controlnet_pose": {"id": str(tiny["controlnet"])},
            "controlnet_garment": None,
        },
    }


def test_local_folders_resolve_without_network(tiny: dict[str, Path]) -> None:
    resolved = resolve_models(options_for(tiny))
    assert set(resolved) == {"inpaint", "controlnet_pose"}
    assert resolved["inpaint"].path == tiny["inpaint"] and resolved["inpaint"].commit == "local"


def test_incomplete_local_folder_names_the_missing_files(tiny: dict[str, Path], tmp_path: Path) -> None:
    broken = tmp_path / "inpaint"
    shutil.copytree(tiny["inpaint"], broken)
    shutil.rmtree(broken / "vae")
    with pytest.raises(ModelNotAvailableError, match="missing vae/config.json"):
        resolve_model(ModelRef(role="inpaint", id=str(broken)))


def test_hub_id_not_in_cache_says_how_to_fetch(tmp_path: Path) -> None:
    ref = ModelRef(role="controlnet_pose", id="lllyasviel/control_v11p_sd15_openpose", revision="abc123")
    with pytest.raises(ModelNotAvailableError) as info:
        resolve_model(ref, "sd15", cache_dir=tmp_path, profile_hint="configs/sd15.yaml")
    message = str(info.value)
    for words in (
        "lllyasviel/control_v11p_sd15_openpose",
        "abc123",
        str(tmp_path),
        "onmodel models download configs/sd15.yaml",
    ):
        assert words in message


def test_download_of_local_folders_is_a_verified_no_op(tiny: dict[str, Path]) -> None:
    assert download_models(options_for(tiny), endpoint=CLOSED_PORT) == {
        "inpaint": "local",
        "controlnet_pose": "local",
    }


def test_download_without_hub_access_fails_clearly(tmp_path: Path) -> None:
    options = {
        "models": {
            "inpaint": {"id": "stable-diffusion-v1-5/stable-diffusion-inpainting"},
            "controlnet_pose": {"id": "x/y"},
        }
    }
    with pytest.raises(
        ModelNotAvailableError, match="Could not download 'stable-diffusion-v1-5/stable-diffusion-inpainting'"
    ):
        download_models(options, cache_dir=tmp_path, endpoint=CLOSED_PORT)


def test_allow_patterns_fetch_only_what_the_renderer_loads() -> None:
    patterns = allow_patterns(ModelRef(role="inpaint", id="a/b", variant="fp16"), "sd15")
    assert "model_index.json" in patterns and "unet/*model.fp16.safetensors" in patterns
    assert not any("safety_checker" in p or p.endswith(".ckpt") or p.endswith(".bin") for p in patterns)
    assert allow_patterns(ModelRef(role="controlnet_pose", id="a/b"), "sd15")[:2] == ["*.json", "*.txt"]


@pytest.mark.parametrize(
    ("options", "words"),
    [
        ({}, "renderer options need models"),
        ({"models": {"inpaint": {"id": ""}, "controlnet_pose": None}}, "needs an id"),
        (
            {"family": "sd3", "models": {"inpaint": {"id": "a"}, "controlnet_pose": {"id": "b"}}},
            "family must be one of",
        ),
    ],
)
def test_malformed_model_options_are_explained(options: dict[str, object], words: str) -> None:
    with pytest.raises(ValueError, match=words):
        resolve_models(options)
