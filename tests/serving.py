"""A real `prefect server` and a real `onmodel serve` process, both on 127.0.0.1, for the serve and upload tests."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import httpx
import yaml

from tests.flows.helpers import small_profile, write_csv, write_flatlays

ROOT = Path(__file__).resolve().parent.parent
UPLOAD_TOKEN = "test-token-0123456789abcdef"
TEST_CRON = "* * * * *"
TEST_TIMEZONE = "Europe/Berlin"
MAX_UPLOAD_BYTES = 4096
T = TypeVar("T")


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def quiet_prefect_env(home: Path) -> dict[str, str]:
    """A child's environment: its own PREFECT_HOME, analytics off, no proxies, no outer PREFECT_API_URL."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PREFECT_") and "proxy" not in k.lower()}
    env.update(
        PREFECT_HOME=str(home),
        PREFECT_SERVER_ANALYTICS_ENABLED="false",
        DO_NOT_TRACK="1",
        PREFECT_UI_ENABLED="false",
        PYTHONPATH=str(ROOT),
    )
    return env


def wait_until(check: Callable[[], T | None], timeout_s: float, what: str, interval_s: float = 0.5) -> T:
    """Poll `check` until it returns something truthy; AssertionError naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout_s:.0f} s waiting for {what}")
        time.sleep(interval_s)


def _stop(process: subprocess.Popen[Any], timeout_s: float = 30) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=10)


@dataclass
class PrefectServer:
    """`prefect server start` on a free loopback port with its own PREFECT_HOME (SQLite there)."""

    home: Path
    port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None

    @property
    def api_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/api"

    def client_env(self, home: Path) -> dict[str, str]:
        """The environment of a process that talks to this server."""
        return quiet_prefect_env(home) | {"PREFECT_API_URL": self.api_url}

    def start(self, timeout_s: float = 120) -> PrefectServer:
        self.home.mkdir(parents=True, exist_ok=True)
        log = open(self.home / "server.log", "wb")
        command = [sys.executable, "-m", "prefect", "server", "start", "--host", "127.0.0.1"]
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)],
            env=quiet_prefect_env(self.home),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def healthy() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(
                    f"prefect server exited: {(self.home / 'server.log').read_text()[-3000:]}"
                )
            try:
                return httpx.get(f"{self.api_url}/health", timeout=2, trust_env=False).status_code == 200
            except httpx.HTTPError:
                return False

        wait_until(healthy, timeout_s, f"prefect server on {self.api_url}")
        return self

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)

    @contextmanager
    def client(self) -> Iterator[Any]:
        """A synchronous Prefect client for this server (independent of the test process's settings)."""
        from prefect.client.orchestration import SyncPrefectClient

        with SyncPrefectClient(self.api_url) as client:
            yield client


@dataclass
class ServedCatalogue:
    """An `onmodel serve` process: the nightly catalogue every minute, an inbox and a token-guarded endpoint."""

    server: PrefectServer
    root: Path
    upload_port: int = field(default_factory=free_port)
    process: subprocess.Popen[bytes] | None = None
    started_at: float = 0.0
    cron: str = (
        TEST_CRON  # the nightly schedule (a test that triggers runs itself picks one that never fires)
    )

    @property
    def inbox(self) -> Path:
        return self.root / "inbox"

    @property
    def out(self) -> Path:
        return self.root / "out"

    @property
    def photos(self) -> Path:
        return self.root / "photos"

    @property
    def catalogue(self) -> Path:
        return self.root / "catalogue" / "catalogue.csv"

    @property
    def profile(self) -> Path:
        return self.root / "catalogue" / "profile.yaml"

    @property
    def upload_url(self) -> str:
        return f"http://127.0.0.1:{self.upload_port}/uploads"

    @property
    def log(self) -> str:
        path = self.root / "serve.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def prepare(self, photos: int = 6) -> ServedCatalogue:
        """One nightly product, `photos` upload photos (absolute paths under an allowed root), a small profile."""
        write_csv(self.catalogue, write_flatlays(self.catalogue.parent, 1))
        profile = small_profile(self.catalogue.parent, variants=1)
        data = yaml.safe_load(profile.read_text())
        data["images"]["allowed_roots"] = [str(self.photos)]
        profile.write_text(yaml.safe_dump(data))
        write_flatlays(self.photos, photos)
        return self

    def upload_rows(self, skus: list[str], photo_indices: list[int]) -> list[dict[str, str]]:
        """CSV rows naming the generated photos by absolute path; index -1 names a photo that does not exist."""
        rows = []
        for sku, index in zip(skus, photo_indices, strict=True):
            image = self.photos / (f"g{index:02d}.png" if index >= 0 else "missing.png")
            rows.append({"sku": sku, "image": str(image), "category": "t-shirt", "title": f"Tee {sku}"})
        return rows

    def upload_csv(self, path: Path, skus: list[str], photo_indices: list[int]) -> Path:
        return write_csv(path, self.upload_rows(skus, photo_indices))

    def start(self, timeout_s: float = 90) -> ServedCatalogue:
        command = [sys.executable, "-m", "flows.cli", "serve", "--catalogue", str(self.catalogue)]
        command += ["--config", str(self.profile), "--out", str(self.out), "--inbox", str(self.inbox)]
        command += ["--cron", self.cron, "--timezone", TEST_TIMEZONE, "--poll-seconds", "0.5"]
        command += ["--upload-port", str(self.upload_port), "--upload-token", UPLOAD_TOKEN]
        command += ["--max-upload-bytes", str(MAX_UPLOAD_BYTES)]
        log = open(self.root / "serve.log", "wb")
        self.started_at = time.time()
        self.process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.server.client_env(self.root / "prefect-client"),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"onmodel serve exited {self.process.returncode}:\n{self.log[-4000:]}")
            return (
                "serving produce-catalog/nightly-catalog" in self.log
                and self.deployment("csv-upload") is not None
            )

        wait_until(ready, timeout_s, "onmodel serve to register its deployments")
        return self

    def deployment(self, name: str) -> Any:
        from prefect.exceptions import ObjectNotFound

        with self.server.client() as client:
            try:
                return client.read_deployment_by_name(f"produce-catalog/{name}")
            except ObjectNotFound:
                return None

    def flow_runs(self, deployment: str) -> list[Any]:
        from prefect.client.schemas.filters import DeploymentFilter, DeploymentFilterName

        with self.server.client() as client:
            return list(
                client.read_flow_runs(
                    deployment_filter=DeploymentFilter(name=DeploymentFilterName(any_=[deployment]))
                )
            )

    def trigger(self, name: str, parameters: dict[str, Any] | None = None) -> str:
        """Start a run of a served deployment now (as `prefect deployment run` does); its flow run id."""
        deployment = self.deployment(name)
        assert deployment is not None, f"{name} is not registered"
        with self.server.client() as client:
            flow_run = client.create_flow_run_from_deployment(deployment.id, parameters=parameters or {})
        return str(flow_run.id)

    def wait_for_run(self, flow_run_id: str, timeout_s: float = 90) -> Any:
        """The flow run once it is in a final state (completed, failed, crashed, cancelled)."""

        def final() -> Any:
            with self.server.client() as client:
                run = client.read_flow_run(flow_run_id)
            return run if run.state is not None and run.state.is_final() else None

        return wait_until(final, timeout_s, f"flow run {flow_run_id} to finish\n{self.log[-3000:]}")

    def stop(self) -> None:
        if self.process is not None:
            _stop(self.process)
