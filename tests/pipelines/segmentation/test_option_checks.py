"""check_segmentation_options: backend options refused or accepted without a segmenter, a model or rembg."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.segmentation import BACKENDS, QualityLimits, check_segmentation_options, get_segmenter
from pipelines.segmentation.options import KNOWN_MODELS

ROOT = Path(__file__).resolve().parents[3]
PROFILES = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "presets.yaml")


def test_rembg_check_imports_neither_rembg_nor_onnxruntime() -> None:
    code = (
        "import sys\n"
        "from pipelines.segmentation import check_segmentation_options\n"
        "check_segmentation_options('rembg', {'model': 'u2net_cloth_seg', 'cloth_category': 'upper',\n"
        "    'alpha_matting': True, 'threshold': 100}, 'cuda:0')\n"
        "check_segmentation_options('rembg', {'model': 'u2net_custom', 'model_path': '/no/such/cutter.onnx'})\n"
        "heavy = [m for m in ('rembg', 'onnxruntime', 'torch') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_passes(profile: Path) -> None:
    segmentation = yaml.safe_load(profile.read_text())["segmentation"]
    check_segmentation_options(segmentation["backend"], segmentation.get("options") or {}, "cuda:0")


@pytest.mark.parametrize(
    ("backend", "options"),
    [
        ("classical", {}),
        ("classical", {"work_side": 256, "alpha_matting": True, "edge_sigma": 2, "limits": QualityLimits()}),
        ("rembg", {}),
        ("rembg", {"model": "isnet-general-use", "threshold": 200}),
        ("rembg", {"model": "dis_custom", "model_path": Path("/elsewhere/dis.onnx")}),
        ("alpha", {"threshold": 255, "limits": None}),
    ],
)
def test_accepted_options(backend: str, options: dict[str, Any]) -> None:
    check_segmentation_options(backend, options)


def test_every_listed_rembg_model_is_accepted() -> None:
    for model in KNOWN_MODELS:
        check_segmentation_options("rembg", {"model": model, "model_path": "/models/x.onnx"})


@pytest.mark.parametrize(
    ("backend", "options", "device", "words"),
    [
        ("rembg", {"modle": "u2net"}, "cpu", r"\['modle'\].*did you mean 'model'.*'model_path'"),
        ("rembg", {"model": "sam"}, "cpu", "rembg model 'sam' is not supported; choose one of"),
        ("rembg", {"model": "u2net_custom"}, "cpu", "needs model_path="),
        ("rembg", {"model_path": 12}, "cpu", "model_path must be a path"),
        ("rembg", {"cloth_category": "hats"}, "cpu", "cloth_category must be one of"),
        ("rembg", {"threshold": 255}, "cpu", "threshold must be 1..254"),
        ("rembg", {"alpha_matting": "yes"}, "cpu", "alpha_matting must be true or false"),
        ("rembg", {}, "tpu", "device must be 'cpu', 'cuda' or 'cuda:N'"),
        ("classical", {"work_sid": 256}, "cpu", r"\['work_sid'\].*did you mean 'work_side'"),
        ("classical", {"work_side": 32}, "cpu", "work_side must be >= 64"),
        ("classical", {"work_side": 256.5}, "cpu", "work_side must be a whole number"),
        ("classical", {"edge_sigma": -1.0}, "cpu", "edge_sigma must be >= 0"),
        ("classical", {"limits": {"min_contrast": 4}}, "cpu", "limits must be a"),
        ("alpha", {"threshold": 0}, "cpu", "threshold must be 1..255"),
        ("alpha", {"model": "u2net"}, "cpu", r"unknown 'alpha' segmentation option\(s\) \['model'\]"),
    ],
)
def test_bad_options_name_the_option(backend: str, options: dict[str, Any], device: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_segmentation_options(backend, options, device)


def test_unknown_backend_is_refused_like_get_segmenter() -> None:
    with pytest.raises(ValueError, match=r"backend 'magic' is unknown; choose one of") as checked:
        check_segmentation_options("magic", {})
    with pytest.raises(ValueError) as built:
        get_segmenter("magic")
    assert str(checked.value) == str(built.value)
    assert set(BACKENDS) == {"classical", "rembg", "alpha"}


def test_get_segmenter_gives_the_checks_message() -> None:
    with pytest.raises(ValueError) as checked:
        check_segmentation_options("classical", {"work_sid": 256})
    with pytest.raises(ValueError) as built:
        get_segmenter("classical", work_sid=256)
    assert str(checked.value) == str(built.value)


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="segmentation.options must be a mapping"):
        check_segmentation_options("classical", "work_side=256")  # type: ignore[arg-type]
