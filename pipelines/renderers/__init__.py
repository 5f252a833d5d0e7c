"""Renderer registry: a name from the run profile -> a loaded Renderer; heavy imports only when chosen."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from pipelines.renderers.base import RenderedImage, Renderer, RenderJob

# name -> "module:Class"; imported lazily so the draft renderer never loads torch or diffusers.
RENDERERS: dict[str, str] = {
    "draft": "pipelines.renderers.draft:DraftRenderer",
    "diffusion": "pipelines.renderers.diffusion:DiffusionRenderer",
}

__all__ = [
    "OPTION_CHECKS",
    "RENDERERS",
    "RenderJob",
    "RenderedImage",
    "Renderer",
    "IDENTITIES",
    "check_renderer_options",
    "create_renderer",
    "describe_renderer",
]


def _check_draft(options: Mapping[str, Any], device: str) -> None:
    """The draft renderer's option check (it runs on the CPU whatever the device)."""
    from pipelines.renderers.draft import check_inputs

    check_inputs(options)


def _check_diffusion(options: Mapping[str, Any], device: str) -> None:
    """The diffusion renderer's option check, from its torch-free module."""
    from pipelines.renderers.diffusion_options import check_inputs

    check_inputs(options, device)


# name -> option check; each imports only its torch-free module, so a run is validated before any load.
OPTION_CHECKS: dict[str, Callable[[Mapping[str, Any], str], None]] = {
    "draft": _check_draft,
    "diffusion": _check_diffusion,
}
if set(OPTION_CHECKS) != set(RENDERERS):  # a renderer without a check would skip validation silently
    raise RuntimeError(
        f"every renderer needs an option check: {sorted(RENDERERS)} vs {sorted(OPTION_CHECKS)}."
    )


def check_renderer_options(name: str, options: Mapping[str, Any], device: str = "cpu") -> None:
    """Validate a profile's renderer name and options without loading weights or importing torch."""
    if name not in RENDERERS:
        raise ValueError(f"unknown renderer {name!r}; choose one of: {', '.join(sorted(RENDERERS))}.")
    if options is not None and not isinstance(options, Mapping):
        raise ValueError(
            f"renderer.options must be a mapping (e.g. options: {{steps: 25}}); got {type(options).__name__}."
        )
    OPTION_CHECKS[name](dict(options or {}), device)


def _describe_draft(options: Mapping[str, Any], device: str) -> dict[str, Any]:
    from pipelines.renderers.draft import DraftRenderer

    return DraftRenderer.from_options(options, device).describe()  # no weights: building it is free


def _describe_diffusion(options: Mapping[str, Any], device: str) -> dict[str, Any]:
    from pipelines.renderers.diffusion_options import identity

    return identity(options, device)


# name -> what the renderer's describe() will say, without loading weights (for the config fingerprint).
IDENTITIES: dict[str, Callable[[Mapping[str, Any], str], dict[str, Any]]] = {
    "draft": _describe_draft,
    "diffusion": _describe_diffusion,
}
if set(IDENTITIES) != set(RENDERERS):  # a renderer without one would leave its pixels out of the fingerprint
    raise RuntimeError(f"every renderer needs an identity: {sorted(RENDERERS)} vs {sorted(IDENTITIES)}.")


def describe_renderer(name: str, options: Mapping[str, Any], device: str = "cpu") -> dict[str, Any]:
    """The renderer's describe() (model ids, resolved commits, settings) before it is loaded."""
    check_renderer_options(name, options, device)
    return IDENTITIES[name](dict(options or {}), device)


def create_renderer(name: str, options: Mapping[str, Any], device: str = "cpu") -> Renderer:
    """Build the named renderer from the profile's renderer options on a device ("cpu", "cuda:0")."""
    # Checked first so a typo fails before the renderer's heavy imports and weight loads.
    check_renderer_options(name, options, device)
    module_name, class_name = RENDERERS[name].split(":")
    renderer_class = getattr(importlib.import_module(module_name), class_name)
    return renderer_class.from_options(dict(options or {}), device)
