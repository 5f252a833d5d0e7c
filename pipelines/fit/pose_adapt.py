"""Pose adaptation: where a limb panel cannot turn or bend as far as the pose asks, the pose's limb moves
instead, within natural limits, so the arm (or leg) still comes out of its sleeve (trouser leg).

Every change is recorded (which keypoints, about which joint, by how much, and why) for the job's sidecar.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from pipelines.poses import KEYPOINT_NAMES

# How far a panel may turn about its pivot away from its flat-lay angle, and bend at its middle joint.
MAX_SWING_DEG = {"sleeve": 65.0, "leg": 35.0}
MAX_BEND_DEG = {"sleeve": 110.0, "leg": 70.0}
# Natural limits of a limb's angle from the body's down direction, positive away from the body's midline:
# an arm hangs across the chest at most 35 degrees and rises at most 120; a leg crosses 20 or spreads 60.
NATURAL_RANGE_DEG = {"sleeve": (-35.0, 120.0), "leg": (-20.0, 60.0)}


@dataclass(frozen=True)
class Adaptation:
    """One keypoint move: points rotated about a joint by degrees (clockwise on screen), and why."""

    limb: str
    joint: str
    moved: tuple[str, ...]
    degrees: float
    reason: str

    def to_dict(self) -> dict[str, Any]:
        """JSON-able form for the sidecar."""
        return {
            "limb": self.limb,
            "joint": self.joint,
            "moved": list(self.moved),
            "degrees": round(self.degrees, 3),
            "reason": self.reason,
        }


def wrap(angle: float) -> float:
    """An angle in radians wrapped to (-pi, pi]."""
    return math.atan2(math.sin(angle), math.cos(angle))


def rotate_about(keypoints: np.ndarray, indices: tuple[int, ...], centre: np.ndarray, angle: float) -> None:
    """Rotate the listed keypoints about centre by angle radians (screen clockwise), in place."""
    cos, sin = math.cos(angle), math.sin(angle)
    for index in indices:
        if keypoints[index, 2] <= 0:
            continue
        dx, dy = keypoints[index, :2] - centre
        keypoints[index, 0] = centre[0] + cos * dx - sin * dy
        keypoints[index, 1] = centre[1] + sin * dx + cos * dy


def limit_turn(
    keypoints: np.ndarray,
    limb: str,
    kind: str,
    joint: int,
    moved: tuple[int, ...],
    panel_angle: float,
    wanted_angle: float,
    max_deg: float,
    down_angle: float,
    outward_sign: float,
    natural: tuple[float, float] | None,
    what: str,
) -> tuple[float, Adaptation | None]:
    """The panel's turn (radians) toward wanted_angle, at most max_deg; beyond it the limb moves (in place).

    panel_angle: the panel's direction on the canvas before turning; wanted_angle: the pose limb's direction.
    natural: the limb's allowed angle from down_angle (outward positive, degrees), or None for no limit.
    """
    turn = wrap(wanted_angle - panel_angle)
    limit = math.radians(max_deg)
    if abs(turn) <= limit:
        return turn, None
    target = panel_angle + math.copysign(limit, turn)
    if natural is not None:  # the moved limb must stay a pose a person can hold
        low, high = (math.radians(v) for v in natural)
        outward = wrap(target - down_angle) * outward_sign
        target = down_angle + outward_sign * min(max(outward, low), high)
    delta = wrap(target - wanted_angle)
    rotate_about(keypoints, moved, keypoints[joint, :2].astype(np.float64), delta)
    adaptation = Adaptation(
        limb=limb,
        joint=KEYPOINT_NAMES[joint],
        moved=tuple(KEYPOINT_NAMES[i] for i in moved if keypoints[i, 2] > 0),
        degrees=math.degrees(delta),
        reason=f"the pose asks the {kind} to {what} {math.degrees(abs(turn)):.0f} deg; it allows {max_deg:.0f}",
    )
    return wrap(target - panel_angle), adaptation
