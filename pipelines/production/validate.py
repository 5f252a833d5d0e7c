"""Validate a run before any work: the profile, the preset, the device, then the CSV with the run's image policy.

One `validate(csv, profile)` serves `onmodel validate`, the flow and the upload endpoint, so they can never
give two verdicts on one CSV. `start_run` is what a run does first: everything checked, nothing loaded.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from catalog import ImageFetchError, TransientFetchError, fetch_image_bytes, read_catalog
from catalog.record_spool import SpooledRecords
from catalog.schema import CatalogReadResult, ProductRecord, RecordSequence, Reject
from pipelines.errors import InputError
from pipelines.image_io import load_image_bytes
from pipelines.poses import Pose
from pipelines.presets import Preset
from pipelines.production.book import chunk_size
from pipelines.production.outcomes import RejectRecord
from pipelines.production.profile import Profile, ProfileError
from pipelines.production.stages import RunContext
from pipelines.renderers import check_renderer_options, describe_renderer
from pipelines.segmentation import check_segmentation_options

DEVICE_PATTERN = re.compile(r"^(cpu|cpu:\d+|cuda|cuda:\d+)$")


class RunConfigError(ValueError):
    """A run that cannot start (unknown preset, device, pose); the message says what to write instead."""


def check_device(device: str) -> str:
    """'cpu', 'cuda', 'cuda:N' or 'cpu:N' (a CPU test device); anything else is a RunConfigError naming the forms."""
    text = str(device).strip().lower()
    if not DEVICE_PATTERN.match(text):
        raise RunConfigError(
            f"device {device!r} is not a device; use cpu, cuda (the first GPU) or cuda:N (e.g. cuda:1), "
            "or cpu:N for CPU pools and tests."
        )
    return text


def cuda_device_count() -> int:
    """How many CUDA devices torch sees (0 without torch or without a GPU build)."""
    try:
        import torch
    except ImportError:
        return 0
    return int(torch.cuda.device_count()) if torch.cuda.is_available() else 0


def check_devices(spec: str | Sequence[str] | None, *, default: str = "cpu") -> tuple[str, ...]:
    """The run's device pool: 'auto' (every CUDA device, else cpu) | 'cpu' | 'cuda:0,cuda:1' | [cuda:0, cuda:1]
    | [cpu:0, cpu:1] (several CPU renderer instances: CPU pools and tests). None or empty: `default`."""
    if spec is None or (isinstance(spec, str | list | tuple) and not spec):
        spec = default
    parts = [spec] if isinstance(spec, str) else [str(part) for part in spec]
    names = [name.strip() for part in parts for name in str(part).split(",") if name.strip()]
    if names == ["auto"]:
        count = cuda_device_count()
        return tuple(f"cuda:{index}" for index in range(count)) if count else ("cpu",)
    if "auto" in names:
        raise RunConfigError("devices: auto stands alone (every CUDA device); or list them: cuda:0,cuda:1.")
    devices = tuple(check_device(name) for name in names)
    same = {"cuda:0" if d == "cuda" else d for d in devices}
    if len(same) != len(devices):
        raise RunConfigError(f"devices {list(devices)} name one device twice (cuda is cuda:0).")
    if "cpu" in devices and len(devices) > 1:
        raise RunConfigError(
            f"devices {list(devices)}: plain cpu is one shared device; for several CPU renderers use cpu:0,cpu:1."
        )
    return devices


def run_devices(
    profile: Profile, *, device: str | None = None, devices: str | Sequence[str] | None = None
) -> tuple[str, ...]:
    """The run's devices: --devices, else --device (a one-device pool), else the profile's run.devices, else cpu."""
    if devices:
        return check_devices(devices)
    if device:
        return (check_device(device),)
    return check_devices(profile.run.get("devices"), default="cpu")


def primary_device(devices: Sequence[str]) -> str:
    """Where the run's other models (segmentation) go and which device the fingerprint is checked for: the
    first device; CPU test devices (cpu:N) are the cpu."""
    return "cpu" if devices[0].startswith("cpu") else devices[0]


def check_run(
    profile: Profile, *, device: str, presets: Mapping[str, Preset], poses: Mapping[str, Pose]
) -> None:
    """Everything a run needs from its profile, checked without loading weights or reading the CSV."""
    source = str(profile.path or profile.name)
    # 1. The device string (the option checks below see it normalised).
    device = check_device(device)
    # 2. The output presets (from the profile or --preset).
    unknown = [name for name in profile.presets if name not in presets]
    if unknown:
        raise RunConfigError(
            f"preset {', '.join(map(repr, unknown))} is not in presets.yaml; choose one of: "
            f"{', '.join(sorted(presets))} (several: --preset master,amazon)."
        )
    # 3. Every default pose exists in the pose library.
    for garment_class in ("upper_body", "lower_body", "full_body"):
        unknown = sorted(set(profile.default_poses(garment_class)) - set(poses))
        if unknown:
            raise ProfileError(
                f"{source}: poses.{garment_class} names {unknown}, not in the pose library "
                f"({', '.join(sorted(poses))})."
            )
    # 4. Renderer and segmentation options, validated by their own families (no imports of torch or rembg).
    if profile.batch_size < 1:
        raise ProfileError(f"{source}: renderer.batch_size must be >= 1; got {profile.batch_size}.")
    try:
        chunk_size(1, 1, profile.run.get("chunk_size", "auto"))
    except ValueError as error:
        raise ProfileError(f"{source}: {error}") from error
    try:
        check_renderer_options(profile.renderer_name, profile.renderer_options, device)
        check_segmentation_options(profile.segmentation_backend, profile.segmentation_options, device)
    except ValueError as error:
        raise ProfileError(f"{source}: {error}") from error


def validate(
    csv_path: Path | str,
    profile: Profile,
    *,
    poses: Mapping[str, Pose],
    deep: bool = False,
    records: RecordSequence | None = None,
) -> CatalogReadResult:
    """Read and validate a product CSV as a run of this profile would (its image policy, the pose library).

    deep: also fetch and decode every photo, so a missing, truncated or oversized image is a reject now,
    not a surprise during the run.
    records: where the good records go (a run's spool on disk); a list by default.
    """
    path = Path(csv_path)
    csv_dir = str(path.resolve().parent)
    result = read_catalog(
        path,
        profile.image_policy(csv_dir),
        known_poses=set(poses),
        extra_categories=profile.categories,
        records=records,
    )
    return open_photos(result, profile, csv_dir) if deep else result


def open_photos(result: CatalogReadResult, profile: Profile, csv_dir: str) -> CatalogReadResult:
    """Fetch and fully decode each record's photo; a record whose photo cannot be used becomes a reject."""
    policy = profile.image_policy(csv_dir)
    good: list[ProductRecord] = []
    rejects = list(result.rejects)
    for record in result.records:
        try:
            data = fetch_image_bytes(record.image, policy)
            load_image_bytes(data, profile.max_pixels, record.image.raw)
        except (ImageFetchError, InputError) as error:
            rejects.append(Reject(record.row, record.sku, "image", str(error)))
        except TransientFetchError as error:  # not the row's fault, but the run would not get it either
            rejects.append(Reject(record.row, record.sku, "image", f"{error} (try validate again later)"))
        else:
            good.append(record)
    return CatalogReadResult(
        records=good, rejects=rejects, dialect=result.dialect, rows_read=result.rows_read
    )


def pose_library_digest(poses: Mapping[str, Pose]) -> str:
    """A stable digest of the pose keypoints (part of the config fingerprint)."""
    blob = json.dumps({name: pose.keypoints.round(5).tolist() for name, pose in sorted(poses.items())})
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def run_fingerprint(profile: Profile, *, device: str, poses: Mapping[str, Pose]) -> str:
    """The config fingerprint of a run: the profile's image sections, the poses and what the renderer is.

    Resolving the renderer's models (offline: local folders or the Hugging Face cache) happens here, so a
    model missing on this machine is a ModelNotAvailableError before any work.
    """
    renderer = describe_renderer(profile.renderer_name, profile.renderer_options, check_device(device))
    return profile.fingerprint(pose_library_digest(poses), renderer)


def new_run_id() -> str:
    return datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")


@dataclass(frozen=True)
class RunStart:
    """A validated run: its context, the products to make, the CSV's rejects."""

    ctx: RunContext
    csv_path: str
    dialect: str
    started_at: str
    records: Sequence[ProductRecord] = field(default_factory=list)  # a run's: SpooledRecords, on disk
    rejects: list[RejectRecord] = field(default_factory=list)
    unknown_only: tuple[str, ...] = ()  # --only SKUs this CSV does not produce


def start_run(
    csv_path: Path | str,
    profile: Profile,
    *,
    device: str,
    force: bool,
    only: Sequence[str] | None,
    presets: Mapping[str, Preset],
    poses: Mapping[str, Pose],
) -> RunStart:
    """Check the run, then read the CSV: good records (filtered by --only) and its rejects."""
    # 1. The run itself and its fingerprint (models resolved offline), before any file is read.
    check_run(profile, device=device, presets=presets, poses=poses)
    fingerprint = run_fingerprint(profile, device=device, poses=poses)
    # 2. The CSV, with the same validation as `onmodel validate`; its records go to disk as they are made.
    every = SpooledRecords()
    result = validate(csv_path, profile, poses=poses, records=every)
    wanted = set(only or ())
    records = SpooledRecords(r for r in every if r.sku in wanted) if wanted else every
    ctx = RunContext(
        run_id=new_run_id(),
        profile=profile,
        fingerprint=fingerprint,
        device=check_device(device),
        force=force,
        csv_dir=str(Path(csv_path).resolve().parent),
    )
    return RunStart(
        ctx=ctx,
        csv_path=str(csv_path),
        dialect=result.dialect,
        started_at=datetime.now(UTC).isoformat(timespec="seconds"),
        records=records,
        rejects=[RejectRecord.from_reject(reject) for reject in result.rejects],
        unknown_only=tuple(sorted(wanted - {*records.skus})) if wanted else (),
    )
