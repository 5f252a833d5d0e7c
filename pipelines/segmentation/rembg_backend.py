"""rembg backend: any rembg ONNX model, one session per process, model files checked before rembg downloads.

Offline machines never reach rembg's downloader: the model file is looked up first and a missing one is a
clear error naming the file and the folder to put it in.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path
from typing import Any

import numpy as np

from pipelines.segmentation.base import Segmentation
from pipelines.segmentation.matting import refine_alpha
from pipelines.segmentation.options import CLOTH_CATEGORIES, KNOWN_MODELS
from pipelines.segmentation.quality import QualityLimits, assess_quality, mask_bbox

_SESSIONS: dict[tuple[str, str, tuple[str, ...]], Any] = {}
_SESSIONS_LOCK = threading.Lock()


def rembg_home() -> Path:
    """rembg's model home as rembg itself resolves it (U2NET_HOME wins, then REMBG_HOME, then ~/.rembg)."""
    if os.getenv("U2NET_HOME"):
        return Path(os.path.expanduser(os.environ["U2NET_HOME"]))
    xdg = os.getenv("XDG_DATA_HOME")
    default = os.path.join(xdg, "rembg") if xdg else os.path.join("~", ".rembg")
    return Path(os.path.expanduser(os.getenv("REMBG_HOME", default)))


def resolve_model_file(model: str, model_path: str | os.PathLike[str] | None = None) -> Path:
    """The ONNX file for `model`: the explicit path, or `<home>/models/<model>/<model>.onnx`, or `<home>/<model>.onnx`."""
    if model_path is not None:
        path = Path(model_path).expanduser()
        if not path.is_file():
            raise ValueError(
                f"rembg model file {path} does not exist. Copy the {model!r} ONNX file there, or drop model_path "
                f"to use rembg's model home ({rembg_home()})."
            )
        return path
    if model in ("u2net_custom", "dis_custom"):
        raise ValueError(f"rembg model {model!r} needs model_path= pointing at your .onnx file.")
    home = rembg_home()
    candidates = [home / "models" / model / f"{model}.onnx", home / f"{model}.onnx"]
    for path in candidates:
        if path.is_file():
            return path
    raise ValueError(
        f"rembg model file {model}.onnx is not on this machine (looked in {candidates[0].parent} and {home}). "
        f"This machine cannot download it: fetch {model}.onnx from the rembg releases elsewhere and put it in "
        f"{candidates[0].parent}, or set U2NET_HOME to the folder holding it, or pass model_path=."
    )


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


def get_session(model: str, model_file: Path, providers: list[Any]) -> Any:
    """One rembg session per (model, file, providers) per process; later calls reuse it."""
    key = (model, str(model_file.resolve()), tuple(str(p) for p in providers))
    with _SESSIONS_LOCK:
        if key not in _SESSIONS:
            import onnxruntime as ort
            from rembg.sessions import sessions_class

            session_class = next((c for c in sessions_class if c.name() == model), None)
            if session_class is None:
                raise ValueError(f"rembg has no model named {model!r}; choose one of {KNOWN_MODELS}.")
            # A subclass that loads our already-checked file, so rembg never tries a download.
            local_class = type(
                f"Local{session_class.__name__}",
                (session_class,),
                {"download_models": classmethod(lambda cls, *a, **k: str(model_file))},
            )
            _SESSIONS[key] = local_class(
                model, ort.SessionOptions(), providers=providers, model_path=str(model_file)
            )
        return _SESSIONS[key]


class RembgSegmenter:
    """rembg model backend; the session loads once in __init__ and is shared by every segmenter in the process."""

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
        self.session = get_session(model, self.model_file, providers_for(device))

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
