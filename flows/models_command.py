"""`onmodel models download PROFILE`: fill the Hugging Face cache for air-gapped GPU workers."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

from pipelines.model_sources import ModelNotAvailableError, download_models
from pipelines.production.profile import ProfileError, resolve_profile_path


def add_parser(subparsers: argparse._SubParsersAction) -> None:
    """Register `models download PROFILE [--cache-dir DIR]`."""
    models = subparsers.add_parser(
        "models",
        help="manage the model weights a profile needs",
        description="Fill the Hugging Face cache on a machine with network, for air-gapped GPU workers.",
        epilog="example:\n  onmodel models download sd15 --cache-dir /shared/hf-cache",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = models.add_subparsers(dest="models_action", required=True)
    download = actions.add_parser(
        "download",
        help="Download a profile's models into the Hugging Face cache and print their commit shas.",
        epilog="example:\n  onmodel models download configs/sd15.yaml",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    download.add_argument(
        "profile", type=Path, help="a run profile YAML (configs/sd15.yaml) or its name (sd15)"
    )
    download.add_argument("--cache-dir", type=Path, default=None, help="cache folder (default: HF_HUB_CACHE)")
    download.add_argument("--endpoint", default=None, help="a Hugging Face mirror URL (default: HF_ENDPOINT)")
    download.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Download every model the profile's renderer names; 0 on success, 2 on a clear, printed failure."""
    # 1. Read the profile (a path, or a name in configs/) and its renderer options.
    try:
        args.profile = resolve_profile_path(args.profile)
    except ProfileError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    profile = yaml.safe_load(args.profile.read_text(encoding="utf-8")) or {}
    options = (profile.get("renderer") or {}).get("options") or {}
    if "models" not in options:
        print(
            f"error: profile {args.profile} names no models (renderer {profile.get('renderer', {}).get('name')!r} "
            "needs none); use a diffusion profile such as configs/sd15.yaml.",
            file=sys.stderr,
        )
        return 2
    # 2. Download (or verify local folders) and print the shas to pin in the profile.
    try:
        shas = download_models(
            options,
            cache_dir=args.cache_dir,
            endpoint=getattr(args, "endpoint", None),
            profile_hint=str(args.profile),
        )
    except (ModelNotAvailableError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    for role, sha in shas.items():
        entry = options["models"][role]
        print(f"{role}: {entry['id']} revision {entry.get('revision', 'main')} -> {sha}")
    print("Pin these commits as `revision:` in the profile so every worker renders with the same weights.")
    return 0
