"""An installed onmodel (a wheel, no checkout, no git) finds its profiles, presets, poses and templates."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The project's wheel, unpacked as pip would install it (outside the checkout)."""
    # Build from a copy: setuptools writes build/ and *.egg-info into the source folder.
    source = tmp_path_factory.mktemp("source")
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("catalog", "configs", "pipelines", "flows", "webapp"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path_factory.mktemp("wheels")
    built = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(wheels), str(source)],
        capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert built.returncode == 0, built.stdout + built.stderr
    [wheel] = wheels.glob("onmodel-*.whl")
    site = tmp_path_factory.mktemp("site")
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    return site


def test_wheel_carries_configs_and_templates(installed: Path) -> None:
    for name in ("demo.yaml", "sd15.yaml", "sdxl.yaml", "presets.yaml", "poses/front.json", "__init__.py"):
        assert (installed / "configs" / name).is_file(), name
    assert (installed / "pipelines" / "production" / "templates" / "index.html.j2").is_file()
    assert not (installed / "tests").exists()


def test_installed_package_loads_its_configs_without_a_checkout(installed: Path, tmp_path: Path) -> None:
    code = (
        "import configs, pipelines.production.profile as p\n"
        "from pipelines.presets import load_presets\n"
        "from pipelines.poses import load_pose_library\n"
        "from pipelines.production.report import TEMPLATES\n"
        "assert configs.__file__.startswith(SITE), configs.__file__\n"
        "assert p.load_profile('demo').renderer_name == 'draft'\n"
        "assert 'amazon' in load_presets() and 'front' in load_pose_library()\n"
        "assert (TEMPLATES / 'index.html.j2').is_file()\n"
        "assert '+g' not in p.code_version(), p.code_version()\n"
        "print('ok', p.code_version())\n"
    ).replace("SITE", repr(str(installed)))
    env = {**os.environ, "PYTHONPATH": str(installed), "PATH": "/nonexistent"}  # no git on PATH either
    env.pop("ONMODEL_CONFIG_ROOT", None)
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.startswith("ok 0.")


def test_installed_package_creates_and_migrates_a_state_store(installed: Path, tmp_path: Path) -> None:
    """The Alembic migrations ship in the wheel: an installed onmodel opens a new store at the head."""
    assert (installed / "catalog" / "migrations" / "env.py").is_file()
    shipped = sorted(path.name for path in (installed / "catalog" / "migrations" / "versions").glob("0*.py"))
    assert shipped
    code = (
        "import catalog.state as s\n"
        "assert s.__file__.startswith(SITE), s.__file__\n"
        "store = s.open_job_store('state.sqlite')\n"
        "assert store.schema_version == s.SCHEMA_VERSION, store.schema_version\n"
        "store.record_failed('J', sku='A', image_hash='h', fingerprint='f', reason='x')\n"
        "assert store.requeue_failed() == 1\n"
        "print('ok', store.schema_version)\n"
    ).replace("SITE", repr(str(installed)))
    env = {**os.environ, "PYTHONPATH": str(installed)}
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"ok {len(shipped)}"  # one schema version per shipped migration


def test_config_root_can_point_elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from configs import CONFIG_ROOT_ENV, config_root
    from pipelines.production.profile import ProfileError, resolve_profile_path

    (tmp_path / "house.yaml").write_text((ROOT / "configs" / "demo.yaml").read_text())
    monkeypatch.setenv(CONFIG_ROOT_ENV, str(tmp_path))
    assert config_root() == tmp_path
    assert resolve_profile_path("house") == tmp_path / "house.yaml"
    with pytest.raises(ProfileError, match=f"one of: house \\(from {tmp_path}\\)"):
        resolve_profile_path("demo")
