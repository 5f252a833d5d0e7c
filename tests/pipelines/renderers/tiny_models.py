"""Helpers shared by the diffusion tests and their subprocess: tiny renderer options, a printed garment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import cv2
import numpy as np


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
