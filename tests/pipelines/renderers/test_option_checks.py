"""check_renderer_options: a profile's renderer options refused or accepted before torch or any weights load."""

from __future__ import annotations

import copy
import pathlib
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from pipelines.renderers import RENDERERS, check_renderer_options, create_renderer
from tests.pipelines.renderers.tiny_models import tiny_options

ROOT = Path(__file__).resolve().parents[3]
PROFILES = sorted(p for p in (ROOT / "configs").glob("*.yaml") if p.name != "presets.yaml")
# Folders that do not exist: the check must never look at the filesystem.
NOWHERE = {
    "inpaint": Path("/nonexistent/inpaint"),
    "controlnet": Path("/nonexistent/controlnet"),
    "controlnet_garment": Path("/nonexistent/garment"),
}


def sd15_options() -> dict[str, Any]:
    """The sd15 profile's renderer options, as a run reads them."""
    return copy.deepcopy(yaml.safe_load((ROOT / "configs" / "sd15.yaml").read_text())["renderer"]["options"])


def run_isolated(code: str) -> None:
    """Run code in a fresh interpreter at the repository root, so sys.modules shows only what it imported."""
    result = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-2000:]


def test_sd15_profile_check_imports_neither_torch_nor_diffusers() -> None:
    run_isolated(
        "import sys, yaml\n"
        "from pipelines.renderers import check_renderer_options\n"
        "options = yaml.safe_load(open('configs/sd15.yaml'))['renderer']['options']\n"
        "check_renderer_options('diffusion', options, 'cuda:0')\n"
        "heavy = [m for m in ('torch', 'diffusers', 'huggingface_hub') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )


def test_a_typo_fails_in_create_renderer_before_torch_is_imported() -> None:
    run_isolated(
        "import sys, yaml\n"
        "from pipelines.renderers import create_renderer\n"
        "options = yaml.safe_load(open('configs/sd15.yaml'))['renderer']['options']\n"
        "options['stepz'] = 30\n"
        "try:\n"
        "    create_renderer('diffusion', options, 'cuda:0')\n"
        "except ValueError as error:\n"
        "    assert 'stepz' in str(error), error\n"
        "else:\n"
        "    raise AssertionError('a typo was accepted')\n"
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules\n"
    )


@pytest.mark.parametrize("profile", PROFILES, ids=lambda p: p.stem)
def test_every_profile_passes(profile: Path) -> None:
    renderer = yaml.safe_load(profile.read_text())["renderer"]
    check_renderer_options(renderer["name"], renderer.get("options") or {}, "cuda:0")


@pytest.mark.parametrize(
    "options",
    [
        tiny_options(NOWHERE),
        tiny_options(NOWHERE, garment=False),
        tiny_options(NOWHERE, garment=False, max_attempts=2),
        tiny_options(NOWHERE, family="sdxl"),
    ],
    ids=["sd15", "pose-only", "max-attempts", "sdxl"],
)
def test_tiny_test_options_pass_on_cpu(options: dict[str, Any]) -> None:
    check_renderer_options("diffusion", options, "cpu")


def test_the_check_never_touches_the_filesystem(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: Any, **kwargs: Any) -> bool:
        raise AssertionError("the option check looked at the filesystem")

    for name in ("exists", "is_dir", "is_file", "stat"):
        monkeypatch.setattr(pathlib.Path, name, refuse)
    check_renderer_options("diffusion", sd15_options(), "cuda:0")


@pytest.mark.parametrize(
    ("change", "device", "words"),
    [
        ({"fuse_qkv": True, "attention": "eager"}, "cuda:0", "cannot be combined with attention: eager"),
        ({"stepz": 30}, "cuda:0", r"\['stepz'\].*did you mean 'steps'"),
        ({"scheduler": {"name": "plms2"}}, "cuda:0", "scheduler.name must be one of"),
        ({"scheduler": {"nam": "ddim"}}, "cuda:0", r"\['nam'\] in scheduler"),
        ({}, "cpu", "dtype float16 needs a CUDA device"),
        ({"dtype": "float8"}, "cuda:0", "dtype must be one of"),
        ({"compile": False}, "cuda:0", 'quote it: compile: "off"'),
        ({"steps": 0}, "cuda:0", "steps must be >= 1"),
        ({"steps": "many"}, "cuda:0", "steps must be a whole number"),
        ({"channels_last": "false"}, "cuda:0", "channels_last must be true or false"),
        ({"guidance_scale": -1}, "cuda:0", "guidance_scale must be a number >= 0"),
        ({"controlnet_scales": {"garmnet": 0.5}}, "cuda:0", r"\['garmnet'\] in controlnet_scales"),
        ({"resolution": {"width": 512}}, "cuda:0", "resolution must be null"),
        ({"resolution": {"width": 500, "height": 768}}, "cuda:0", "multiples of 8"),
        ({"prompts": {"template": "a {colour} shirt"}}, "cuda:0", r"placeholder\(s\) \['colour'\]"),
        ({"diversity": [{"age": "adult", "hiar": "red"}]}, "cuda:0", r"\['hiar'\] in diversity\[0\]"),
        ({"family": "sd3"}, "cuda:0", "family must be one of"),
        ({"models": None}, "cuda:0", "renderer options need models"),
    ],
)
def test_bad_options_name_the_option(change: dict[str, Any], device: str, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        check_renderer_options("diffusion", {**sd15_options(), **change}, device)


@pytest.mark.parametrize(
    ("role", "entry", "words"),
    [
        ("controlnet_pose", {"revision": "main"}, "models.controlnet_pose needs an id"),
        ("inpaint", None, "models.inpaint cannot be null"),
        ("inpaint", {"id": 15}, "models.inpaint.id must be a string"),
        ("inpaint", {"id": "org/model", "revison": "main"}, r"\['revison'\] in models.inpaint"),
        ("inpaint", {"id": "org/model", "variant": 16}, "models.inpaint.variant must be a string"),
        ("controlnet_garmnet", {"id": "org/model"}, r"\['controlnet_garmnet'\] in models"),
    ],
)
def test_bad_models_entries_name_the_entry(role: str, entry: Any, words: str) -> None:
    options = sd15_options()
    options["models"][role] = entry
    with pytest.raises(ValueError, match=words):
        check_renderer_options("diffusion", options, "cuda:0")


def test_garment_controlnet_may_be_null() -> None:
    options = sd15_options()
    options["models"]["controlnet_garment"] = None
    check_renderer_options("diffusion", options, "cuda:0")


def test_unknown_renderer_is_refused_like_create_renderer() -> None:
    with pytest.raises(
        ValueError, match="unknown renderer 'dall-e'; choose one of: diffusion, draft"
    ) as checked:
        check_renderer_options("dall-e", {})
    with pytest.raises(ValueError) as created:
        create_renderer("dall-e", {})
    assert str(checked.value) == str(created.value)
    assert set(RENDERERS) == {"draft", "diffusion"}


def test_draft_options_use_the_draft_check() -> None:
    check_renderer_options("draft", {"floor_shadow": False, "skin_tones": ["#E9C6A9"]})
    with pytest.raises(ValueError, match="unknown draft renderer option"):
        check_renderer_options("draft", {"floor_shadows": False})
    with pytest.raises(ValueError, match="'#RRGGBB' colour"):
        check_renderer_options("draft", {"backdrops": ["grey"]})


def test_options_must_be_a_mapping() -> None:
    with pytest.raises(ValueError, match="renderer.options must be a mapping"):
        check_renderer_options("diffusion", ["steps", 25])  # type: ignore[arg-type]


def test_loader_tables_match_the_torch_free_names() -> None:
    from pipelines.renderers import diffusion, diffusion_options

    assert set(diffusion.SCHEDULERS) == set(diffusion_options.SCHEDULER_NAMES)
    assert set(diffusion.DTYPES) == set(diffusion_options.DTYPE_NAMES)
    # Existing callers keep importing the check and its result from the renderer module.
    assert diffusion.check_inputs is diffusion_options.check_inputs
    assert diffusion.DiffusionSettings is diffusion_options.DiffusionSettings
