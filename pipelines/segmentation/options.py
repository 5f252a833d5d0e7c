"""Segmentation backend options checked without building a segmenter, loading a model or importing rembg.

The rembg model names live here, not in rembg_backend.py, so a profile check never depends on the rembg
backend module (or the optional rembg / onnxruntime install behind it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping, Sequence
from typing import Any

from pipelines.option_keys import unknown_keys
from pipelines.segmentation.quality import QualityLimits

# Models whose weights are one `<name>.onnx` file in rembg's model home (sam needs two; not a garment cutter).
KNOWN_MODELS = (
    "u2net",
    "u2netp",
    "u2net_human_seg",
    "u2net_cloth_seg",
    "silueta",
    "isnet-general-use",
    "isnet-anime",
    "birefnet-general",
    "birefnet-general-lite",
    "birefnet-portrait",
    "birefnet-dis",
    "birefnet-hrsod",
    "birefnet-cod",
    "birefnet-massive",
    "bria-rmbg",
    "u2net_custom",
    "dis_custom",
)
CUSTOM_MODELS = ("u2net_custom", "dis_custom")  # no release file: the user's own .onnx via model_path
CLOTH_CATEGORIES = ("upper", "lower", "full", "attire")
REMBG_OPTION_NAMES = ("model", "model_path", "cloth_category", "alpha_matting", "threshold", "limits")
ALPHA_OPTION_NAMES = ("threshold", "limits")


class UnknownOptionError(ValueError):
    """An option a backend does not take; the message lists the ones it does."""


def classical_option_names() -> tuple[str, ...]:
    """Every keyword ClassicalSegmenter takes: the ClassicalOptions fields and the quality limits."""
    from pipelines.segmentation.classical import ClassicalOptions

    return (*(f.name for f in dataclasses.fields(ClassicalOptions)), "limits")


def _check_names(backend: str, options: Mapping[str, Any], known: Sequence[str]) -> None:
    """Refuse option names the backend does not take, suggesting the closest one for a typo."""
    unknown, hint = unknown_keys(options, known)
    if not unknown:
        return
    raise UnknownOptionError(
        f"unknown {backend!r} segmentation option(s) {unknown}{hint}; the {backend} backend takes "
        f"{sorted(known)} (profile: segmentation.options)."
    )


def _check_limits(options: Mapping[str, Any]) -> None:
    """limits is built in code: a QualityLimits, or null for the defaults."""
    limits = options.get("limits")
    if limits is not None and not isinstance(limits, QualityLimits):
        raise ValueError(
            "limits must be a pipelines.segmentation.quality.QualityLimits (e.g. QualityLimits(min_contrast=4.0)) "
            f"or null for the defaults; got {type(limits).__name__}."
        )


def _whole(options: Mapping[str, Any], key: str, default: int) -> int:
    """An integer option; a bool or fractional value is refused, not silently truncated."""
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{key} must be a whole number such as {default}; got {value!r}.")
    return value


def _check_flag(options: Mapping[str, Any], key: str) -> None:
    """A yes/no option must be a real bool: the string 'false' would otherwise switch it on."""
    if key in options and not isinstance(options[key], bool):
        raise ValueError(f"{key} must be true or false; got {options[key]!r}.")


def check_classical_options(options: Mapping[str, Any], device: str = "cpu") -> None:
    """ClassicalOptions fields with the type of their default, never negative, work_side >= 64 (CPU only)."""
    from pipelines.segmentation.classical import ClassicalOptions

    _check_names("classical", options, classical_option_names())
    _check_limits(options)
    for spec in dataclasses.fields(ClassicalOptions):
        if spec.name not in options:
            continue
        value, default = options[spec.name], spec.default
        if isinstance(default, bool):
            _check_flag(options, spec.name)
            continue
        whole = isinstance(default, int)
        if isinstance(value, bool) or not isinstance(value, int if whole else int | float):
            kind = "a whole number" if whole else "a number"
            raise ValueError(f"{spec.name} must be {kind} such as {default}; got {value!r}.")
        if value < 0:
            raise ValueError(f"{spec.name} must be >= 0 (default {default}); got {value}.")
    work_side = options.get("work_side", ClassicalOptions.work_side)
    if work_side < 64:
        raise ValueError(f"work_side must be >= 64 px; got {work_side}.")


def check_device(device: str) -> None:
    """The device strings onnxruntime providers are chosen from: 'cpu', 'cuda' or 'cuda:N'."""
    text = str(device)
    index = text.split(":", 1)[1] if text.startswith("cuda:") else "0"
    if text not in ("cpu", "cuda") and not (text.startswith("cuda:") and index.isdigit()):
        raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")


def check_rembg_options(options: Mapping[str, Any], device: str = "cpu") -> None:
    """Model name, model_path type, cloth category, threshold and device; no file is opened."""
    _check_names("rembg", options, REMBG_OPTION_NAMES)
    _check_limits(options)
    model = options.get("model", "u2net")
    if not isinstance(model, str) or model not in KNOWN_MODELS:
        raise ValueError(f"rembg model {model!r} is not supported; choose one of {KNOWN_MODELS}.")
    model_path = options.get("model_path")
    if model_path is not None and not isinstance(model_path, str | os.PathLike):
        raise ValueError(
            f"model_path must be a path to an .onnx file (e.g. /models/my_cutter.onnx); got {model_path!r}."
        )
    if model in CUSTOM_MODELS and model_path is None:
        raise ValueError(f"rembg model {model!r} needs model_path= pointing at your .onnx file.")
    cloth_category = options.get("cloth_category", "full")
    if cloth_category not in CLOTH_CATEGORIES:
        raise ValueError(f"cloth_category must be one of {CLOTH_CATEGORIES}; got {cloth_category!r}.")
    _check_flag(options, "alpha_matting")
    threshold = _whole(options, "threshold", 128)
    if not 1 <= threshold <= 254:
        raise ValueError(f"threshold must be 1..254 (alpha level that counts as garment); got {threshold}.")
    check_device(device)


def check_alpha_options(options: Mapping[str, Any], device: str = "cpu") -> None:
    """threshold 1..255 and the quality limits; any device (nothing runs on it)."""
    _check_names("alpha", options, ALPHA_OPTION_NAMES)
    _check_limits(options)
    threshold = _whole(options, "threshold", 128)
    if not 1 <= threshold <= 255:
        raise ValueError(f"threshold must be 1..255; got {threshold}.")
