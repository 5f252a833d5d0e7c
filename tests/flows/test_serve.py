"""`onmodel serve` against a real `prefect server` on 127.0.0.1: registration, the schedule firing, both ways in."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from catalog.state import open_job_store
from flows.cli import build_parser
from flows.entrypoints import NIGHTLY_WORKERS_ENV, UPLOAD_WORKERS_ENV, nightly_flow, task_workers, upload_flow
from flows.produce import produce_catalog
from flows.serve import (
    FLOW_NAME,
    NIGHTLY,
    UPLOAD,
    ServeConfigError,
    ServeOptions,
    build_deployments,
    check_options,
    options_from_args,
    task_runner_environment,
)
from pipelines.production.inbox import ARCHIVE_DIR, LEDGER_NAME, UploadLedger
from pipelines.production.profile import load_profile
from tests.serving import (
    ROOT,
    TEST_CRON,
    TEST_TIMEZONE,
    UPLOAD_TOKEN,
    PrefectServer,
    ServedCatalogue,
    quiet_prefect_env,
    wait_until,
)

AUTH = {"Authorization": f"Bearer {UPLOAD_TOKEN}"}


def _images(out: Path, sku: str) -> list[str]:
    return sorted(p.name for p in (out / "images" / "master" / sku).glob("*.png"))


def _concurrency(deployment: Any) -> tuple[int | None, str | None]:
    limit, options = deployment.global_concurrency_limit, deployment.concurrency_options
    return (limit.limit if limit else None), (options.collision_strategy.value if options else None)


def test_flow_name_is_produce_catalogs() -> None:
    assert FLOW_NAME == produce_catalog.name == nightly_flow.name == upload_flow.name


def test_serve_defaults_are_two_at_night_utc_with_bounded_runners(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--catalogue", str(tmp_path / "c.csv")])
    options = options_from_args(args)
    assert (options.cron, options.timezone, options.upload_host) == ("0 2 * * *", "UTC", "127.0.0.1")
    nightly, upload = build_deployments(ServeOptions(catalogue="c.csv", timezone="America/New_York"))
    [schedule] = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone) == ("0 2 * * *", "America/New_York")
    assert upload.schedules == []
    assert "device" not in nightly.parameters  # cpu is the flow's default; a GPU device is passed by name
    gpu = build_deployments(ServeOptions(catalogue="c.csv", profile="sd15", device="cuda:1"))
    assert [d.parameters["device"] for d in gpu] == ["cuda:1", "cuda:1"]
    with pytest.raises(ServeConfigError, match="float16 needs a CUDA device"):
        check_options(ServeOptions(catalogue="c.csv", profile="sd15"))
    # Every served run gets an explicit, bounded thread pool: the profile's width unless given.
    workers = str(load_profile("demo").run["max_workers"])
    environment = task_runner_environment(ServeOptions(catalogue="c.csv"))
    assert environment == {NIGHTLY_WORKERS_ENV: workers, UPLOAD_WORKERS_ENV: workers}
    wide = task_runner_environment(ServeOptions(catalogue="c.csv", nightly_workers=5, upload_workers=1))
    assert wide == {NIGHTLY_WORKERS_ENV: "5", UPLOAD_WORKERS_ENV: "1"}
    assert (nightly.entrypoint, upload.entrypoint) == (
        "flows.entrypoints.nightly_flow",
        "flows.entrypoints.upload_flow",
    )


def test_served_deployments_register_with_their_schedule(served: ServedCatalogue) -> None:
    nightly, upload = served.deployment(NIGHTLY), served.deployment(UPLOAD)
    [schedule] = nightly.schedules
    assert (schedule.schedule.cron, schedule.schedule.timezone, schedule.active) == (
        TEST_CRON,
        TEST_TIMEZONE,
        True,
    )
    assert not nightly.paused
    assert nightly.parameters == {
        "csv_path": str(served.catalogue),
        "profile": str(served.profile),
        "out_dir": str(served.out),
    }
    assert _concurrency(nightly) == (1, "ENQUEUE")
    assert upload.schedules == []
    assert upload.parameters == {"profile": str(served.profile), "out_dir": str(served.out)}
    assert _concurrency(upload) == (1, "ENQUEUE")
    assert set(upload.tags) == {"onmodel", "upload"}


def _upload_verdicts(inbox: Path) -> dict[str, Any]:
    return {entry.verdict.name: entry for entry in UploadLedger(inbox / LEDGER_NAME).entries()}


def test_inbox_csv_is_archived_reported_and_its_good_rows_render(
    served: ServedCatalogue, tmp_path: Path
) -> None:
    # 1. Written elsewhere, then renamed into the inbox (what a careful writer does; a slow one is covered below).
    staged = served.upload_csv(tmp_path / "drop.csv", ["IN-1", "IN-2", "IN-BAD"], [0, 1, -1])
    content = staged.read_bytes()
    os.replace(staged, served.inbox / "drop.csv")

    def started() -> Any:  # the ledger claims the content first, then records the run it started
        entry = _upload_verdicts(served.inbox).get("drop.csv")
        return entry if entry is not None and entry.flow_run_id else None

    entry = wait_until(started, 30, "the inbox to start a run for drop.csv")
    # 2. Moved to the archive with its rejects report beside it; the inbox is empty again.
    archived = Path(entry.verdict.csv_path)
    assert archived.parent == served.inbox / ARCHIVE_DIR
    assert archived.name.endswith("__drop.csv") and archived.read_bytes() == content
    assert not (served.inbox / "drop.csv").exists()
    report = Path(entry.verdict.rejects_report)
    assert report == archived.with_name(archived.stem + ".rejects.csv")
    [reject] = list(csv.DictReader(report.open()))
    assert (reject["row"], reject["sku"], reject["column"]) == ("4", "IN-BAD", "image")
    assert "does not exist" in reject["reason"]
    # 3. The csv-upload run reads the archived CSV and renders exactly the good rows.
    run = served.wait_for_run(entry.flow_run_id)
    assert run.state.is_completed(), served.log[-3000:]
    assert run.parameters["csv_path"] == str(archived)
    assert _images(served.out, "IN-1") and _images(served.out, "IN-2")
    assert not (served.out / "images" / "master" / "IN-BAD").exists()


def test_partially_written_inbox_files_are_left_alone(served: ServedCatalogue, tmp_path: Path) -> None:
    rows = served.upload_rows(["PART-1"], [-1])  # nothing renderable: no run, just the verdict
    part = served.inbox / "slow.csv.part"
    hidden = served.inbox / ".slow.csv"
    for path in (part, hidden):
        with path.open("w") as handle:
            handle.write("sku,image,category\n")  # a header, then the writer stalls
    time.sleep(3)  # six polls
    assert part.exists() and hidden.exists()
    assert not any("slow" in p.name for p in (served.inbox / ARCHIVE_DIR).iterdir())
    # The writer finishes and renames: now it is picked up (the watcher was alive all along).
    with part.open("a") as handle:
        handle.write(f"{rows[0]['sku']},{rows[0]['image']},{rows[0]['category']}\n")
    os.replace(part, served.inbox / "slow.csv")
    [archived] = wait_until(
        lambda: list((served.inbox / ARCHIVE_DIR).glob("*__slow.csv")), 30, "slow.csv in the archive"
    )
    assert "PART-1" in archived.read_text()
    assert wait_until(lambda: archived.with_name(archived.stem + ".rejects.csv").exists(), 10, "its report")
    assert hidden.exists()  # dotfiles are never taken


def test_endpoint_upload_renders_once_and_answers_with_the_run(
    served: ServedCatalogue, tmp_path: Path
) -> None:
    body = served.upload_csv(tmp_path / "web.csv", ["WEB-1", "WEB-BAD"], [2, -1]).read_bytes()
    # 1. A raw text/csv body: answered at once with the verdict and the run it started.
    answer = httpx.post(
        served.upload_url,
        params={"name": "web.csv"},
        content=body,
        headers=AUTH | {"Content-Type": "text/csv"},
        trust_env=False,
        timeout=30,
    )
    assert answer.status_code == 202, answer.text
    verdict = answer.json()
    assert (verdict["accepted"], verdict["rejected_rows"], verdict["duplicate"]) == (1, 1, False)
    [reject] = verdict["rejects"]
    assert (reject["row"], reject["sku"], reject["column"]) == (3, "WEB-BAD", "image")
    assert "does not exist" in reject["reason"]
    run = served.wait_for_run(verdict["flow_run_id"])
    assert run.state.is_completed(), served.log[-3000:]
    assert _images(served.out, "WEB-1")
    # The state store knows the run and what started it.
    recorded = [r for r in open_job_store(served.out / "state.sqlite").list_runs() if r.trigger == "upload"]
    assert any(r.csv.endswith("web.csv") and r.status == "completed" for r in recorded), recorded
    produced = {p: p.stat().st_mtime_ns for p in (served.out / "images" / "master" / "WEB-1").iterdir()}
    runs_before = len(served.flow_runs(UPLOAD))
    # 2. The same bytes again, as a multipart form: the earlier run's id, no second run, nothing re-rendered.
    again = httpx.post(
        served.upload_url,
        files={"file": ("web-again.csv", body, "text/csv")},
        headers=AUTH,
        trust_env=False,
        timeout=30,
    )
    assert again.status_code == 200, again.text
    assert again.json()["duplicate"] is True
    assert again.json()["flow_run_id"] == verdict["flow_run_id"]
    time.sleep(1.5)
    assert len(served.flow_runs(UPLOAD)) == runs_before
    assert {
        p: p.stat().st_mtime_ns for p in (served.out / "images" / "master" / "WEB-1").iterdir()
    } == produced


def test_every_minute_schedule_creates_and_runs_a_flow_run(served: ServedCatalogue) -> None:
    """The schedule itself (not a manual trigger) creates a run and the served process executes it."""

    def completed_scheduled_run() -> Any:
        runs = [run for run in served.flow_runs(NIGHTLY) if run.auto_scheduled]
        return next((run for run in runs if run.state is not None and run.state.is_completed()), None)

    # The first run is due within a minute of registration; the wait is bounded from the served process's start.
    remaining = max(5.0, 100 - (time.time() - served.started_at))
    run = wait_until(completed_scheduled_run, remaining, f"a scheduled nightly run\n{served.log[-3000:]}", 2)
    assert run.expected_start_time.second == 0  # a cron minute, not "now"
    assert run.parameters["csv_path"] == str(served.catalogue)
    assert _images(served.out, "SKU-00")
    recorded = open_job_store(served.out / "state.sqlite").list_runs()
    assert any(r.trigger == "nightly" and r.status == "completed" for r in recorded), recorded


def test_serve_without_a_server_is_one_clear_line(tmp_path: Path) -> None:
    env = quiet_prefect_env(tmp_path / "home") | {"PREFECT_API_URL": "http://127.0.0.1:9/api"}
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", "--catalogue", "c.csv"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2
    assert "http://127.0.0.1:9/api does not answer" in done.stderr
    assert "prefect server start --host 127.0.0.1" in done.stderr
    assert "Traceback" not in done.stderr
    unset = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", "--catalogue", "c.csv"],
        cwd=ROOT, env=quiet_prefect_env(tmp_path / "home"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert unset.returncode == 2 and "PREFECT_API_URL is not set" in unset.stderr


def test_serve_refuses_a_public_endpoint_without_a_token(
    prefect_server: PrefectServer, tmp_path: Path
) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "flows.cli", "serve", "--catalogue", "c.csv", "--upload-host", "0.0.0.0"],
        cwd=tmp_path, env=prefect_server.client_env(tmp_path / "home"), capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2, done.stdout + done.stderr
    assert "reachable from other machines, without a token" in done.stderr
    assert "Traceback" not in done.stderr
    assert not (tmp_path / "inbox").exists()  # refused before the default inbox/ was made


def _yaml_deployments() -> dict[str, dict[str, Any]]:
    from prefect.cli.deploy._models import PrefectYamlModel

    data = yaml.safe_load((ROOT / "prefect.yaml").read_text())
    PrefectYamlModel.model_validate(data)  # the model `prefect deploy` validates the file with
    return {deployment["name"]: deployment for deployment in data["deployments"]}


def test_prefect_yaml_describes_what_serve_builds() -> None:
    described = _yaml_deployments()
    nightly_yaml, upload_yaml = described[NIGHTLY], described[UPLOAD]
    [schedule] = nightly_yaml["schedules"]
    parameters = nightly_yaml["parameters"]
    options = ServeOptions(
        catalogue=parameters["csv_path"],
        profile=parameters["profile"],
        out_dir=parameters["out_dir"],
        cron=schedule["cron"],
        timezone=schedule["timezone"],
    )
    nightly, upload = build_deployments(options)
    environment = task_runner_environment(options)
    assert (schedule["cron"], schedule["timezone"]) == ("0 2 * * *", "UTC")
    assert (nightly.schedules[0].schedule.cron, nightly.schedules[0].schedule.timezone) == (
        schedule["cron"],
        schedule["timezone"],
    )
    assert nightly.parameters == parameters
    assert upload.parameters == upload_yaml["parameters"] and upload_yaml["schedules"] == []
    for served_deployment, written in ((nightly, nightly_yaml), (upload, upload_yaml)):
        assert served_deployment.name == written["name"]
        assert set(served_deployment.tags) == set(written["tags"])
        strategy = served_deployment.concurrency_options.collision_strategy.value
        assert (served_deployment.concurrency_limit, strategy) == (
            written["concurrency_limit"]["limit"],
            written["concurrency_limit"]["collision_strategy"],
        )
        # The same flow and the same task-runner width as served with this profile.
        module, flow_name = served_deployment.entrypoint.rsplit(".", 1)
        assert written["entrypoint"] == f"{module.replace('.', '/')}.py:{flow_name}"
        env = written["work_pool"]["job_variables"]["env"]
        assert env == {key: environment[key] for key in env} and len(env) == 1


def test_prefect_yaml_deploys_to_a_real_server(tmp_path: Path) -> None:
    """`prefect deploy --all` accepts the file and registers both deployments as written."""
    server = PrefectServer(home=tmp_path / "server").start()
    try:
        env = server.client_env(tmp_path / "client")
        prefect = [sys.executable, "-m", "prefect"]
        created = subprocess.run(
            [*prefect, "work-pool", "create", "onmodel", "--type", "process"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
        assert created.returncode == 0, created.stdout + created.stderr
        deployed = subprocess.run(
            [*prefect, "--no-prompt", "deploy", "--all"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
        )  # fmt: skip
        assert deployed.returncode == 0, deployed.stdout + deployed.stderr
        described = _yaml_deployments()
        with server.client() as client:
            for name in (NIGHTLY, UPLOAD):
                registered = client.read_deployment_by_name(f"{FLOW_NAME}/{name}")
                written = described[name]
                assert registered.parameters == written["parameters"]
                assert registered.work_pool_name == "onmodel"
                assert registered.job_variables["env"] == written["work_pool"]["job_variables"]["env"]
                assert registered.entrypoint == written["entrypoint"]
                assert _concurrency(registered) == (1, "ENQUEUE")
                assert [(s.schedule.cron, s.schedule.timezone) for s in registered.schedules] == [
                    (s["cron"], s["timezone"]) for s in written["schedules"]
                ]
    finally:
        server.stop()


@pytest.mark.parametrize("value, expected", [("3", 3), ("0", 1), ("", None), ("many", None)])
def test_entrypoint_workers_come_from_the_environment(value: str, expected: int | None) -> None:
    from flows.produce import DEFAULT_MAX_WORKERS

    assert task_workers(NIGHTLY_WORKERS_ENV, {NIGHTLY_WORKERS_ENV: value}) == (
        expected or DEFAULT_MAX_WORKERS
    )


def _scheduled_runs(served: ServedCatalogue) -> list[Any]:
    return [
        run for run in served.flow_runs(NIGHTLY) if run.state_type.value == "SCHEDULED" and run.auto_scheduled
    ]


def test_a_clean_stop_pauses_the_schedule_and_a_restart_resumes_it(tmp_path: Path) -> None:
    """What the README says happens to schedules when the served process stops (own server: it stops it)."""
    server = PrefectServer(home=tmp_path / "server").start()
    served = ServedCatalogue(server, tmp_path / "served").prepare()
    try:
        served.start()
        wait_until(lambda: _scheduled_runs(served), 30, "the scheduler to create the coming runs")
        assert not served.deployment(NIGHTLY).paused
        # 1. SIGTERM (systemctl stop): the served process exits cleanly and pauses its deployments.
        served.stop()
        assert served.process is not None and served.process.returncode == 0, served.log[-3000:]
        assert served.deployment(NIGHTLY).paused and served.deployment(UPLOAD).paused
        assert _scheduled_runs(served) == []  # the coming runs are deleted, nothing fires while it is down
        # 2. Started again: registered unpaused, and the scheduler plans the coming runs again.
        served.start()  # ready once it printed its banner; registering follows within moments
        wait_until(lambda: not served.deployment(NIGHTLY).paused, 30, "the restart to unpause the deployment")
        wait_until(lambda: _scheduled_runs(served), 30, "the scheduler to plan again")
    finally:
        served.stop()
        server.stop()
