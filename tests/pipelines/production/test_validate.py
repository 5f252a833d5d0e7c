"""A run is checked before any work: profile options, preset, device, poses; the CSV with the run's policy."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from configs import config_root
from pipelines.model_sources import ModelNotAvailableError
from pipelines.poses import load_pose_library
from pipelines.presets import load_presets
from pipelines.production.profile import ProfileError, load_profile
from pipelines.production.validate import (
    RunConfigError,
    check_device,
    check_run,
    run_fingerprint,
    start_run,
    validate,
)
from pipelines.renderers import describe_renderer
from pipelines.renderers.draft import DraftRenderer
from pipelines.testing.random_models import save_random_components
from tests.flows.helpers import small_profile, write_csv, write_flatlays
from tests.pipelines.renderers.tiny_models import tiny_options

POSES = load_pose_library()
PRESETS = load_presets()


@pytest.mark.parametrize("device", ["cpu", "cuda", "cuda:0", "cuda:12", " CUDA:1 "])
def test_devices_that_exist(device: str) -> None:
    assert check_device(device) == device.strip().lower()


@pytest.mark.parametrize("device", ["gpu", "cuda:", "cuda:x", "cuda0", "", "tpu:0"])
def test_devices_that_do_not(device: str) -> None:
    with pytest.raises(RunConfigError, match="use cpu, cuda"):
        check_device(device)


@pytest.mark.parametrize(
    ("overrides", "error", "message"),
    [
        ({"preset": "amazn"}, RunConfigError, "preset 'amazn' is not in presets.yaml; choose one of: amazon"),
        ({"renderer": {"name": "draft", "options": {"skin_tone": ["#FFFFFF"]}}}, ProfileError, "skin_tone"),
        ({"renderer": {"name": "draftt", "options": {}}}, ProfileError, "unknown renderer 'draftt'"),
        ({"renderer": {"name": "draft", "batch_size": 0}}, ProfileError, "batch_size must be >= 1"),
        ({"segmentation": {"backend": "classical", "options": {"work_sid": 5}}}, ProfileError, "work_sid"),
        (
            {"poses": {"upper_body": ["fronte"], "lower_body": ["front"], "full_body": ["front"]}},
            ProfileError,
            "fronte",
        ),
    ],
)
def test_check_run_names_what_to_fix(
    tmp_path: Path, overrides: dict, error: type[Exception], message: str
) -> None:
    profile = load_profile(small_profile(tmp_path, **overrides))
    with pytest.raises(error, match=message.replace("(", r"\(")):
        check_run(profile, device="cpu", presets=PRESETS, poses=POSES)


def test_a_diffusion_profile_is_checked_without_its_weights(tmp_path: Path) -> None:
    data = yaml.safe_load((config_root() / "sd15.yaml").read_text())
    check_run(load_profile("sd15"), device="cuda:0", presets=PRESETS, poses=POSES)  # no weights here: fine
    data["renderer"]["options"]["stepz"] = 3
    (tmp_path / "typo.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="stepz"):
        check_run(load_profile(tmp_path / "typo.yaml"), device="cuda:0", presets=PRESETS, poses=POSES)


def test_validate_applies_the_profiles_image_policy(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "photos", 1)
    rows[0]["image"] = str(tmp_path / "photos" / rows[0]["image"])
    (tmp_path / "csv").mkdir()
    csv_path = write_csv(tmp_path / "csv" / "products.csv", rows)
    strict = validate(csv_path, load_profile("demo"), poses=POSES)
    assert not strict.records and strict.rejects[0].column == "image"
    allowing = load_profile(small_profile(tmp_path, images={"allowed_roots": [str(tmp_path / "photos")]}))
    assert len(validate(csv_path, allowing, poses=POSES).records) == 1


def test_start_run_filters_only_and_names_unknown_skus(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    rows.append({"sku": "BAD", "image": "g00.png", "category": "umbrella"})
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = load_profile(small_profile(tmp_path))
    run = start_run(
        csv_path, profile, device="cpu", force=False, only=["SKU-01", "NOPE"], presets=PRESETS, poses=POSES
    )
    assert [r.sku for r in run.records] == ["SKU-01"] and run.unknown_only == ("NOPE",)
    assert [(r.sku, r.column) for r in run.rejects] == [("BAD", "category")]
    assert run.ctx.fingerprint == run_fingerprint(
        profile, device="cpu", poses=POSES
    ) and run.ctx.csv_dir == str((tmp_path / "in").resolve())


def _hub_cache(cache: Path, repo: str, commit: str, files: Path) -> None:
    """A Hugging Face cache entry for `repo` whose refs/main points at a snapshot of `files`."""
    entry = cache / f"models--{repo.replace('/', '--')}"
    shutil.copytree(files, entry / "snapshots" / commit, dirs_exist_ok=True)
    (entry / "refs").mkdir(parents=True, exist_ok=True)
    (entry / "refs" / "main").write_text(commit)


def test_new_weights_behind_revision_main_change_the_fingerprint(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    tiny = save_random_components(tmp_path / "models", "sd15", "tiny")
    cache = tmp_path / "hub"
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(cache))
    options = {
        **tiny_options(tiny),
        "models": {
            "inpaint": {"id": "acme/inpaint", "revision": "main"},
            "controlnet_pose": {"id": "acme/pose", "revision": "main"},
            "controlnet_garment": None,
        },
    }
    profile = load_profile(small_profile(tmp_path, renderer={"name": "diffusion", "options": options}))
    with pytest.raises(ModelNotAvailableError, match="acme/.* is not available on this machine"):
        run_fingerprint(profile, device="cpu", poses=POSES)  # not on this machine: a clear error, no work
    _hub_cache(cache, "acme/inpaint", "a" * 40, tiny["inpaint"])
    _hub_cache(cache, "acme/pose", "c" * 40, tiny["controlnet"])
    first = run_fingerprint(profile, device="cpu", poses=POSES)
    assert describe_renderer("diffusion", options)["models"]["inpaint"]["commit"] == "a" * 40
    assert run_fingerprint(profile, device="cpu", poses=POSES) == first
    _hub_cache(cache, "acme/inpaint", "b" * 40, tiny["inpaint"])  # new weights published under main
    assert run_fingerprint(profile, device="cpu", poses=POSES) != first


def test_the_fingerprint_describes_the_renderer_as_it_will_describe_itself(tmp_path: Path) -> None:
    options = {"skin_tones": ["#E9C6A9", "#8A573A"]}
    assert describe_renderer("draft", options) == DraftRenderer.from_options(options).describe()
    profile = load_profile(small_profile(tmp_path))
    other = profile.with_overrides(renderer={"name": "draft", "options": options})
    assert run_fingerprint(profile, device="cpu", poses=POSES) != run_fingerprint(
        other, device="cpu", poses=POSES
    )


def test_profile_category_words_apply_to_validate_and_run(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    rows[0]["category"], rows[1]["category"] = "Kleid", "jupe"
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    plain = validate(csv_path, load_profile(small_profile(tmp_path)), poses=POSES)
    assert [r.column for r in plain.rejects] == ["category", "category"]
    assert "profile's `categories`" in plain.rejects[0].reason
    german = load_profile(small_profile(tmp_path, categories={"kleid": "dress", "jupe": "skirt"}))
    result = validate(csv_path, german, poses=POSES)
    assert not result.rejects
    assert [r.garment_class.value for r in result.records] == ["full_body", "lower_body"]
    assert german.fingerprint("p") != load_profile(small_profile(tmp_path)).fingerprint("p")


def test_a_category_mapping_to_an_unknown_word_is_a_profile_error(tmp_path: Path) -> None:
    with pytest.raises(ProfileError, match="categories.kleid: 'frock' is not a known category word"):
        load_profile(small_profile(tmp_path, categories={"kleid": "frock"}))
