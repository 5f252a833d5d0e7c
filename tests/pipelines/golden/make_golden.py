"""Regenerate the golden images (run from the repository root after an intended visual change):

.venv/bin/python tests/pipelines/golden/make_golden.py
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parents[2]))

from pipelines.image_io import write_png_atomic  # noqa: E402
from tests.pipelines.golden_scenes import draft_scene, openpose_front  # noqa: E402


def main() -> None:
    """Write openpose_front.png and draft_front.png next to this script."""
    write_png_atomic(HERE / "openpose_front.png", openpose_front(), compress_level=9)
    write_png_atomic(HERE / "draft_front.png", draft_scene(), compress_level=9)


if __name__ == "__main__":
    main()
