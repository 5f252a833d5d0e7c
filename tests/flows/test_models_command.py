"""`onmodel models download PROFILE`: local folders verified, no hub access is a clear failure."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest
import yaml

from flows import models_command
from flows.cli import build_parser
from pipelines.testing.random_models import save_random_components


def parse(argv: list[str]) -> argparse.Namespace:
    """Parse with the real `onmodel` parser, so the subcommand's wiring is tested too."""
    args = build_parser().parse_args(argv)
    assert args.func is models_command.run
    return args


def write_profile(path: Path, models: dict[str, object]) -> Path:
    path.write_text(
        yaml.safe_dump({"renderer": {"name": "diffusion", "options": {"family": "sd15", "models": models}}})
    )
    return path


def test_local_profile_prints_local_shas(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    tiny = save_random_components(tmp_path, "sd15", "tiny")
    profile = write_profile(
        tmp_path / "p.yaml",
        {"inpaint": {"id": str(tiny["inpaint"])}, "controlnet_pose": {"id": str(tiny["controlnet"])}},
    )
    args = parse(["models", "download", str(profile)])
    assert args.func(args) == 0
    assert "controlnet_pose: " in capsys.readouterr().out


def test_offline_download_fails_with_the_fix(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = write_profile(tmp_path / "p.yaml", {"inpaint": {"id": "a/b"}, "controlnet_pose": {"id": "c/d"}})
    args = parse(
        [
            "models",
            "download",
            str(profile),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--endpoint",
            "http://127.0.0.1:9",
        ]
    )
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "Could not download 'c/d' (revision 'main'" in err and f"onmodel models download {profile}" in err


def test_profile_without_models_is_explained(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    profile = tmp_path / "demo.yaml"
    profile.write_text(yaml.safe_dump({"renderer": {"name": "draft", "options": {}}}))
    args = parse(["models", "download", str(profile)])
    assert args.func(args) == 2 and "names no models" in capsys.readouterr().err
