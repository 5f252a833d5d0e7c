"""Plan jobs: product x pose x variant, with seeds that depend only on what the job is."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from catalog.schema import ProductRecord
from pipelines.production.profile import Profile


@dataclass(frozen=True)
class JobPlan:
    """One image to produce; `job_id` is stable across runs, so outputs never duplicate."""

    job_id: str
    sku: str
    pose: str
    variant: int
    seed: int


def job_seed(base_seed: int, sku: str, pose: str, variant: int) -> int:
    """Deterministic 31-bit seed from (base seed, sku, pose, variant), independent of batch and order."""
    digest = hashlib.sha256(f"{base_seed}|{sku}|{pose}|{variant}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF


def job_id_for(sku: str, pose: str, variant: int) -> str:
    """File-name-safe id: SKUs are validated to letters, digits, '-', '_' and '.'."""
    return f"{sku}__{pose}__v{variant}"


def plan_shape(record: ProductRecord, profile: Profile) -> tuple[tuple[str, ...], int]:
    """(poses, variant count) of a product: the row's, else the profile's (poses by garment class)."""
    poses = record.poses or profile.default_poses(record.garment_class.value)
    return tuple(poses), record.variants or profile.variants


def plan_product(record: ProductRecord, profile: Profile) -> list[JobPlan]:
    """Every job of one product: its poses x its variant count (plan_shape)."""
    poses, variants = plan_shape(record, profile)
    return [
        JobPlan(
            job_id=job_id_for(record.sku, pose, variant),
            sku=record.sku,
            pose=pose,
            variant=variant,
            seed=job_seed(profile.seed, record.sku, pose, variant),
        )
        for pose in poses
        for variant in range(variants)
    ]
