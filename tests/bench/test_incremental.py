"""The incremental-planning benchmark runs small, finds exactly the changed products and, the night after,
takes the unchanged ones whole."""

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
    assert report["changed"] == 10 and report["jobs"] == 400
    by_jobs, whole = report["job by job (records written)"], report["completed products taken whole"]
    for night in (by_jobs, whole):
        assert night["to_render"] == 10 and night["exact"] is True and night["rows_per_s"] > 0
    # The first night decides every product job by job and records the 190 unchanged ones complete; the
    # next takes exactly those whole.
    assert (by_jobs["whole"], by_jobs["recorded"]) == (0, 190)
    assert (whole["whole"], whole["recorded"]) == (190, 190)
