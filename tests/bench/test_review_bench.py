"""The review benchmark runs small: pages at scale render, and 20 concurrent reviewers lose no decision."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_twenty_reviewers_at_once_lose_no_decision(tmp_path: Path) -> None:
    out = tmp_path / "review.json"
    done = subprocess.run(
        [sys.executable, "bench/review.py", "--products", "60", "--reviewers", "20", "--seconds", "4",
         "--repeats", "1", "--json", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["decisions"] > 20 and report["failures"] == []
    assert report["lost"] == 0 and report["unexpected"] == 0
    assert set(report["pages_ms"]) >= {"gallery, first page", "product page", "runs list"}
