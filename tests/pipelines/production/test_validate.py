"""A run is checked before any work: profile options, preset, device, poses; the CSV with the run's policy."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from configs import config_root
from pipelines.poses import load_pose_library
from pipelines.presets import load_presets
from pipelines.production.profile import ProfileError, load_profile
from pipelines.production.validate import (
    RunConfigError,
    check_device,
    check_run,
    pose_library_digest,
    start_run,
    validate,
)
from tests.flows.helpers import small_profile, write_csv, write_flatlays

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
    assert run.ctx.fingerprint == profile.fingerprint(pose_library_digest(POSES)) and run.ctx.csv_dir == str(
        (tmp_path / "in").resolve()
    )
