"""Run profiles (configs/*.yaml): load, check, and fingerprint the parts that change images."""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property, lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import yaml

from catalog import ImagePolicy
from catalog.categories import check_extra_words
from configs import config_root

REPO_ROOT = Path(__file__).resolve().parents[2]
GARMENT_CLASSES = ("upper_body", "lower_body", "full_body")
# Only these sections change the render; run settings (workers, retries) and the output presets (derived
# from the stored master render) do not invalidate earlier work.
IMAGE_SECTIONS = ("seed", "canvas", "segmentation", "masks", "placement", "renderer", "categories")


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
    def fit(self) -> bool:
        """Fit the garment to each pose part by part (docs/FIT.md); false: one rigid placement.

        A profile without `placement` (older ones, and the profile recorded in images made before the fit
        existed) places rigidly, so `reproduce` regenerates those images as they were made.
        """
        return bool((self.data.get("placement") or {}).get("fit", False))

    @cached_property  # asked once per job while planning
    def presets(self) -> tuple[str, ...]:
        """The output presets of a run, in order: `preset: amazon` or `preset: [master, amazon]`."""
        return preset_names(self.data["preset"])

    @property
    def images(self) -> dict[str, Any]:
        return dict(self.data.get("images") or {})

    @property
    def run(self) -> dict[str, Any]:
        return dict(self.data.get("run") or {})

    @property
    def categories(self) -> dict[str, str]:
        """Extra category words (other languages, house terms) -> known category words, e.g. kleid: dress."""
        return dict(self.data.get("categories") or {})

    def image_policy(self, csv_dir: str | Path = "") -> ImagePolicy:
        """The profile's image-fetch limits; the CSV's own folder is always an allowed root."""
        images = self.images
        roots = tuple(Path(root) for root in images.get("allowed_roots") or ())
        return ImagePolicy(
            allowed_roots=roots + ((Path(csv_dir),) if csv_dir else ()),
            allowed_hosts=tuple(images.get("allowed_hosts") or ()),
            timeout_s=float(images.get("timeout_s", 20)),
            max_bytes=int(images.get("max_bytes", 30_000_000)),
            retries=int(images.get("retries", 2)),
        )

    @property
    def max_pixels(self) -> int:
        return int(self.images.get("max_pixels", 40_000_000))

    def default_poses(self, garment_class: str) -> tuple[str, ...]:
        return tuple(self.data["poses"].get(garment_class) or ())

    def with_overrides(self, **sections: Any) -> Profile:
        """A copy with top-level keys replaced (e.g. preset from the command line)."""
        data = copy.deepcopy(self.data)
        data.update({key: value for key, value in sections.items() if value is not None})
        return Profile(name=self.name, data=data, path=self.path)

    def fingerprint(self, pose_digest: str = "", renderer: Mapping[str, Any] | None = None) -> str:
        """Short hash of everything that changes an image: image sections, pose library, code version and the
        renderer's description (model ids and the commits they resolve to, so new weights behind
        `revision: main` re-render)."""
        material: dict[str, Any] = {key: self.data.get(key) for key in IMAGE_SECTIONS}
        material["poses_library"] = pose_digest
        material["renderer_describe"] = dict(renderer or {})
        # The package version, not the git commit: a deploy that changes no pixels must not redo the catalogue.
        material["code"] = package_version()
        blob = json.dumps(material, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


def preset_names(value: str | Sequence[str]) -> tuple[str, ...]:
    """'amazon' | 'master,amazon' | ['master', 'amazon'] -> ('master', 'amazon'); repeats dropped."""
    parts = [value] if isinstance(value, str) else list(value)
    names = (name.strip() for part in parts for name in str(part).split(","))
    return tuple(dict.fromkeys(name for name in names if name))


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
    preset = data["preset"]
    if not (isinstance(preset, str) or isinstance(preset, list)) or not preset_names(preset):
        raise ProfileError(
            f"{source}: preset is a preset name or a list of them (e.g. preset: [master, amazon]); got {preset!r}."
        )
    if not 1 <= int(data["variants"]) <= 16:
        raise ProfileError(f"{source}: variants must be 1..16; got {data['variants']}.")
    for garment_class in GARMENT_CLASSES:
        if not data["poses"].get(garment_class):
            raise ProfileError(f"{source}: poses.{garment_class} needs at least one pose name.")
    if "name" not in data["renderer"]:
        raise ProfileError(f"{source}: renderer.name is required (draft or diffusion).")
    if "backend" not in data["segmentation"]:
        raise ProfileError(f"{source}: segmentation.backend is required (classical, rembg or alpha).")
    try:
        check_extra_words(data.get("categories") or {}, f"{source}: categories")
    except ValueError as error:
        raise ProfileError(str(error)) from error


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """'demo' -> <config root>/demo.yaml; anything else is a path."""
    candidate = Path(name_or_path)
    if candidate.is_file():
        return candidate
    root = config_root()
    named = root / f"{name_or_path}.yaml"
    if named.is_file():
        return named
    available = ", ".join(sorted(p.stem for p in root.glob("*.yaml") if p.stem != "presets"))
    raise ProfileError(
        f"Profile '{name_or_path}' not found. Give a YAML path or one of: {available} (from {root})."
    )


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
    """Package version plus the commit when running from a git checkout (recorded in every image).

    The commit is read from the .git files themselves: no git executable is needed at run time, and an
    installed package without a checkout reports its version alone.
    """
    version = package_version()
    sha = git_commit(REPO_ROOT)
    return f"{version}+g{sha[:12]}" if sha else version


def git_commit(checkout: Path) -> str:
    """The commit HEAD points at in a checkout ("" when it is not one or the files cannot be read)."""
    git_dir = checkout / ".git"
    try:
        if git_dir.is_file():  # a worktree or submodule: "gitdir: <path>"
            git_dir = (checkout / git_dir.read_text(encoding="utf-8").split(":", 1)[1].strip()).resolve()
        head = (git_dir / "HEAD").read_text(encoding="utf-8").strip()
        if not head.startswith("ref:"):
            return head  # a detached HEAD holds the commit itself
        ref = head.split(":", 1)[1].strip()
        common = git_dir
        if (git_dir / "commondir").is_file():
            common = (git_dir / (git_dir / "commondir").read_text(encoding="utf-8").strip()).resolve()
        for folder in (git_dir, common):
            if (folder / ref).is_file():
                return (folder / ref).read_text(encoding="utf-8").strip()
        packed = common / "packed-refs"
        if packed.is_file():
            for line in packed.read_text(encoding="utf-8").splitlines():
                if line.endswith(" " + ref):
                    return line.split(" ", 1)[0]
    except (OSError, IndexError):
        return ""
    return ""
