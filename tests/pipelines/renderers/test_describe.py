"""A renderer's description is known before it loads: what the config fingerprint hashes is what it records."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipelines.renderers import IDENTITIES, RENDERERS, describe_renderer
from tests.pipelines.renderers.tiny_models import tiny_options


def test_every_renderer_has_an_identity() -> None:
    assert set(IDENTITIES) == set(RENDERERS)


def test_diffusion_identity_is_what_the_loaded_renderer_describes(
    sd15_renderer: Any, tiny_sd15: dict[str, Path]
) -> None:
    described = describe_renderer("diffusion", tiny_options(tiny_sd15), "cpu")
    assert described == sd15_renderer.describe()
    assert described["models"]["inpaint"]["commit"] == "local"


def test_identity_checks_the_options_first() -> None:
    with pytest.raises(ValueError, match="steps"):
        describe_renderer("diffusion", {"steps": 0, "models": {}}, "cpu")
