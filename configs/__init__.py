"""onmodel's shipped configuration (run profiles, output presets, poses) as package data.

Installed from a wheel, without a git checkout, the files are found here; `ONMODEL_CONFIG_ROOT` points at
another folder of the same shape (profiles *.yaml, presets.yaml, poses/*.json).
"""

from __future__ import annotations

import os
from pathlib import Path

CONFIG_ROOT_ENV = "ONMODEL_CONFIG_ROOT"


def config_root() -> Path:
    """The folder holding the profiles, presets.yaml and poses/ (ONMODEL_CONFIG_ROOT, else the shipped one)."""
    override = os.environ.get(CONFIG_ROOT_ENV, "").strip()
    return Path(override).expanduser() if override else Path(__file__).resolve().parent
