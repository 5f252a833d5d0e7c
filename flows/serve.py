"""`onmodel serve`: the nightly-catalog and csv-upload deployments in one long-running process, plus the inbox
watcher and the upload endpoint that start csv-upload runs. Prefect wiring only; the upload logic lives in
pipelines/production/inbox.py and webapp/upload.py.
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pipelines.production.outcomes import EXIT_USAGE

if TYPE_CHECKING:  # Prefect and the flow load when `serve` runs, not for every `onmodel` command
    from prefect.client.schemas.objects import FlowRun
    from prefect.deployments.runner import RunnerDeployment

    from pipelines.production.inbox import StartRun, UploadDesk, UploadVerdict

FLOW_NAME = "produce-catalog"  # produce_catalog's name (checked by tests/flows/test_serve.py)
NIGHTLY = "nightly-catalog"
UPLOAD = "csv-upload"
DEFAULT_CRON = "0 2 * * *"
TOKEN_ENV = "ONMODEL_UPLOAD_TOKEN"

logger = logging.getLogger("onmodel.serve")


@dataclass(frozen=True)
class ServeOptions:
    """What `onmodel serve` serves: the two deployments, the inbox and the upload endpoint."""

    catalogue: str | None = None  # the nightly run's product CSV (required when serving the deployments)
    profile: str = "demo"
    out_dir: str = "outputs"
    device: str = "cpu"  # the flow's device parameter; passed to runs only when not cpu (the flow's default)
    cron: str = DEFAULT_CRON
    timezone: str = "UTC"
    inbox: str | None = "inbox"  # None: no inbox watcher
    poll_s: float = 2.0
    upload_host: str = "127.0.0.1"
    upload_port: int | None = 8750  # None: no upload endpoint
    upload_token: str | None = None
    max_upload_bytes: int = 20_000_000
    nightly_workers: int | None = None  # task runner threads; None: the profile's run.max_workers
    upload_workers: int | None = None
    nightly_concurrency: int = 1  # flow runs of a deployment at once; more wait (ENQUEUE)
    upload_concurrency: int = 1
    deployments: bool = True  # False: only the inbox and endpoint, the deployments are served elsewhere

    @property
    def run_limit(self) -> int:
        """Flow runs this process executes at once: both deployments' limits."""
        return self.nightly_concurrency + self.upload_concurrency


class ServeConfigError(ValueError):
    """`onmodel serve` cannot start as asked; the message says what to change."""


def _as_path_parameter(value: str) -> str:
    """Absolute when it names a file (the runs may start elsewhere); a profile name stays a name."""
    candidate = Path(value)
    return str(candidate.resolve()) if candidate.suffix or candidate.exists() else value


def check_options(options: ServeOptions) -> None:
    """Cron, timezone, limits and the profile, checked before anything registers or listens."""
    from prefect.client.schemas.schedules import CronSchedule

    from flows import caches
    from pipelines.production.profile import ProfileError, load_profile
    from pipelines.production.validate import RunConfigError, check_run

    if options.deployments and not options.catalogue:
        raise ServeConfigError(
            "the nightly-catalog deployment needs its product CSV: give --catalogue PATH (or --no-deployments)."
        )
    try:
        CronSchedule(cron=options.cron, timezone=options.timezone)
    except ValueError as error:
        reason = str(error).splitlines()[-1] if str(error) else type(error).__name__
        raise ServeConfigError(
            f"cron {options.cron!r} with timezone {options.timezone!r} is not a schedule ({reason}); "
            "write five fields, e.g. '0 2 * * *' for 02:00 every night."
        ) from error
    try:
        ZoneInfo(options.timezone)
    except (ZoneInfoNotFoundError, ValueError) as error:
        raise ServeConfigError(
            f"timezone {options.timezone!r} is not an IANA time zone; use e.g. UTC, Europe/Berlin, America/New_York."
        ) from error
    for name in ("nightly_concurrency", "upload_concurrency", "nightly_workers", "upload_workers"):
        value = getattr(options, name)
        if value is not None and value < 1:
            raise ServeConfigError(f"--{name.replace('_', '-')} must be >= 1; got {value}.")
    try:
        profile = load_profile(options.profile)
        check_run(profile, device=options.device, presets=caches.presets(), poses=caches.pose_library())
    except (ProfileError, RunConfigError) as error:
        raise ServeConfigError(str(error)) from error


