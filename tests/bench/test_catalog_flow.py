"""The catalogue benchmark runs end to end on a tiny catalogue and reports every number."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_small_run_reports_stages_throughput_and_orchestration_share(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    # Its own Prefect home: the ephemeral API's database must not be shared with parallel test workers.
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "bench/catalog_flow.py", "--products", "3", "--width", "300", "--height", "400",
         "--repeats", "1", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads(out.read_text())
    assert report["jobs"] == 3 * 3 * 2
    for stage in ("product.load", "product.segment", "job.place_masks", "job.render", "job.write"):
        assert report["stages_ms"][stage] > 0, stage
    assert 0 <= report["orchestration_share"] < 1
    assert report["plain_s"] > 0 and report["flow_s"] > 0 and report["peak_mib"] > 0
    assert "Prefect orchestration share" in done.stdout
    assert "'failed': 0" in done.stdout
