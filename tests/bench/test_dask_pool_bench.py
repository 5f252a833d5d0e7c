"""The Dask benchmark runs end to end on a tiny catalogue (real prefect server, scheduler and worker) and reports
efficiency and utilisation for the cluster and for one host."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytest.importorskip("distributed", reason="the Dask benchmark needs the dev extra (prefect-dask)")


@pytest.mark.slow
def test_tiny_dask_bench_reports_efficiency_for_the_cluster_and_one_host(tmp_path: Path) -> None:
    out = tmp_path / "bench.json"
    env = {key: value for key, value in os.environ.items() if not key.startswith("PREFECT_")}
    done = subprocess.run(
        [sys.executable, "bench/dask_pool.py", "--workers", "1", "--nthreads", "1,2", "--batches-per-device", "1",
         "--batch-s", "0.1", "--width", "300", "--height", "400", "--json", str(out)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=900, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    runs = json.loads(out.read_text())["runs"]
    assert [run["kind"] for run in runs] == ["dask --nthreads 1", "dask --nthreads 2", "one host"]
    for run in runs:
        assert run["produced"] == run["jobs"] >= 8 and 0 < run["efficiency"] <= 1.0
        assert len(run["utilisation"]) == 1 and all(0 < u <= 1 for u in run["utilisation"].values())
    lines = [line for line in done.stdout.splitlines() if "devices 1:" in line]
    assert len(lines) == 3 and all(re.search(r"efficiency \d+\.\d%", line) for line in lines)
