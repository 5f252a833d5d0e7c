"""The pool benchmark runs end to end on a tiny catalogue (real Prefect server included) and reports every number."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_tiny_pool_bench_reports_efficiency_utilisation_memory_and_orchestration_share(
    tmp_path: Path,
) -> None:
    out = tmp_path / "bench.json"
    env = {**os.environ, "PREFECT_HOME": str(tmp_path / "prefect")}
    env.pop("PREFECT_API_URL", None)
    done = subprocess.run(
        [sys.executable, "bench/pool.py", "--devices", "1,2", "--batches-per-device", "2", "--batch-s", "0.2",
         "--cpu-products", "2", "--width", "300", "--height", "400", "--scale", "20,40",
         "--prefect-products", "40", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    numbers = json.loads(out.read_text())
    assert numbers["cpu"]["cpu_ms_per_image"] > 0 and numbers["cpu"]["threads_img_s"] > 0
    assert [run["devices"] for run in numbers["pool"]] == [1, 2]
    for run in numbers["pool"]:
        assert run["produced"] == run["jobs"] >= run["devices"] * 2 * 8
        assert 0 < run["efficiency"] <= 1.0
        assert len(run["utilisation"]) == run["devices"] and all(
            0 < u <= 1 for u in run["utilisation"].values()
        )
    lines = [line for line in done.stdout.splitlines() if line.startswith("devices ")]
    assert len(lines) == 2 and all(re.search(r"efficiency \d+\.\d%", line) for line in lines)
    assert all("utilisation cpu:0" in line for line in lines)
    assert [m["products"] for m in numbers["scale"]] == [20, 40] and all(
        m["failed"] == 0 for m in numbers["scale"]
    )
    prefect = numbers["prefect"]
    assert prefect["flow"]["jobs"] == prefect["plain"]["jobs"] == 40 and prefect["flow"]["failed"] == 0
    assert 0 <= prefect["orchestration_share"] < 1
    assert "orchestration share" in done.stdout
