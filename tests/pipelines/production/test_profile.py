"""Run profiles: loading, checks with teaching errors, fingerprints."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from configs import config_root
from pipelines.production.profile import ProfileError, load_profile

CONFIG_DIR = config_root()


def test_demo_profile_loads() -> None:
    profile = load_profile("demo")
    assert profile.renderer_name == "draft"
    assert profile.canvas == (512, 768)


@pytest.mark.parametrize("path", sorted(p for p in CONFIG_DIR.glob("*.yaml") if p.stem != "presets"))
def test_every_shipped_profile_is_valid(path: Path) -> None:
    assert load_profile(path).name


def test_fingerprint_changes_with_image_settings_only() -> None:
    profile = load_profile("demo")
    base = profile.fingerprint("poses")
    assert profile.with_overrides(seed=99).fingerprint("poses") != base
    assert profile.fingerprint("other-poses") != base
    assert profile.with_overrides(run={"max_workers": 7}).fingerprint("poses") == base
    # The render is keyed without the output presets: they are derived from the stored master.
    assert profile.with_overrides(preset=["master", "amazon"]).fingerprint("poses") == base


@pytest.mark.parametrize(
    ("value", "names"),
    [
        ("amazon", ("amazon",)),
        ("master, amazon", ("master", "amazon")),
        (["amazon", "amazon,shopify"], ("amazon", "shopify")),
    ],
)
def test_presets_are_one_name_a_comma_list_or_a_yaml_list(value: object, names: tuple[str, ...]) -> None:
    assert load_profile("demo").with_overrides(preset=value).presets == names


def test_an_empty_preset_list_is_refused(tmp_path: Path) -> None:
    data = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())
    data["preset"] = []
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="preset is a preset name or a list"):
        load_profile(path)


def test_missing_key_names_the_key(tmp_path: Path) -> None:
    data = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())
    del data["masks"]
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="missing key 'masks'"):
        load_profile(path)


def test_canvas_must_be_multiple_of_8(tmp_path: Path) -> None:
    data = yaml.safe_load((CONFIG_DIR / "demo.yaml").read_text())
    data["canvas"] = {"width": 500, "height": 768}
    path = tmp_path / "p.yaml"
    path.write_text(yaml.safe_dump(data))
    with pytest.raises(ProfileError, match="multiples of 8"):
        load_profile(path)


def test_unknown_profile_lists_available() -> None:
    with pytest.raises(ProfileError, match="demo"):
        load_profile("no-such-profile")


def test_code_version_reads_the_commit_from_git_files_without_git(tmp_path: Path) -> None:
    from pipelines.production.profile import git_commit

    sha = "0123456789abcdef0123456789abcdef01234567"
    git = tmp_path / ".git"
    (git / "refs" / "heads").mkdir(parents=True)
    (git / "HEAD").write_text("ref: refs/heads/main\n")
    (git / "refs" / "heads" / "main").write_text(sha + "\n")
    assert git_commit(tmp_path) == sha
    (git / "refs" / "heads" / "main").unlink()
    (git / "packed-refs").write_text(f"# pack-refs with: peeled\n{sha} refs/heads/main\n")
    assert git_commit(tmp_path) == sha
    (git / "HEAD").write_text(sha[::-1] + "\n")  # detached
    assert git_commit(tmp_path) == sha[::-1]
    assert git_commit(tmp_path / "not-a-checkout") == ""
