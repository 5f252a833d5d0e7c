"""Where each panel goes: the torso (hip) panel's affine from the body keypoints, each limb panel turned about
its pivot to follow its limb, and bent at the elbow or knee when it reaches past it.

All transforms map working pixels (the cutout crop resized by the torso scale) to canvas pixels, as (2, 3)
affines. The torso's is a similarity times a compression across the body for turned poses (at most
MAX_FORESHORTEN, so its print keeps within the stretch bound); limbs are rigid rotations of it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from pipelines.fit.body import ARMS, L_HIP, L_KNEE, L_SHOULDER, LEGS, NECK, R_HIP, R_KNEE, R_SHOULDER
from pipelines.fit.panels import Limb, Regions, Split
from pipelines.fit.pose_adapt import (
    MAX_BEND_DEG,
    MAX_SWING_DEG,
    NATURAL_RANGE_DEG,
    Adaptation,
    limit_turn,
    wrap,
)

# Body fit rules, as fractions of body lengths measured on the pose (tuned on bench/fit.py).
FRONT_SHOULDER_PER_TORSO = 0.62  # a frontal pose's shoulder width per torso length (library poses: 0.63)
FRONT_HIP_PER_TORSO = 0.37  # and its hip-joint width (library poses: 0.37)
CHEST_PER_SHOULDER = 1.0  # a top's armpit-to-armpit width per front shoulder width
# A sleeveless top with shoulder seams (a vest, not straps): its seams' ends sit on the shoulders' outline, the
# shoulder keypoints (joint centres) widened by the deltoids (the draft mannequin: + 0.07 torso lengths).
SEAM_SHOULDER_PER_SHOULDER = 1.12
MIN_SEAM_SHARE = 0.25  # of the shoulder width: a shoulder seam at least this long (a strap is narrower)
MAX_SEAM_CHEST = 1.3  # by its seams a vest's chest comes out at most this much wider than by its armholes
SEAM_DROP = 0.04  # of the garment height: the seam is measured this far below the shoulder points
WAIST_PER_HIP = 1.45  # a waistband's width per front hip-joint width (the pelvis is wider than its joints)
COLLAR_ABOVE_SHOULDERS = 0.06  # of the torso length: shoulder keypoints are joint centres, seams sit higher
WAIST_ABOVE_HIPS = 0.25  # of hip-to-knee: a mid-rise waistband sits above the hip joints
SKIRT_REACH = 0.9  # a skirt's hem at most this share of the way from its waistband to the knees
MAX_FORESHORTEN = 0.09  # a turned torso is compressed across by at most this (stretch bound 10 %)
SHORT_SLEEVE_FOLLOW = 0.6  # of an inward (downward) turn that a short sleeve follows
BEND_REACH = 1.25  # a limb panel reaching past this many upper-segment lengths bends at the joint
MIN_SPLIT, MAX_SPLIT = 0.2, 0.92  # the joint must lie this far along the limb panel to split it there


@dataclass
class Rig:
    """Every panel's affine (by panel name), the splits, the adapted keypoints and what was adapted."""

    affines: dict[str, np.ndarray]
    splits: list[Split]
    keypoints: np.ndarray
    scale: float  # the torso's uniform scale, working pixels -> canvas (1 when the working size is exact)
    compression: float  # across-body compression of the torso (1 = none)
    far_side: str | None  # r / l: the side turned away (its limb is drawn behind the torso)
    adaptations: list[Adaptation] = field(default_factory=list)
    turns_deg: dict[str, float] = field(default_factory=dict)
    in_front: set[str] = field(default_factory=set)  # limbs drawn over the torso (else tucked behind it)
    # Of those, the sleeves hanging beside the body: in front of the torso's sides, behind its middle (print).
    guarded: set[str] = field(default_factory=set)


def _unit(vector: np.ndarray) -> np.ndarray:
    return vector / max(float(np.linalg.norm(vector)), 1e-9)


def _across(down: np.ndarray) -> np.ndarray:
    """The image-right direction for a body (garment) whose down direction is given."""
    return np.array([down[1], -down[0]])


def _mid(keypoints: np.ndarray, a: int, b: int) -> np.ndarray:
    return (keypoints[a, :2] + keypoints[b, :2]) / 2.0