def task_runner_environment(options: ServeOptions) -> dict[str, str]:
    """The thread-pool widths of the two deployments' runs (flows/entrypoints.py reads them in the run process):
    as given, else the profile's run.max_workers."""
    from flows.entrypoints import NIGHTLY_WORKERS_ENV, UPLOAD_WORKERS_ENV
    from flows.produce import DEFAULT_MAX_WORKERS
    from pipelines.production.profile import load_profile

    default = max(1, int(load_profile(options.profile).run.get("max_workers", DEFAULT_MAX_WORKERS)))
    return {
        NIGHTLY_WORKERS_ENV: str(options.nightly_workers or default),
        UPLOAD_WORKERS_ENV: str(options.upload_workers or default),
    }


@dataclass(frozen=True)
class ServedDeployment:
    """One deployment as served: the flow's entry point, and its schedule, parameters and limit."""

    name: str
    entrypoint: str  # module path in flows/entrypoints.py (a checkout or an installed package)
    options: dict[str, Any]  # keyword arguments of RunnerDeployment.from_entrypoint (and Flow.to_deployment)

    def to_deployment(self) -> RunnerDeployment:
        from prefect.deployments.runner import RunnerDeployment

        return RunnerDeployment.from_entrypoint(self.entrypoint, self.name, **self.options)


