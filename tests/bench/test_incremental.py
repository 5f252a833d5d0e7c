"""The incremental-planning benchmark runs small and finds exactly the changed products."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_planning_finds_exactly_the_changed_products(tmp_path: Path) -> None:
    out = tmp_path / "incremental.json"
    done = subprocess.run(
        [sys.executable, "bench/incremental.py", "--products", "200", "--changed", "5", "--poses", "2",
         "--variants", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["changed"] == 10 and report["to_render"] == 10 and report["exact"] is True
    assert report["rows_per_s"] > 0 and report["jobs"] == 400
