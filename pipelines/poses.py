"""The pose library (OpenPose-18 keypoints in JSON) and its rendering into a ControlNet control image."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from configs import config_root

KEYPOINT_NAMES: tuple[str, ...] = (
    "nose", "neck", "r_shoulder", "r_elbow", "r_wrist", "l_shoulder", "l_elbow", "l_wrist", "r_hip", "r_knee",
    "r_ankle", "l_hip", "l_knee", "l_ankle", "r_eye", "l_eye", "r_ear", "l_ear",
)  # fmt: skip
GARMENT_CLASSES = frozenset({"upper_body", "lower_body", "full_body"})

# The OpenPose body drawing ControlNet's openpose models were trained on (lllyasviel's annotator, 1-based
# keypoint pairs turned 0-based here): 17 limbs, 18 colours in RGB, limbs dimmed to 60 %, joints full colour.
LIMB_PAIRS: tuple[tuple[int, int], ...] = (
    (1, 2), (1, 5), (2, 3), (3, 4), (5, 6), (6, 7), (1, 8), (8, 9), (9, 10), (1, 11), (11, 12), (12, 13),
    (1, 0), (0, 14), (14, 16), (0, 15), (15, 17),
)  # fmt: skip
OPENPOSE_COLORS: tuple[tuple[int, int, int], ...] = (
    (255, 0, 0), (255, 85, 0), (255, 170, 0), (255, 255, 0), (170, 255, 0), (85, 255, 0), (0, 255, 0),
    (0, 255, 85), (0, 255, 170), (0, 255, 255), (0, 170, 255), (0, 85, 255), (0, 0, 255), (85, 0, 255),
    (170, 0, 255), (255, 0, 255), (255, 0, 170), (255, 0, 85),
)  # fmt: skip
LIMB_BRIGHTNESS = 0.6
REFERENCE_SIDE = 512  # stick width 4 and joint radius 4 are the annotator's sizes at 512 px


@dataclass(frozen=True)
class Pose:
    """One library pose: keypoints (18, 3) as x / width, y / height of a 2:3 portrait canvas, confidence."""

    name: str
    description: str
    suits: frozenset[str]
    keypoints: np.ndarray

    def keypoints_px(self, width: int, height: int) -> np.ndarray:
        """Keypoints in canvas pixels (float32 (18, 3)); confidence unchanged, absent points stay at 0."""
        if width <= 0 or height <= 0:
            raise ValueError(f"canvas width and height must be positive pixels; got {width} x {height}.")
        points = self.keypoints.astype(np.float32).copy()
        points[:, 0] *= width
        points[:, 1] *= height
        return points


def check_inputs(document: Any, source: str) -> None:
    """Raise a ValueError that names the file and what to fix in it."""
    if not isinstance(document, dict):
        raise ValueError(
            f"{source}: a pose file must hold a JSON object with name, description, suits, keypoints."
        )
    missing = [key for key in ("name", "description", "suits", "keypoints") if key not in document]
    if missing:
        raise ValueError(
            f"{source}: missing {', '.join(missing)}; see configs/poses/front.json for the shape."
        )
    if not isinstance(document["name"], str) or not document["name"].strip():
        raise ValueError(f"{source}: 'name' must be a non-empty string such as \"front\".")
    suits = document["suits"]
    if not isinstance(suits, list) or not suits or not set(suits) <= GARMENT_CLASSES:
        raise ValueError(
            f"{source}: 'suits' must be a non-empty list drawn from {sorted(GARMENT_CLASSES)}; got {suits!r}."
        )
    keypoints = document["keypoints"]
    if not isinstance(keypoints, list) or len(keypoints) != len(KEYPOINT_NAMES):
        got = len(keypoints) if isinstance(keypoints, list) else type(keypoints).__name__
        raise ValueError(
            f"{source}: 'keypoints' must list 18 [x, y, confidence] triples in OpenPose-18 order "
            f"({', '.join(KEYPOINT_NAMES)}); got {got}."
        )
    for index, point in enumerate(keypoints):
        label = f"{source}: keypoint {index} ({KEYPOINT_NAMES[index]})"
        if (
            not isinstance(point, list)
            or len(point) != 3
            or not all(isinstance(v, int | float) for v in point)
        ):
            raise ValueError(f"{label} must be [x, y, confidence] numbers; got {point!r}.")
        x, y, confidence = (float(v) for v in point)
        if not 0.0 <= confidence <= 1.0:
            raise ValueError(f"{label}: confidence must be 0..1 (0 = not visible); got {confidence}.")
        if confidence > 0 and not (0.0 <= x <= 1.0 and 0.0 <= y <= 1.0):
            raise ValueError(
                f"{label}: x and y must be normalised to 0..1 of the canvas (x / width, y / height); got {x}, {y}."
            )


def load_pose(path: Path) -> Pose:
    """Read and validate one pose JSON file."""
    path = Path(path)
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: not valid JSON ({error.msg} at line {error.lineno}).") from error
    check_inputs(document, str(path))
    if document["name"] != path.stem:
        raise ValueError(
            f"{path}: 'name' is {document['name']!r} but the file is named {path.stem!r}; make them match."
        )
    return Pose(
        name=document["name"],
        description=str(document["description"]),
        suits=frozenset(document["suits"]),
        keypoints=np.asarray(document["keypoints"], dtype=np.float32),
    )


def load_pose_library(directory: Path | None = None) -> dict[str, Pose]:
    """All poses in a folder of <name>.json files (default: the repository's configs/poses), by name."""
    # 1. Find the folder.
    directory = Path(directory) if directory is not None else config_root() / "poses"
    if not directory.is_dir():
        raise ValueError(
            f"pose folder {directory} does not exist; point to a folder of <pose name>.json files."
        )
    # 2. Load and validate every file.
    files = sorted(directory.glob("*.json"))
    if not files:
        raise ValueError(
            f"pose folder {directory} holds no .json pose files; copy configs/poses/front.json there."
        )
    return {pose.name: pose for pose in (load_pose(path) for path in files)}


def render_openpose(keypoints_px: np.ndarray, width: int, height: int, stick_width: int = 4) -> np.ndarray:
    """OpenPose-style control image (H, W, 3) uint8: coloured limbs at 60 % and joints on black.

    stick_width and the joint radius (4) are sizes at 512 px on the short side and scale with the canvas;
    a limb whose endpoint has confidence 0 is skipped, like an undetected joint.
    """
    # 1. Validate.
    points = np.asarray(keypoints_px, dtype=np.float64)
    if points.shape != (len(KEYPOINT_NAMES), 3):
        raise ValueError(f"keypoints_px must be (18, 3) [x, y, confidence] in pixels; got {points.shape}.")
    if width <= 0 or height <= 0 or stick_width <= 0:
        raise ValueError(
            f"width, height and stick_width must be positive; got {width}, {height}, {stick_width}."
        )
    scale = min(width, height) / REFERENCE_SIDE
    stick = max(1, round(stick_width * scale))
    radius = max(1, round(4 * scale))
    visible = points[:, 2] > 0
    # 2. Limbs: filled ellipses along each bone, then dimmed as a whole (what the annotator does).
    canvas = np.zeros((height, width, 3), dtype=np.uint8)
    for limb_index, (start, end) in enumerate(LIMB_PAIRS):
        if not (visible[start] and visible[end]):
            continue
        (x0, y0), (x1, y1) = points[start, :2], points[end, :2]
        length = math.hypot(x1 - x0, y1 - y0)
        angle = math.degrees(math.atan2(y1 - y0, x1 - x0))
        centre = (round((x0 + x1) / 2), round((y0 + y1) / 2))
        polygon = np.asarray(
            cv2.ellipse2Poly(centre, (round(length / 2), stick), round(angle), 0, 360, 1), np.int32
        )
        cv2.fillConvexPoly(canvas, polygon, OPENPOSE_COLORS[limb_index])
    canvas = (canvas * LIMB_BRIGHTNESS).astype(np.uint8)
    # 3. Joints: full-colour discs on top.
    for index in np.flatnonzero(visible):
        x, y = points[index, :2]
        cv2.circle(canvas, (round(x), round(y)), radius, OPENPOSE_COLORS[index], thickness=-1)
    return canvas
