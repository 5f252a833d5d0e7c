"""Review decisions and the pipeline: which render a decision is about, and what a rejection asks of the next run.

A decision is made on one render of a job (its image as it was), named by `render_id`: the job's stable image
key plus the seed, config fingerprint and photo hash it was rendered with. A later render of the job (a new
photo, a new config, or the re-render a rejection asks for) has a new render id, so an old verdict never
sticks to a new image. The review app and the pipeline's skip step both use these rules.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Literal

from catalog.state import ReviewDecision

ReviewState = Literal["undecided", "approved", "rejected", "partial"]
REVIEW_STATES: tuple[ReviewState, ...] = ("undecided", "approved", "rejected", "partial")
# Reject reasons reviewers pick from (key -> label); "other" needs a comment.
REJECT_REASONS = {
    "garment_distorted": "garment distorted",
    "face_hands": "face or hands artefact",
    "wrong_pose": "wrong pose",
    "wrong_colour": "wrong colour",
    "background": "background",
    "other": "other",
}


def render_id(image_key: str, seed: int, fingerprint: str, image_hash: str) -> str:
    """'images/master/SKU/JOB.png#seed-fingerprint-photo': one render of one job."""
    return f"{image_key}#{seed}-{fingerprint}-{image_hash[:16]}"


def rerender_seed(previous_seed: int) -> int:
    """A new 31-bit seed for a rejected render, deterministic in the seed it replaces (each rejection moves on)."""
    digest = hashlib.sha256(f"rerender|{previous_seed}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def decision_on(decision: ReviewDecision | None, render: str) -> ReviewDecision | None:
    """The decision in force on this render, or None: no decision, a cleared one, or one about another render
    of the job (an old verdict never sticks to a new image)."""
    if decision is None or decision.image_key != render or decision.decision not in ("approve", "reject"):
        return None
    return decision


def image_state(decision: ReviewDecision | None) -> ReviewState:
    """Of the decision in force on a render (`decision_on`)."""
    if decision is None:
        return "undecided"
    return "approved" if decision.decision == "approve" else "rejected"


def product_state(states: Sequence[ReviewState]) -> ReviewState:
    """approved when every image is, rejected when any is, partial when some are decided, else undecided."""
    if not states or all(state == "undecided" for state in states):
        return "undecided"
    if any(state == "rejected" for state in states):
        return "rejected"
    if all(state == "approved" for state in states):
        return "approved"
    return "partial"


def check_decision(decision: str, reason: str, comment: str) -> None:
    """Raise a ValueError a reviewer can act on."""
    if decision not in ("approve", "reject"):
        raise ValueError(f"a decision is 'approve' or 'reject'; got {decision!r}.")
    if decision == "reject" and reason not in REJECT_REASONS:
        raise ValueError(f"a rejection needs a reason, one of: {', '.join(REJECT_REASONS)}; got {reason!r}.")
    if decision == "reject" and reason == "other" and not comment.strip():
        raise ValueError("a rejection for 'other' needs a comment saying what is wrong.")
    if len(comment) > 2000:
        raise ValueError("keep the comment under 2000 characters.")
