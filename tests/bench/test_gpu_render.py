"""The GPU throughput script runs end to end on CPU with tiny models and reports every column."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import gpu_render


@pytest.mark.slow
def test_tiny_cpu_run_writes_a_complete_table(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "results.json"
    argv = ["--tiny", "--device", "cpu", "--sizes", "64x64", "--batches", "1,2", "--dtypes", "float32",
            "--steps", "2", "--iters", "1", "--models-dir", str(tmp_path / "models"), "--out", str(out)]  # fmt: skip
    assert gpu_render.main(argv) == 0
    report = json.loads(out.read_text())
    assert report["matmul_tflops"] > 0 and report["models"] == "tiny"
    assert [(r["levers"], r["batch"]) for r in report["rows"]] == [("vanilla", 1), ("tuned", 1), ("tuned", 2)]
    for row in report["rows"]:
        assert row["images_per_s"] > 0 and row["tflop_per_image"] > 0
        # On a noisy CPU the fraction can pass 1; what must hold is that it is FLOPs / rate / seconds.
        expected = row["tflop_per_image"] / report["matmul_tflops"] * row["images_per_s"]
        assert row["floor_fraction"] == pytest.approx(expected)
        assert row["gpu_s_per_image"] == pytest.approx(1 / row["images_per_s"])
    assert report["rows"][0]["speedup_vs_vanilla"] == pytest.approx(1.0)
    assert "floor%" in capsys.readouterr().out


@pytest.mark.slow
def test_a_spent_budget_skips_the_remaining_configurations_and_says_so(tmp_path: Path) -> None:
    out = tmp_path / "results.json"
    argv = ["--tiny", "--device", "cpu", "--sizes", "64x64", "--batches", "1,2", "--dtypes", "float32",
            "--steps", "1", "--iters", "1", "--models-dir", str(tmp_path / "models"), "--out", str(out),
            "--budget-s", "0.001"]  # fmt: skip
    assert gpu_render.main(argv) == 0
    report = json.loads(out.read_text())
    # The first configuration (the vanilla baseline) always runs; every later one starts past the budget.
    assert [(r["levers"], r["batch"]) for r in report["rows"]] == [("vanilla", 1)]
    assert [(r["levers"], r["batch"]) for r in report["skipped"]] == [("tuned", 1), ("tuned", 2)]
    assert not out.with_name("results.json.tmp").exists()