def served_deployments(options: ServeOptions) -> list[ServedDeployment]:
    """nightly-catalog (cron in the timezone) and csv-upload (no schedule), each with its runner and limit."""
    from prefect.client.schemas.objects import ConcurrencyLimitConfig, ConcurrencyLimitStrategy
    from prefect.client.schemas.schedules import CronSchedule

    if not options.catalogue:
        raise ServeConfigError("the nightly-catalog deployment needs --catalogue PATH.")
    profile, out_dir = _as_path_parameter(options.profile), _out_parameter(options.out_dir)
    device = _device_parameter(options.device)
    nightly = {
        "schedule": CronSchedule(cron=options.cron, timezone=options.timezone),
        "parameters": {
            "csv_path": str(Path(options.catalogue).resolve()),
            "profile": profile,
            "out_dir": out_dir,
            **device,
        },
        "concurrency_limit": ConcurrencyLimitConfig(
            limit=options.nightly_concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        "description": "The whole catalogue every night; unchanged products are skipped.",
        "tags": ["onmodel", "nightly"],
    }
    upload = {
        "parameters": {"profile": profile, "out_dir": out_dir, **device},  # csv_path comes with each run
        "concurrency_limit": ConcurrencyLimitConfig(
            limit=options.upload_concurrency, collision_strategy=ConcurrencyLimitStrategy.ENQUEUE
        ),
        "description": "One uploaded CSV (inbox or HTTP endpoint); started by onmodel serve, once per content.",
        "tags": ["onmodel", "upload"],
    }
    return [
        ServedDeployment(NIGHTLY, "flows.entrypoints.nightly_flow", nightly),
        ServedDeployment(UPLOAD, "flows.entrypoints.upload_flow", upload),
    ]


def build_deployments(options: ServeOptions) -> list[RunnerDeployment]:
    """The two deployments as Prefect's RunnerDeployment objects (what `onmodel serve` registers)."""
    return [served.to_deployment() for served in served_deployments(options)]


def _out_parameter(out_dir: str) -> str:
    """The output location as runs get it: a folder as an absolute path, an fsspec URL (s3://...) as given."""
    return out_dir if "://" in out_dir else str(Path(out_dir).resolve())


def _device_parameter(device: str) -> dict[str, str]:
    """{'device': ...} for a GPU run; nothing for cpu, the flow's default (the parameters stay csv_path,
    profile, out_dir)."""
    text = device.strip().lower()
    return {} if text == "cpu" else {"device": text}


def upload_starter(profile: str, out_dir: str, device: str = "cpu") -> StartRun:
    """Start a csv-upload run for an archived CSV without waiting (timeout=0); the key makes it idempotent."""
    from prefect.deployments import run_deployment

    parameters = {
        "profile": _as_path_parameter(profile),
        "out_dir": _out_parameter(out_dir),
        **_device_parameter(device),
    }

    def start(csv_path: Path, key: str) -> str:
        flow_run = run_deployment(
            f"{FLOW_NAME}/{UPLOAD}",
            parameters={"csv_path": str(csv_path), **parameters},
            timeout=0,
            idempotency_key=key,
            as_subflow=False,
            tags=["onmodel", "upload"],
        )
        return str(cast("FlowRun", flow_run).id)  # sync call: a FlowRun, not a coroutine

    return start


def upload_desk(options: ServeOptions, inbox: Path) -> UploadDesk:
    """The desk both ways in share: validation with the served profile, runs of the csv-upload deployment."""
    from flows import caches
    from pipelines.production.inbox import UploadDesk
    from pipelines.production.profile import load_profile
    from pipelines.production.validate import validate

    profile = load_profile(options.profile)
    target = f"{_as_path_parameter(options.profile)}|{_out_parameter(options.out_dir)}"
    return UploadDesk(
        inbox,
        validate_csv=lambda path: validate(path, profile, poses=caches.pose_library()),
        start_run=upload_starter(options.profile, options.out_dir, options.device),
        target=target,
    )


def _log_verdict(verdict: UploadVerdict) -> None:
    if verdict.duplicate:
        print(f"inbox: {verdict.name} was received before; its run is {verdict.flow_run_id}", flush=True)
    elif verdict.flow_run_id:
        print(
            f"inbox: {verdict.name}: {verdict.accepted} products, {verdict.rejected_rows} rows rejected; "
            f"csv-upload run {verdict.flow_run_id}",
            flush=True,
        )
    else:
        print(f"inbox: {verdict.name}: nothing to render; see {verdict.rejects_report}", flush=True)


def server_problem() -> str | None:
    """Why there is no Prefect server to serve against (none named, or not answering), or None."""
    import httpx
    from prefect.settings import PREFECT_API_URL

    url = PREFECT_API_URL.value()
    start = "`prefect server start --host 127.0.0.1` (in another terminal, or as a service: see the README)"
    if not url:
        return (
            "onmodel serve needs a Prefect server (schedules and runs live there), and PREFECT_API_URL is not "
            f"set. Start one with {start} and set PREFECT_API_URL=http://127.0.0.1:4200/api."
        )
    try:  # the same probe as `onmodel run` (flows/cli.py), with what serve needs instead
        httpx.get(f"{url.rstrip('/')}/health", timeout=5.0, trust_env=False).raise_for_status()
    except httpx.HTTPError as error:
        return (
            f"the Prefect server at PREFECT_API_URL={url} does not answer ({type(error).__name__}). Start it "
            f"with {start}, or point PREFECT_API_URL at the one you run."
        )
    return None


def serve_catalogue(options: ServeOptions) -> int:
    """Serve until stopped (Ctrl-C or SIGTERM); the deployments' schedules are paused when it stops."""
    from prefect import serve
    from prefect.settings import PREFECT_API_URL

    from pipelines.production.inbox import InboxWatcher
    from webapp.upload import UploadConfigError, UploadServer, check_binding, create_app

    # 1. Everything checked before anything registers, listens or watches.
    if problem := server_problem():
        print(f"error: {problem}", file=sys.stderr)
        return EXIT_USAGE
    try:
        check_options(options)
        if options.upload_port is not None:  # before any folder is made
            check_binding(options.upload_host, options.upload_token, options.max_upload_bytes)
        deployments = build_deployments(options) if options.deployments else []
        # The run processes read their thread-pool widths from here (flows/entrypoints.py).
        os.environ.update(task_runner_environment(options))
        desk = upload_desk(options, Path(options.inbox or "inbox"))
        app = None
        if options.upload_port is not None:
            app = create_app(
                desk, token=options.upload_token, max_bytes=options.max_upload_bytes, host=options.upload_host
            )
    except (ServeConfigError, UploadConfigError) as error:
        print(f"error: {error}", file=sys.stderr)
        return EXIT_USAGE
    if options.catalogue and options.deployments and not Path(options.catalogue).exists():
        print(f"warning: the nightly catalogue {options.catalogue} does not exist (yet)", file=sys.stderr)
    # 2. The inbox watcher and the upload endpoint in threads; they start csv-upload runs.
    stop = threading.Event()
    threads: list[threading.Thread] = []
    if options.inbox is not None:
        watcher = InboxWatcher(desk, poll_s=options.poll_s, on_verdict=_log_verdict)
        threads.append(threading.Thread(target=watcher.run, args=(stop,), name="onmodel-inbox", daemon=True))
        threads[-1].start()
        print(f"inbox: {desk.inbox.resolve()} (archive: {desk.archive.resolve()})", flush=True)
    endpoint = None
    if app is not None and options.upload_port is not None:
        try:
            endpoint = UploadServer(app, options.upload_host, options.upload_port).start()
        except UploadConfigError as error:
            stop.set()
            print(f"error: {error}", file=sys.stderr)
            return EXIT_USAGE
        print(f"upload endpoint: {endpoint.url}/uploads", flush=True)
    # 3. Serve the deployments (blocks; Prefect pauses their schedules on a clean stop).
    try:
        if deployments:
            print(
                f"serving {FLOW_NAME}/{NIGHTLY} (cron {options.cron!r}, {options.timezone}) and "
                f"{FLOW_NAME}/{UPLOAD} against {PREFECT_API_URL.value()}",
                flush=True,
            )
            # Blocks until Ctrl-C or SIGTERM; Prefect then pauses the deployments' schedules.
            serve(*deployments, limit=options.run_limit, print_starting_message=False)
        else:
            stop.wait()
    except KeyboardInterrupt:
        pass
    finally:
        stop.set()
        if endpoint is not None:
            endpoint.stop()
        for thread in threads:
            thread.join(timeout=10)
    return 0


def options_from_args(args: argparse.Namespace) -> ServeOptions:
    return ServeOptions(
        catalogue=args.catalogue,
        profile=args.config,
        device=args.device,
        out_dir=args.out,
        cron=args.cron,
        timezone=args.timezone,
        inbox=None if args.no_inbox else args.inbox,
        poll_s=args.poll_seconds,
        upload_host=args.upload_host,
        upload_port=None if args.no_upload_endpoint else args.upload_port,
        upload_token=args.upload_token or os.environ.get(TOKEN_ENV) or None,
        max_upload_bytes=args.max_upload_bytes,
        nightly_workers=args.nightly_workers,
        upload_workers=args.upload_workers,
        nightly_concurrency=args.nightly_concurrency,
        upload_concurrency=args.upload_concurrency,
        deployments=not args.no_deployments,
    )


def cmd_serve(args: argparse.Namespace) -> int:
    """Serve the nightly and upload deployments, the inbox and the upload endpoint until stopped."""
    return serve_catalogue(options_from_args(args))


def add_serve_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register `onmodel serve` on the CLI's subparsers."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "serve",
        help="serve the nightly and csv-upload deployments, the upload inbox and endpoint (long-running)",
        description="Register the deployments nightly-catalog (cron) and csv-upload with the Prefect server "
        "named by PREFECT_API_URL and execute their runs until stopped; watch the inbox folder and answer CSV "
        "uploads on 127.0.0.1. Scheduled runs happen only while this process serves.",
        epilog="example:\n  PREFECT_API_URL=http://127.0.0.1:4200/api onmodel serve --catalogue catalogue.csv "
        "--config sd15 --device cuda --timezone Europe/Berlin --out /srv/onmodel/outputs --inbox /srv/onmodel/inbox",
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--catalogue", help="the product CSV the nightly run produces (required)")
    parser.add_argument("--config", default="demo", help="profile name or YAML path (default: demo)")
    parser.add_argument("--out", default="outputs", help="output folder of every run (default: outputs/)")
    parser.add_argument("--device", default="cpu", help="cpu, cuda or cuda:N for every run (default: cpu)")
    parser.add_argument("--cron", default=DEFAULT_CRON, help=f"nightly schedule (default: '{DEFAULT_CRON}')")
    parser.add_argument("--timezone", default="UTC", help="IANA time zone of the cron (default: UTC)")
    parser.add_argument("--inbox", default="inbox", help="folder watched for CSV uploads (default: inbox/)")
    parser.add_argument("--no-inbox", action="store_true", help="do not watch an inbox folder")
    parser.add_argument("--poll-seconds", type=float, default=2.0, help="inbox poll interval (default: 2)")
    parser.add_argument("--upload-host", default="127.0.0.1", help="endpoint address (default: 127.0.0.1)")
    parser.add_argument("--upload-port", type=int, default=8750, help="endpoint port (default: 8750)")
    parser.add_argument(
        "--upload-token",
        help=f"bearer token clients must send (default: ${TOKEN_ENV}; required off loopback)",
    )
    parser.add_argument("--no-upload-endpoint", action="store_true", help="no HTTP upload endpoint")
    parser.add_argument(
        "--max-upload-bytes", type=int, default=20_000_000, help="largest accepted upload (default: 20 MB)"
    )
    parser.add_argument(
        "--nightly-workers", type=int, help="task threads of a nightly run (default: profile's)"
    )
    parser.add_argument(
        "--upload-workers", type=int, help="task threads of an upload run (default: profile's)"
    )
    parser.add_argument(
        "--nightly-concurrency", type=int, default=1, help="nightly runs at once (default: 1)"
    )
    parser.add_argument("--upload-concurrency", type=int, default=1, help="upload runs at once (default: 1)")
    parser.add_argument(
        "--no-deployments",
        action="store_true",
        help="only the inbox and the endpoint; the deployments are served by another onmodel serve",
    )
    parser.set_defaults(func=cmd_serve)
    return parser
