"""Tiny random SD 1.5 / SDXL components, built once per test session (no hub access, no weights)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipelines.masks import build_masks
from pipelines.renderers.base import RenderJob


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny random SD 1.5 inpaint pipeline and two ControlNets."""
    from pipelines.renderers.random_models import save_random_components

    return save_random_components(tmp_path_factory.mktemp("sd15"), "sd15", "tiny")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny random SDXL inpaint pipeline and two ControlNets."""
    from pipelines.renderers.random_models import save_random_components

    return save_random_components(tmp_path_factory.mktemp("sdxl"), "sdxl", "tiny")


def tiny_options(
    paths: dict[str, Path], family: str = "sd15", garment: bool = True, **extra: Any
) -> dict[str, Any]:
    """Renderer options pointing at the tiny folders: float32, 2 steps."""
    models: dict[str, Any] = {
        "inpaint": {"id": str(paths["inpaint"]), "revision": "main"},
        "controlnet_pose": {"id": str(paths["controlnet"]), "revision": "main"},
        "controlnet_garment": {"id": str(paths["controlnet_garment"])} if garment else None,
    }
    return {
        "family": family,
        "models": models,
        "dtype": "float32",
        "steps": 2,
        "channels_last": False,
        **extra,
    }


@pytest.fixture(scope="session")
def sd15_renderer(tiny_sd15: dict[str, Path]) -> Any:
    """One loaded tiny SD 1.5 renderer shared by the read-only tests."""
    from pipelines.renderers.diffusion import DiffusionRenderer

    return DiffusionRenderer.from_options(tiny_options(tiny_sd15), "cpu")


def printed_garment(size: int = 64, seed: int = 0) -> np.ndarray:
    """A synthetic placed garment with fine printed text and noise: RGBA uint8 on a transparent canvas."""
    rng = np.random.default_rng(seed)
    rgba = np.zeros((size, size, 4), np.uint8)
    top, bottom, left, right = size // 4, size * 3 // 4, size // 4 + 2, size * 3 // 4 - 2
    rgba[top:bottom, left:right, :3] = rng.integers(180, 255, (bottom - top, right - left, 3), dtype=np.uint8)
    text = np.ascontiguousarray(rgba[..., :3])
    cv2.putText(
        text, "ABC", (left + 1, size // 2 + 2), cv2.FONT_HERSHEY_PLAIN, 0.6, (10, 20, 200), 1, cv2.LINE_AA
    )
    rgba[..., :3] = text
    rgba[top:bottom, left:right, 3] = 255
    rgba[rgba[..., 3] == 0, :3] = 0
    return rgba


@pytest.fixture
def make_job() -> Callable[..., RenderJob]:
    """Build a RenderJob from a synthetic printed garment (sku, variant and seed adjustable)."""

    def build(
        sku: str = "SKU-1", variant: int = 0, seed: int = 7, size: int = 64, **fields: Any
    ) -> RenderJob:
        rgba = printed_garment(size, seed=variant)
        masks = build_masks(rgba[..., 3], erode_px=2, feather_px=3)
        control = np.zeros((size, size, 3), np.uint8)
        cv2.line(control, (size // 2, 4), (size // 2, size - 4), (255, 0, 0), 2)
        values: dict[str, Any] = {
            "job_id": f"{sku}-front-{variant}",
            "sku": sku,
            "pose": "front",
            "variant": variant,
            "seed": seed,
            "placed_rgba": rgba,
            "garment_mask": masks.garment_mask,
            "inpaint_mask": masks.inpaint_mask,
            "keep_mask": masks.keep_mask,
            "control_image": control,
            "keypoints": np.zeros((18, 3), np.float32),
            "attributes": {"title": "logo tee", "color": "white", "gender": "female", "category": "t-shirts"},
        }
        values.update(fields)
        return RenderJob(**values)

    return build
