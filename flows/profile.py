"""Run profiles (configs/*.yaml): load, check, and fingerprint the parts that change images."""

from __future__ import annotations

import copy
import hashlib
import json
import subprocess
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

REPO_ROOT = Path(__file__).resolve().parent.parent
CONFIG_DIR = REPO_ROOT / "configs"
GARMENT_CLASSES = ("upper_body", "lower_body", "full_body")
# Only these sections change pixels; run settings (workers, retries) do not invalidate earlier work.
IMAGE_SECTIONS = ("seed", "canvas", "segmentation", "masks", "renderer", "preset")


class ProfileError(ValueError):
    """A run profile that cannot be used, with what to change."""


@dataclass(frozen=True)
class Profile:
    """A loaded run profile; `data` is the whole YAML document (recorded in every image's metadata)."""

    name: str
    data: dict[str, Any]
    path: Path | None = None

    @property
    def seed(self) -> int:
        return int(self.data["seed"])

    @property
    def variants(self) -> int:
        return int(self.data["variants"])

    @property
    def canvas(self) -> tuple[int, int]:
        return int(self.data["canvas"]["width"]), int(self.data["canvas"]["height"])

    @property
    def renderer_name(self) -> str:
        return str(self.data["renderer"]["name"])

    @property
    def renderer_options(self) -> dict[str, Any]:
        return dict(self.data["renderer"].get("options") or {})

    @property
    def batch_size(self) -> int:
        return int(self.data["renderer"].get("batch_size", 8))

    @property
    def segmentation_backend(self) -> str:
        return str(self.data["segmentation"]["backend"])

    @property
    def segmentation_options(self) -> dict[str, Any]:
        return dict(self.data["segmentation"].get("options") or {})

    @property
    def erode_px(self) -> int:
        return int(self.data["masks"]["erode_px"])

    @property
    def feather_px(self) -> int:
        return int(self.data["masks"]["feather_px"])

    @property
    def preset(self) -> str:
        return str(self.data["preset"])

    @property
    def images(self) -> dict[str, Any]:
        return dict(self.data.get("images") or {})

    @property
    def run(self) -> dict[str, Any]:
        return dict(self.data.get("run") or {})

    def default_poses(self, garment_class: str) -> tuple[str, ...]:
        return tuple(self.data["poses"].get(garment_class) or ())

    def with_overrides(self, **sections: Any) -> Profile:
        """A copy with top-level keys replaced (e.g. preset from the command line)."""
        data = copy.deepcopy(self.data)
        data.update({key: value for key, value in sections.items() if value is not None})
        return Profile(name=self.name, data=data, path=self.path)

    def fingerprint(self, pose_digest: str = "") -> str:
        """Short hash of everything that changes an image: image sections, pose library and code version."""
        material = {key: self.data.get(key) for key in IMAGE_SECTIONS}
        material["poses_library"] = pose_digest
        # The package version, not the git commit: a deploy that changes no pixels must not redo the catalogue.
        material["code"] = package_version()
        blob = json.dumps(material, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def check_profile(data: Any, source: str) -> None:
    """Raise a ProfileError naming the missing or malformed key."""
    if not isinstance(data, dict):
        raise ProfileError(f"{source}: a profile is a YAML mapping; got {type(data).__name__}.")
    for key in ("name", "seed", "variants", "canvas", "poses", "segmentation", "masks", "renderer", "preset"):
        if key not in data:
            raise ProfileError(f"{source}: missing key '{key}'. Copy it from configs/demo.yaml.")
    canvas = data["canvas"]
    if not isinstance(canvas, dict) or not {"width", "height"} <= set(canvas):
        raise ProfileError(
            f"{source}: canvas needs width and height, e.g. canvas: {{width: 512, height: 768}}."
        )
    if int(canvas["width"]) % 8 or int(canvas["height"]) % 8:
        raise ProfileError(f"{source}: canvas width and height must be multiples of 8 (latent grid).")
    if not 1 <= int(data["variants"]) <= 16:
        raise ProfileError(f"{source}: variants must be 1..16; got {data['variants']}.")
    for garment_class in GARMENT_CLASSES:
        if not data["poses"].get(garment_class):
            raise ProfileError(f"{source}: poses.{garment_class} needs at least one pose name.")
    if "name" not in data["renderer"]:
        raise ProfileError(f"{source}: renderer.name is required (draft or diffusion).")
    if "backend" not in data["segmentation"]:
        raise ProfileError(f"{source}: segmentation.backend is required (classical, rembg or alpha).")


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """'demo' -> configs/demo.yaml; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.exists():
        return candidate
    named = CONFIG_DIR / f"{name_or_path}.yaml"
    if named.exists():
        return named
    available = ", ".join(sorted(p.stem for p in CONFIG_DIR.glob("*.yaml") if p.stem != "presets"))
    raise ProfileError(f"Profile '{name_or_path}' not found. Give a YAML path or one of: {available}.")


def load_profile(name_or_path: str | Path = "demo") -> Profile:
    """Read and check a profile YAML."""
    path = resolve_profile_path(name_or_path)
    data = yaml.safe_load(path.read_text(encoding="utf-8"))
    check_profile(data, str(path))
    return Profile(name=str(data["name"]), data=data, path=path)


def profile_from_dict(data: dict[str, Any], source: str = "metadata") -> Profile:
    """Rebuild a profile recorded in an image's metadata (for `onmodel reproduce`)."""
    check_profile(data, source)
    return Profile(name=str(data["name"]), data=copy.deepcopy(data), path=None)


def package_version() -> str:
    """The installed onmodel version."""
    try:
        return metadata.version("onmodel")
    except metadata.PackageNotFoundError:
        return "0+unknown"


@lru_cache(maxsize=1)
def code_version() -> str:
    """Package version plus the git commit when running from a checkout (recorded in every image)."""
    version = package_version()
    try:
        sha = subprocess.run(
            ["git", "-C", str(REPO_ROOT), "rev-parse", "--short=12", "HEAD"],
            capture_output=True,
            text=True,
            timeout=5,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        sha = ""
    return f"{version}+g{sha}" if sha else version
