"""The renderer registry: names to classes, lazy heavy imports."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from pipelines.renderers import RENDERERS, create_renderer
from pipelines.renderers.draft import DraftRenderer

ROOT = Path(__file__).resolve().parents[3]


def test_create_draft_renderer_with_options() -> None:
    renderer = create_renderer("draft", {"floor_shadow": False})
    assert isinstance(renderer, DraftRenderer) and renderer.name == "draft"
    assert renderer.floor_shadow is False


def test_unknown_renderer_lists_the_names() -> None:
    with pytest.raises(ValueError, match="choose one of: diffusion, draft"):
        create_renderer("dall-e", {})
    assert set(RENDERERS) == {"draft", "diffusion"}


def test_draft_never_imports_torch() -> None:
    code = (
        "import sys; from pipelines.renderers import create_renderer; create_renderer('draft', {}, 'cpu'); "
        "assert 'torch' not in sys.modules and 'diffusers' not in sys.modules, 'heavy import'"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True, timeout=120)
