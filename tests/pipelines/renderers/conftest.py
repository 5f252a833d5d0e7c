"""Tiny random SD 1.5 / SDXL components, built once per test session (no hub access, no weights)."""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest

from pipelines.masks import build_masks
from pipelines.renderers.base import RenderJob
from tests.pipelines.renderers.tiny_models import printed_garment, tiny_options

if os.environ.get("PYTEST_XDIST_WORKER"):
    import torch

    # Each xdist worker would start a torch thread per core: with -n 2 on 2 cores they oversubscribe them and
    # the tiny renders run 10-30x slower. One thread per worker keeps every core busy without contention.
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny random SD 1.5 inpaint pipeline and two ControlNets."""
    from pipelines.testing.random_models import save_random_components

    return save_random_components(tmp_path_factory.mktemp("sd15"), "sd15", "tiny")


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Folders of a tiny random SDXL inpaint pipeline and two ControlNets."""
    from pipelines.testing.random_models import save_random_components

    return save_random_components(tmp_path_factory.mktemp("sdxl"), "sdxl", "tiny")


@pytest.fixture(scope="session", params=["sd15", "sdxl"])
def tiny_four_channel(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> tuple[str, dict[str, Path]]:
    """(family, folders) of the tiny pipeline with a 4-channel (non-inpainting) UNet instead of 9-channel."""
    import torch
    from diffusers import UNet2DConditionModel

    paths: dict[str, Path] = request.getfixturevalue(f"tiny_{request.param}")
    inpaint = tmp_path_factory.mktemp(f"{request.param}-4ch") / "inpaint"
    shutil.copytree(paths["inpaint"], inpaint, ignore=shutil.ignore_patterns("unet"))
    config = {**UNet2DConditionModel.load_config(paths["inpaint"] / "unet"), "in_channels": 4}
    torch.manual_seed(0)
    UNet2DConditionModel.from_config(config).save_pretrained(inpaint / "unet")
    return request.param, {**paths, "inpaint": inpaint}


@pytest.fixture(scope="session")
def sd15_renderer(tiny_sd15: dict[str, Path]) -> Any:
    """One loaded tiny SD 1.5 renderer shared by the read-only tests."""
    from pipelines.renderers.diffusion import DiffusionRenderer

    return DiffusionRenderer.from_options(tiny_options(tiny_sd15), "cpu")


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
