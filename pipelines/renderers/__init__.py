"""Renderer registry: a name from the run profile -> a loaded Renderer; heavy imports only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from pipelines.renderers.base import RenderedImage, Renderer, RenderJob

# name -> "module:Class"; imported lazily so the draft renderer never loads torch or diffusers.
RENDERERS: dict[str, str] = {
    "draft": "pipelines.renderers.draft:DraftRenderer",
    "diffusion": "pipelines.renderers.diffusion:DiffusionRenderer",
}

__all__ = ["RENDERERS", "RenderJob", "RenderedImage", "Renderer", "create_renderer"]


def create_renderer(name: str, options: Mapping[str, Any], device: str = "cpu") -> Renderer:
    """Build the named renderer from the profile's renderer options on a device ("cpu", "cuda:0")."""
    if name not in RENDERERS:
        raise ValueError(f"unknown renderer {name!r}; choose one of: {', '.join(sorted(RENDERERS))}.")
    module_name, class_name = RENDERERS[name].split(":")
    renderer_class = getattr(importlib.import_module(module_name), class_name)
    return renderer_class.from_options(dict(options or {}), device)
