"""The `onmodel` command line, run as a user would: a subprocess against a real Prefect server."""

from __future__ import annotations

import asyncio
import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
from prefect.client.orchestration import get_client
from prefect.settings import PREFECT_API_URL

from flows import caches
from flows.cli import main
from pipelines.errors import RenderError
from pipelines.renderers.draft import DraftRenderer
from tests.flows.helpers import small_profile, write_csv, write_flatlays

ROOT = Path(__file__).resolve().parents[2]


def _onmodel(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "flows.cli", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
        stdin=subprocess.DEVNULL,
    )


def test_validate_prints_the_verdict_and_runs_nothing(tmp_path: Path, capsys) -> None:
    rows = write_flatlays(tmp_path, 1)
    rows.append({"sku": "BAD", "image": "g00.png", "category": "umbrella"})
    csv_path = write_csv(tmp_path / "p.csv", rows)
    assert main(["validate", str(csv_path)]) == 1
    printed = capsys.readouterr().out
    assert "1 products ok, 1 rows rejected" in printed
    assert "Row 3, column 'category' (SKU BAD): 'umbrella' is not a garment category" in printed
    assert not (tmp_path / "outputs").exists()


def test_run_against_a_real_prefect_server(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=1)
    api_url = PREFECT_API_URL.value()  # the test harness's server on 127.0.0.1
    assert api_url and "127.0.0.1" in api_url
    env = {**os.environ, "PREFECT_API_URL": api_url}
    done = _onmodel(
        "run",
        str(csv_path),
        "--config",
        str(profile),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        env=env,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "produced 4 · skipped 0 · rejected 0 · failed 0" in done.stdout
    assert f"run index: {(tmp_path / 'out' / 'index.html').resolve()}" in done.stdout

    async def server_records() -> tuple[list, list, list]:
        async with get_client() as client:
            runs = await client.read_flow_runs()
            artifacts = await client.read_latest_artifacts()
            task_runs = await client.read_task_runs()
            return runs, artifacts, task_runs

    runs, artifacts, task_runs = asyncio.run(server_records())
    names = {task_run.name for task_run in task_runs}
    # One task run per chunk of products (both products in one chunk here), not one per product or batch.
    assert "chunk-SKU-00" in names and not any(
        name.startswith(("prepare-", "render-", "sheet-")) for name in names
    )
    assert any(
        run.state_name == "Completed" and run.parameters.get("out_dir") == str(tmp_path / "out")
        for run in runs
    )
    assert {"onmodel-run-summary", "onmodel-run-index", "onmodel-device-utilisation"} <= {
        a.key for a in artifacts
    }
    assert "device cpu " in done.stdout and "% busy" in done.stdout


def test_bad_renderer_option_stops_the_run_before_any_work(tmp_path: Path) -> None:
    """Checked up front: a clear one-line error, exit 2, no flow run, nothing rendered or written."""
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(
        tmp_path,
        variants=1,
        renderer={"name": "draft", "batch_size": 2, "options": {"skin_tones": ["not-a-colour"]}},
    )
    done = _onmodel(
        "run",
        str(csv_path),
        "--config",
        str(profile),
        "--out",
        str(tmp_path / "out"),
        "--no-progress",
        env={**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()},
    )
    assert done.returncode == 2, done.stdout + done.stderr
    assert "error:" in done.stderr and "'not-a-colour' is not a '#RRGGBB' colour" in done.stderr
    assert "Traceback" not in done.stderr + done.stdout
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    ("flag", "value", "message"),
    [
        ("--preset", "amazn", "preset 'amazn' is not in presets.yaml; choose one of: amazon"),
        ("--device", "gpu", "device 'gpu' is not a device; use cpu, cuda"),
    ],
)
def test_bad_preset_or_device_is_refused_before_any_work(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flag: str, value: str, message: str
) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    code = main(["run", str(csv_path), "--out", str(tmp_path / "out"), "--no-progress", flag, value])
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_run_exits_non_zero_and_the_flow_run_fails_when_jobs_fail(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = small_profile(tmp_path, variants=1)

    def broken(self: DraftRenderer, jobs: list) -> list:
        raise RenderError("the renderer refused")

    monkeypatch.setattr(DraftRenderer, "__call__", broken)
    caches._renderer.cache_clear()
    out = tmp_path / "out"
    code = main(["run", str(csv_path), "--config", str(profile), "--out", str(out), "--no-progress"])
    assert code == 1
    assert "failed 2" in capsys.readouterr().out
    manifest = list(csv.DictReader((out / "manifest.csv").open()))
    assert {r["state"] for r in manifest if r["kind"] == "job"} == {"failed"}

    async def flow_run_states() -> list[str]:
        async with get_client() as client:
            return [
                r.state_name for r in await client.read_flow_runs() if r.parameters.get("out_dir") == str(out)
            ]

    assert asyncio.run(flow_run_states()) == ["Failed"]


def test_validate_applies_the_profiles_image_policy(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The same verdict as `run` with that profile: an absolute photo path outside the CSV folder is fine
    when the profile allows its folder, and rejected under the demo profile."""
    rows = write_flatlays(tmp_path / "photos", 1)
    rows[0]["image"] = str(tmp_path / "photos" / rows[0]["image"])
    (tmp_path / "csv").mkdir()
    csv_path = write_csv(tmp_path / "csv" / "products.csv", rows)
    profile = small_profile(tmp_path, images={"allowed_roots": [str(tmp_path / "photos")]})
    assert main(["validate", str(csv_path)]) == 1
    assert "1 rows rejected" in capsys.readouterr().out
    assert main(["validate", str(csv_path), "--config", str(profile)]) == 0
    assert "1 products ok, 0 rows rejected" in capsys.readouterr().out
    assert main(["validate", str(tmp_path / "missing.csv")]) == 2


def test_missing_csv_is_a_clear_error(tmp_path: Path) -> None:
    done = _onmodel("run", str(tmp_path / "nope.csv"))
    assert done.returncode == 2
    assert "does not exist" in done.stderr


def test_demo_runs_a_generated_catalogue(tmp_path: Path, capsys) -> None:
    code = main(["demo", "--synthetic", "--products", "2", "--out", str(tmp_path / "demo"), "--no-progress"])
    printed = capsys.readouterr().out
    assert code == 0, printed
    assert "demo catalogue: 2 generated flat-lays" in printed
    assert f"run index: {(tmp_path / 'demo' / 'index.html').resolve()}" in printed
    assert len(list((tmp_path / "demo" / "sheets").glob("*.jpg"))) == 2


def test_rejects_exit_3_unless_allowed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    rows.append({"sku": "BAD-1", "image": "g00.png", "category": "umbrella"})
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    profile = str(small_profile(tmp_path, variants=1))
    base = ["run", str(csv_path), "--config", profile, "--out", str(tmp_path / "out"), "--no-progress"]
    assert main(base) == 3
    assert "rejected 1" in capsys.readouterr().out
    assert main([*base, "--allow-rejects"]) == 0  # the second run skips the produced jobs, still one reject


def test_bare_command_version_and_every_help_has_an_example(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 0
    assert "run" in capsys.readouterr().out
    with pytest.raises(SystemExit) as version:
        main(["--version"])
    assert version.value.code == 0 and capsys.readouterr().out.startswith("onmodel 0.")
    for command in (
        ["run"],
        ["validate"],
        ["segment"],
        ["reproduce"],
        ["models"],
        ["models", "download"],
        ["demo"],
    ):
        with pytest.raises(SystemExit):
            main([*command, "--help"])
        assert "example:\n  onmodel " in capsys.readouterr().out, command


def test_validate_deep_opens_the_photos(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_flatlays(tmp_path / "in", 2)
    whole = (tmp_path / "in" / "g01.png").read_bytes()
    (tmp_path / "in" / "g01.png").write_bytes(whole[: len(whole) // 2])  # truncated in transfer
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    assert main(["validate", str(csv_path)]) == 0  # the file is there: the shallow check cannot tell
    capsys.readouterr()
    assert main(["validate", str(csv_path), "--deep"]) == 1
    verdict = capsys.readouterr().out
    assert "1 products ok, 1 rows rejected" in verdict and "column 'image' (SKU SKU-01)" in verdict


def test_unreachable_prefect_server_is_one_clear_line(tmp_path: Path) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    env = {**os.environ, "PREFECT_API_URL": "http://127.0.0.1:9/api"}  # nothing listens on port 9
    done = _onmodel("run", str(csv_path), "--out", str(tmp_path / "out"), "--no-progress", env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "PREFECT_API_URL=http://127.0.0.1:9/api does not answer" in done.stderr
    assert "prefect server start --host 127.0.0.1" in done.stderr and "Traceback" not in done.stderr


def test_output_piped_into_head_ends_quietly(tmp_path: Path) -> None:
    header = "sku,image,category\n"
    bad_rows = "".join(f"BAD-{i},missing-{i}.png,t-shirt\n" for i in range(4000))  # ~400 kB of verdict
    (tmp_path / "big.csv").write_text(header + bad_rows)
    done = subprocess.run(
        f"{sys.executable} -m flows.cli validate {tmp_path / 'big.csv'} | head -n 1",
        shell=True, cwd=ROOT, capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
    )  # fmt: skip
    assert done.stdout.startswith("Read as:")
    assert "Traceback" not in done.stderr and "BrokenPipeError" not in done.stderr, done.stderr


def test_status_of_an_output_folder(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rows = write_flatlays(tmp_path / "in", 1)
    csv_path = write_csv(tmp_path / "in" / "products.csv", rows)
    out = tmp_path / "out"
    assert (
        main(
            [
                "run",
                str(csv_path),
                "--config",
                str(small_profile(tmp_path, variants=1)),
                "--out",
                str(out),
                "--no-progress",
            ]
        )
        == 0
    )
    capsys.readouterr()
    assert main(["status", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert (
        printed.startswith("catalogue: 1 products (produced 1); 2 images (produced 2)")
        and "runs (1):" in printed
    )
    assert main(["status", "--out", str(tmp_path / "nowhere")]) == 2
