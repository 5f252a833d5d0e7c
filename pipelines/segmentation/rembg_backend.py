"""rembg backend: rembg's own sessions and model lookup, with a missing model file refused before rembg downloads.

Offline machines never reach rembg's downloader: the file is looked up with rembg's own `resolve_existing` first,
and a missing one is a clear error naming the file rembg expects, U2NET_HOME and the command that fetches it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.segmentation.base import Segmentation
from pipelines.segmentation.matting import refine_alpha
from pipelines.segmentation.options import CLOTH_CATEGORIES, CUSTOM_MODELS, KNOWN_MODELS
from pipelines.segmentation.quality import QualityLimits, assess_quality, mask_bbox


def session_class(model: str) -> type[Any]:
    """rembg's registered session class for `model` (the registry rembg's `new_session` picks from)."""
    from rembg.sessions import sessions

    if model not in sessions:
        raise ValueError(f"rembg has no model named {model!r}; choose one of {KNOWN_MODELS}.")
    return sessions[model]


def model_file_name(model: str) -> str:
    """The file name rembg downloads and looks up for `model`."""
    # Every single-file rembg session names its file f"{cls.name()}.onnx" inside download_models; rembg has no
    # function that returns just the name, so this one line mirrors it.
    return f"{session_class(model).name()}.onnx"


def expected_model_file(model: str) -> Path:
    """Where rembg saves, and first looks for, `model`'s file: `<cls.model_dir()>/<name>.onnx`."""
    return Path(session_class(model).model_dir()) / model_file_name(model)


def missing_model_message(model: str) -> str:
    """The offline error for a model rembg cannot find: the paths, the env var and the fetch command."""
    fname = model_file_name(model)
    expected = expected_model_file(model)
    legacy = Path(session_class(model).legacy_home()) / fname
    fetch = f"python -c \"from rembg.bg import download_models; download_models(('{model}',))\""
    return (
        f"rembg model {model!r} is not on this machine: rembg looks for {expected} (then {legacy}), and "
        f"this run never downloads models. On a machine with network run `rembg d {model}` (needs "
        f"rembg[cli]) or {fetch}, then copy the {fname} it saved to {expected}; or set U2NET_HOME to a "
        f"folder holding {fname} (rembg then looks in $U2NET_HOME/models/{model}/ and $U2NET_HOME/); or "
        "pass model_path= with a local .onnx file."
    )


def resolve_model_file(model: str, model_path: str | os.PathLike[str] | None = None) -> Path:
    """The ONNX file for `model`: the explicit model_path, or the file rembg's `resolve_existing` finds."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ValueError(
                f"rembg model file {path} does not exist. Copy the {model!r} ONNX file there, or drop "
                "model_path to use the file rembg itself looks up (U2NET_HOME, then rembg's default home)."
            )
        return path
    if model in CUSTOM_MODELS:
        raise ValueError(f"rembg model {model!r} needs model_path= pointing at your .onnx file.")
    # rembg's own lookup (its per-model folder, then the legacy flat U2NET_HOME / ~/.u2net one), asked before
    # new_session: download_models would otherwise pooch-download a missing file without asking.
    existing = session_class(model).resolve_existing(model_file_name(model))
    if existing is None:
        raise ValueError(missing_model_message(model))
    return Path(existing)


def providers_for(device: str) -> list[Any]:
    """onnxruntime providers for a device string: 'cpu', 'cuda' or 'cuda:N'."""
    import onnxruntime as ort

    if device == "cpu":
        return ["CPUExecutionProvider"]
    if device == "cuda" or device.startswith("cuda:"):
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise ValueError(
                f"device {device!r} asks for CUDA but this onnxruntime has no CUDAExecutionProvider. "
                "Install the GPU extra (pip install 'onmodel[gpu]', which brings onnxruntime-gpu) or use device='cpu'."
            )
        index = int(device.split(":", 1)[1]) if ":" in device else 0
        return [("CUDAExecutionProvider", {"device_id": index}), "CPUExecutionProvider"]
    raise ValueError(f"device must be 'cpu', 'cuda' or 'cuda:N'; got {device!r}.")


def build_session(model: str, model_file: Path, providers: list[Any], explicit: bool) -> Any:
    """A new rembg session for `model` on `providers`; the caller owns it (flows/caches.py caches segmenters)."""
    if not explicit:
        from rembg import new_session

        # model_file came from rembg's resolve_existing, which download_models asks first: no download here.
        return new_session(model, providers=providers)
    import onnxruntime as ort

    # An explicit file loads through rembg's own class for `model` (its pre- and post-processing), with
    # download_models pinned to that file: rembg's validate_model_path would refuse a file outside its model
    # folders, and the release-model classes ignore model_path and would look up (or download) their own file.
    pinned = type(
        f"Local{session_class(model).__name__}",
        (session_class(model),),
        {"download_models": classmethod(lambda cls, *args, **kwargs: str(model_file))},
    )
    return pinned(model, ort.SessionOptions(), providers=providers, model_path=str(model_file))


class RembgSegmenter:
    """rembg model backend; each segmenter loads and holds its own session in __init__."""

    name = "rembg"

    def __init__(
        self,
        device: str = "cpu",
        model: str = "u2net",
        model_path: str | os.PathLike[str] | None = None,
        cloth_category: str = "full",
        alpha_matting: bool = False,
        threshold: int = 128,
        limits: QualityLimits | None = None,
    ) -> None:
        if model not in KNOWN_MODELS:
            raise ValueError(f"rembg model {model!r} is not supported; choose one of {KNOWN_MODELS}.")
        if model == "u2net_cloth_seg" and cloth_category not in CLOTH_CATEGORIES:
            raise ValueError(f"cloth_category must be one of {CLOTH_CATEGORIES}; got {cloth_category!r}.")
        if not 1 <= threshold <= 254:
            raise ValueError(
                f"threshold must be 1..254 (alpha level that counts as garment); got {threshold}."
            )
        self.model = model
        self.cloth_category = cloth_category
        self.alpha_matting = alpha_matting
        self.threshold = threshold
        self.limits = limits
        self.model_file = resolve_model_file(model, model_path)
        self.session = build_session(model, self.model_file, providers_for(device), model_path is not None)

    def __call__(self, image: np.ndarray) -> Segmentation:
        """Cut one RGB uint8 image (H, W, 3)."""
        from PIL import Image

        if (
            not isinstance(image, np.ndarray)
            or image.ndim != 3
            or image.shape[2] != 3
            or image.dtype != np.uint8
        ):
            raise ValueError(
                f"image must be uint8 RGB (H, W, 3); got {getattr(image, 'dtype', type(image))} "
                f"{getattr(image, 'shape', '')}. Use the 'alpha' backend for cut-out RGBA PNGs."
            )
        # 1. The model's soft mask at the image size (u2net_cloth_seg: one category's mask).
        masks = self.session.predict(Image.fromarray(image), cloth_category=self.cloth_category)
        alpha = np.asarray(masks[0].convert("L").resize((image.shape[1], image.shape[0])), dtype=np.uint8)
        # 2. Optional matting for soft edges, then the hard mask.
        if self.alpha_matting:
            alpha = refine_alpha(image, alpha)
        mask = np.where(alpha >= self.threshold, 255, 0).astype(np.uint8)
        # 3. Shared quality flags.
        flags, details = assess_quality(image, mask, self.limits)
        cutout = np.dstack([image, alpha])
        return Segmentation(cutout=cutout, mask=mask, flags=flags, bbox=mask_bbox(mask), details=details)