def _rotation(angle: float) -> np.ndarray:
    cos, sin = math.cos(angle), math.sin(angle)
    return np.array([[cos, -sin], [sin, cos]])


def _affine(linear: np.ndarray, source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """The (2, 3) affine with this linear part that maps source onto target."""
    return np.hstack([linear, (target - linear @ source)[:, None]])


def shoulder_seam_share(
    alpha: np.ndarray, landmarks: Mapping[str, tuple[float, float]], axis: tuple[float, float], height: float
) -> float:
    """How far the garment runs inward from its shoulder points (just below them), per shoulder width.

    A vest's shoulder seams run a good way toward the neckline; a strap or a strapless bodice's tip is narrow.
    """
    down = np.asarray(axis, dtype=np.float64)
    across = _across(down)
    right, left = (np.asarray(landmarks[f"{side}_shoulder"], dtype=np.float64) for side in "rl")
    width = abs(float((left - right) @ across))
    if width < 2.0:
        return 0.0
    rows, cols = alpha.shape
    shares = []
    for start, inward in ((right, across), (left, -across)):
        steps = np.arange(1.0, 0.5 * width)
        points = start + down * SEAM_DROP * height + inward[None, :] * (0.02 * width + steps[:, None])
        xs, ys = np.round(points[:, 0]).astype(int), np.round(points[:, 1]).astype(int)
        inside = (xs >= 0) & (xs < cols) & (ys >= 0) & (ys < rows)
        garment = np.zeros(len(steps), dtype=bool)
        garment[inside] = alpha[ys[inside], xs[inside]] >= 128
        run = int(np.argmin(garment)) if not garment.all() else len(steps)
        shares.append(run / width)
    return min(shares)


def torso_scale(
    garment_class: str,
    landmarks: Mapping[str, tuple[float, float]],
    axis: tuple[float, float],
    keypoints: np.ndarray,
    seam_share: float = 0.0,
) -> float:
    """Canvas pixels per landmark pixel for the torso (hip) panel: its chest (waist) width to the body's.

    seam_share (shoulder_seam_share, sleeveless tops only): a vest's shoulder seams, when long enough, set
    its scale instead of its armholes, whose lower ends lie as wide as its body.
    """
    down = np.asarray(axis, dtype=np.float64)
    across = _across(down)
    points = {name: np.asarray(xy, dtype=np.float64) for name, xy in landmarks.items()}
    unit = _torso_unit(keypoints)
    if garment_class == "lower_body":
        width = abs(float((points["l_waist"] - points["r_waist"]) @ across))
        hips = float(np.linalg.norm(keypoints[L_HIP, :2] - keypoints[R_HIP, :2]))
        by_width = max(hips, FRONT_HIP_PER_TORSO * unit) * WAIST_PER_HIP / max(width, 1.0)
        if "crotch" in points:
            return by_width
        # A skirt flares from its waist: fitted by its waist alone a short wide one would hang far off the
        # legs, so it is also kept to the knees' reach (as the rigid placement does).
        waist = (points["r_waist"] + points["l_waist"]) / 2.0
        hem = (points["r_hem"] + points["l_hem"]) / 2.0
        knees = _mid(keypoints, R_KNEE, L_KNEE)
        hips_mid = _mid(keypoints, R_HIP, L_HIP)
        reach = float(np.linalg.norm(knees - hips_mid)) * (1.0 + WAIST_ABOVE_HIPS) * SKIRT_REACH
        return min(by_width, reach / max(float((hem - waist) @ down), 1.0))
    width = abs(float((points["l_armpit"] - points["r_armpit"]) @ across))
    shoulders = float(np.linalg.norm(keypoints[L_SHOULDER, :2] - keypoints[R_SHOULDER, :2]))
    front = max(shoulders, FRONT_SHOULDER_PER_TORSO * unit)
    by_chest = front * CHEST_PER_SHOULDER / max(width, 1.0)
    if seam_share < MIN_SEAM_SHARE:
        return by_chest
    seams = abs(float((points["l_shoulder"] - points["r_shoulder"]) @ across))
    by_seams = front * SEAM_SHOULDER_PER_SHOULDER / max(seams, 1.0)
    return min(max(by_seams, by_chest), MAX_SEAM_CHEST * by_chest)


def _torso_unit(keypoints: np.ndarray) -> float:
    """Neck (or mid-shoulder) to mid-hip in pixels."""
    hips = _mid(keypoints, R_HIP, L_HIP)
    top = keypoints[NECK, :2] if keypoints[NECK, 2] > 0 else _mid(keypoints, R_SHOULDER, L_SHOULDER)
    return max(float(np.linalg.norm(hips - top)), 1.0)


def build_rig(
    garment_class: str,
    landmarks: Mapping[str, tuple[float, float]],
    axis: tuple[float, float],
    regions: Regions,
    keypoints_px: np.ndarray,
    scale: float,
) -> Rig:
    """Affines of every panel for the pose; limbs that cannot follow move the pose's keypoints (recorded).

    landmarks and regions are in working pixels; scale is the torso scale from working pixels to the canvas.
    """
    keypoints = np.asarray(keypoints_px, dtype=np.float64).copy()
    points = {name: np.asarray(xy, dtype=np.float64) for name, xy in landmarks.items()}
    garment_down = _unit(np.asarray(axis, dtype=np.float64))
    # 1. The body's frame: down along the torso (or the legs for lower-body garments), width, turn.
    lower = garment_class == "lower_body"
    unit = _torso_unit(keypoints)
    hips = _mid(keypoints, R_HIP, L_HIP)
    if lower:
        knees = _mid(keypoints, R_KNEE, L_KNEE)
        body_down = _unit(knees - hips)
        width = float(np.linalg.norm(keypoints[L_HIP, :2] - keypoints[R_HIP, :2]))
        front_width = max(width, FRONT_HIP_PER_TORSO * unit)
        near_pair = (R_HIP, L_HIP)
    else:
        shoulders = _mid(keypoints, R_SHOULDER, L_SHOULDER)
        body_down = _unit(hips - shoulders)
        width = float(np.linalg.norm(keypoints[L_SHOULDER, :2] - keypoints[R_SHOULDER, :2]))
        front_width = max(width, FRONT_SHOULDER_PER_TORSO * unit)
        near_pair = (R_SHOULDER, L_SHOULDER)
    compression = min(1.0, max(1.0 - MAX_FORESHORTEN, width / front_width))
    # 2. The torso (hip) panel: garment frame -> body frame, compressed across, uniform scale otherwise.
    garment_frame = np.column_stack([_across(garment_down), garment_down])
    body_frame = np.column_stack([_across(body_down), body_down])
    linear = body_frame @ np.diag([compression, 1.0]) @ garment_frame.T * scale
    if lower:
        source = (points["r_waist"] + points["l_waist"]) / 2.0
        thigh = float(np.linalg.norm(_mid(keypoints, R_KNEE, L_KNEE) - hips))
        target = hips - body_down * WAIST_ABOVE_HIPS * thigh
    else:
        source = (points["r_shoulder"] + points["l_shoulder"]) / 2.0
        target = _mid(keypoints, R_SHOULDER, L_SHOULDER) - body_down * COLLAR_ABOVE_SHOULDERS * unit
    torso = _affine(linear, source, target)
    torso_name = "hips" if any(limb.kind == "leg" for limb in regions.limbs) else "torso"
    rig = Rig(
        affines={torso_name: torso},
        splits=[],
        keypoints=keypoints,
        scale=scale,
        compression=compression,
        far_side=_far_side(keypoints, near_pair, lower),
    )
    # 3. Each limb turned about its pivot onto its limb, bent at the joint when it reaches past it.
    for limb in regions.limbs:
        _rig_limb(rig, limb, torso, body_down, target)
    return rig


def _far_side(keypoints: np.ndarray, pair: tuple[int, int], lower: bool) -> str | None:
    """The side turned away from the camera (its shoulder is closer to the neck), or None when frontal."""
    if lower or keypoints[NECK, 2] <= 0:
        return None
    right = float(np.linalg.norm(keypoints[pair[0], :2] - keypoints[NECK, :2]))
    left = float(np.linalg.norm(keypoints[pair[1], :2] - keypoints[NECK, :2]))
    if right < 0.85 * left:
        return "r"
    if left < 0.85 * right:
        return "l"
    return None


def _far_end(limb: Limb) -> np.ndarray:
    """The limb's far end (cuff or hem centre) relative to its pivot, in working pixels."""
    return np.asarray(limb.root) + np.asarray(limb.direction) * limb.length - np.asarray(limb.pivot)


def _aimed_point(
    limb: Limb, linear: np.ndarray, keypoints: np.ndarray, chain: tuple[int, int, int]
) -> np.ndarray:
    """The point of the limb panel (relative to its pivot, working pixels) put on the upper limb's line.

    Its far end (cuff, hem) for a limb that ends before the joint; for one that reaches past it and bends
    there, the point at the upper segment's length along its axis, so the panel's axis crosses the limb at
    the joint (aiming the far end, beyond the joint, left the panel beside the limb all along the upper
    segment when its pivot lies outside the limb: a long sleeve hung off the arm).
    """
    joint0, joint1, joint2 = chain
    if keypoints[joint2, 2] <= 0:
        return _far_end(limb)
    segment = float(np.linalg.norm(keypoints[joint1, :2] - keypoints[joint0, :2]))
    per_pixel = max(float(np.linalg.norm(linear @ np.asarray(limb.direction))), 1e-9)
    if limb.length * per_pixel < BEND_REACH * segment:
        return _far_end(limb)
    along = min(segment / per_pixel, MAX_SPLIT * limb.length)
    return np.asarray(limb.root) + np.asarray(limb.direction) * along - np.asarray(limb.pivot)


def _ends_above_elbow(
    limb: Limb, linear: np.ndarray, keypoints: np.ndarray, chain: tuple[int, int, int]
) -> bool:
    """True when the sleeve panel's reach on the canvas is shorter than the upper arm (a short sleeve)."""
    segment = float(np.linalg.norm(keypoints[chain[1], :2] - keypoints[chain[0], :2]))
    return float(np.linalg.norm(linear @ _far_end(limb))) < segment


def _aim(joint: np.ndarray, next_joint: np.ndarray, pivot: np.ndarray, reach: np.ndarray) -> float:
    """The direction (radians) to turn reach (pivot -> far end, canvas) into so that its end lies on the limb
    line joint -> next_joint: the sleeve's cuff (trouser hem) on the arm (leg), even where the pivot is off it.
    """
    limb = next_joint - joint
    u = limb / max(float(np.linalg.norm(limb)), 1e-9)
    offset = pivot - joint
    length = max(float(np.linalg.norm(reach)), 1e-9)
    cross = float(u[0] * offset[1] - u[1] * offset[0])
    correction = math.asin(max(-1.0, min(1.0, -cross / length)))
    return math.atan2(u[1], u[0]) + correction


def _crosses_body(
    keypoints: np.ndarray, chain: tuple[int, int, int], down: np.ndarray, centre: np.ndarray
) -> bool:
    """True when the limb's elbow (or wrist) lies between the shoulders, across the body."""
    across = _across(down)
    half = abs(float((keypoints[L_SHOULDER, :2] - keypoints[R_SHOULDER, :2]) @ across)) / 2.0
    for joint in chain[1:]:
        if keypoints[joint, 2] > 0 and abs(float((keypoints[joint, :2] - centre) @ across)) < 0.8 * half:
            return True
    return False


def _rig_limb(
    rig: Rig, limb: Limb, torso: np.ndarray, body_down: np.ndarray, body_centre: np.ndarray
) -> None:
    """Add the limb's affine (and its lower part's, when it bends) to the rig, adapting the pose if needed."""
    keypoints = rig.keypoints
    chain = (ARMS if limb.kind == "sleeve" else LEGS)[limb.side]
    joint0, joint1, joint2 = chain
    linear = torso[:, :2]
    pivot = np.asarray(limb.pivot)
    pivot_canvas = linear @ pivot + torso[:, 2]
    if keypoints[joint0, 2] <= 0 or keypoints[joint1, 2] <= 0:  # no limb to follow: it stays with the torso
        rig.affines[limb.name] = torso.copy()
        rig.turns_deg[limb.name] = 0.0
        return
    # Turning a limb from the body's down direction toward the image left is a positive (clockwise on
    # screen) angle; that is outward for a limb on the image-left side of the torso's centre line.
    down_angle = math.atan2(body_down[1], body_down[0])
    sign = 1.0 if float((keypoints[joint0, :2] - body_centre) @ _across(body_down)) < 0 else -1.0
    aimed = linear @ _aimed_point(limb, linear, keypoints, chain)
    wanted = _aim(keypoints[joint0, :2], keypoints[joint1, :2], pivot_canvas, aimed)
    panel_angle = math.atan2(aimed[1], aimed[0])
    inward = wrap(wanted - panel_angle) * sign < 0  # toward the body's side (positive turns are outward)
    if limb.kind == "sleeve" and inward and _ends_above_elbow(limb, linear, keypoints, chain):
        # A short sleeve turned all the way down onto a hanging arm tucks behind the torso's side and looks
        # cut off; stiff cloth stands off the arm a little: it follows SHORT_SLEEVE_FOLLOW of the turn.
        wanted = panel_angle + SHORT_SLEEVE_FOLLOW * wrap(wanted - panel_angle)
    turn, adaptation = limit_turn(
        keypoints,
        limb.name,
        limb.kind,
        joint0,
        (joint1, joint2),
        math.atan2(*aimed[::-1]),
        wanted,
        MAX_SWING_DEG[limb.kind],
        down_angle,
        sign,
        NATURAL_RANGE_DEG[limb.kind],
        "turn",
    )
    if adaptation is not None:
        rig.adaptations.append(adaptation)
    # A sleeve lies over the torso where its arm crosses in front of the body. Beside the body it hangs in
    # front of the torso's side (tucked behind it the sleeve vanished and the shoulders looked square) but
    # behind its middle: its underarm, swung inward as it turns down, must not sweep over the print. A far
    # side's sleeve (a turned pose) stays behind.
    if limb.kind == "leg" or _crosses_body(keypoints, chain, body_down, body_centre):
        rig.in_front.add(limb.name)
    elif rig.far_side != limb.side:
        rig.in_front.add(limb.name)
        rig.guarded.add(limb.name)
    upper_linear = _rotation(turn) @ linear
    upper = _affine(upper_linear, pivot, pivot_canvas)
    rig.affines[limb.name] = upper
    rig.turns_deg[limb.name] = math.degrees(turn)
    # The joint's place along the limb panel (from its root, working pixels): split and bend there.
    if keypoints[joint2, 2] <= 0:
        return
    root = np.asarray(limb.root)
    root_canvas = upper_linear @ root + upper[:, 2]
    segment = keypoints[joint1, :2] - keypoints[joint0, :2]
    axis_canvas = upper_linear @ np.asarray(limb.direction)
    per_pixel = max(float(np.linalg.norm(axis_canvas)), 1e-9)
    t = float((keypoints[joint1, :2] - root_canvas) @ _unit(segment)) / per_pixel
    reach = limb.length * per_pixel
    if reach < BEND_REACH * float(np.linalg.norm(segment)) or not (
        MIN_SPLIT * limb.length <= t <= MAX_SPLIT * limb.length
    ):
        return
    joint_source = root + np.asarray(limb.direction) * t
    joint_canvas = upper_linear @ joint_source + upper[:, 2]
    wanted_lower = math.atan2(*(keypoints[joint2, :2] - keypoints[joint1, :2])[::-1])
    upper_angle = math.atan2(axis_canvas[1], axis_canvas[0])
    bend, adaptation = limit_turn(
        keypoints,
        limb.name,
        limb.kind,
        joint1,
        (joint2,),
        upper_angle,
        wanted_lower,
        MAX_BEND_DEG[limb.kind],
        down_angle,
        sign,
        None,
        "bend",
    )
    if adaptation is not None:
        rig.adaptations.append(adaptation)
    rig.affines[f"{limb.name}_lower"] = _affine(_rotation(bend) @ upper_linear, joint_source, joint_canvas)
    rig.splits.append(Split(limb.name, t))
    rig.turns_deg[f"{limb.name}_lower"] = math.degrees(wrap(bend))
