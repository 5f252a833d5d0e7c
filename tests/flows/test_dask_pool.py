"""Many hosts on one machine: a real Dask scheduler and two real workers on 127.0.0.1 (each `--nthreads 1
--resources GPU=1` with its own fake CPU device), a real `prefect server`, and `onmodel run --dask` as a process.

Checked: each worker process loads its renderer once (across runs too), every job is produced exactly once
(manifest, state store, files, Prefect task runs), a worker killed with kill -9 mid-run does not stop the run,
a worker with one thread still holds two chunks at once in one pool (batches mix their jobs), and a cluster that
cannot see the outputs is refused before any work.
"""

from __future__ import annotations

import csv
import os
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from catalog import open_job_store
from flows.scale_out import CHUNKS_PER_GPU
from pipelines.production.book import tapered_chunks
from tests.catalog.conftest import POSTGRES_URL_ENV, fresh_postgres_database
from tests.flows.helpers import small_profile, write_csv, write_flatlays
from tests.serving import ROOT, PrefectServer, free_port, wait_until

distributed = pytest.importorskip("distributed", reason="the Dask test needs the dev extra (prefect-dask)")

PRODUCTS = 10
JOBS_PER_PRODUCT = 4  # small_profile: 2 poses x 2 variants
PRELOAD = ROOT / "tests" / "flows" / "dask_worker_preload.py"
RENDER_DELAY_S = "0.4"


@dataclass
class DaskCluster:
    """`dask scheduler` and `dask worker` processes (no nanny: a killed worker stays dead) on 127.0.0.1."""

    root: Path
    server: PrefectServer
    port: int = field(default_factory=free_port)
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)  # device -> process

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.port}"

    @property
    def loads(self) -> Path:
        return self.root / "loads"

    @property
    def locks(self) -> Path:
        return self.root / "locks"

    def env(self, **extra: str) -> dict[str, str]:
        env = self.server.client_env(self.root / "prefect-client")
        env.update(ONMODEL_LOCK_DIR=str(self.locks), DASK_DISTRIBUTED__WORKER__DAEMON="False", **extra)
        return env

    def start(self, devices: tuple[str, ...] = ("cpu:1", "cpu:2"), timeout_s: float = 90) -> DaskCluster:
        self.loads.mkdir(parents=True, exist_ok=True)
        command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1"]
        self.scheduler = self._spawn("scheduler", [*command, "--port", str(self.port), "--no-dashboard"], {})
        for device in devices:
            command = [
                sys.executable,
                "-m",
                "distributed.cli.dask_worker",
                self.address,
                "--host",
                "127.0.0.1",
            ]
            command += ["--nthreads", "1", "--resources", "GPU=1", "--no-nanny", "--no-dashboard"]
            command += ["--preload", str(PRELOAD), "--local-directory", str(self.root / f"dask-{device}")]
            self.workers[device] = self._spawn(
                f"worker-{device}",
                command,
                {
                    "ONMODEL_WORKER_DEVICE": device,
                    "ONMODEL_TEST_LOADS_DIR": str(self.loads),
                    "ONMODEL_TEST_RENDER_DELAY_S": RENDER_DELAY_S,
                },
            )
        wait_until(lambda: len(self.worker_pids()) == len(devices), timeout_s, "the Dask workers to register")
        return self

    def _spawn(self, name: str, command: list[str], extra: dict[str, str]) -> subprocess.Popen[bytes]:
        log = open(self.root / f"{name}.log", "wb")
        return subprocess.Popen(
            command,
            cwd=ROOT,
            env=self.env(**extra),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )

    def log(self, name: str) -> str:
        path = self.root / f"{name}.log"
        return path.read_text(errors="replace")[-3000:] if path.exists() else ""

    def client(self) -> Any:
        return distributed.Client(self.address, timeout=20, set_as_default=False)

    def worker_pids(self) -> dict[str, int]:
        """Worker address -> pid, as the scheduler sees them now."""
        with self.client() as client:
            return dict(client.run(os.getpid))

    def processing(self) -> dict[str, int]:
        """Worker address -> tasks it is running now."""
        with self.client() as client:
            return {worker: len(keys) for worker, keys in client.processing().items()}

    def restrictions(self) -> list[dict[str, float]]:
        """The resource restrictions of the tasks the scheduler holds now."""
        with self.client() as client:
            return list(
                client.run_on_scheduler(
                    lambda dask_scheduler: [
                        dict(t.resource_restrictions or {}) for t in dask_scheduler.tasks.values()
                    ]
                )
            )

    def stop(self) -> None:
        for process in [*self.workers.values(), self.scheduler]:
            if process is not None and process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for process in [*self.workers.values(), self.scheduler]:
            if process is not None:
                try:
                    process.wait(timeout=20)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait(timeout=10)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DaskCluster]:
    root = tmp_path_factory.mktemp("dask")
    server = PrefectServer(root / "prefect-server").start()
    cluster = DaskCluster(root, server)
    try:
        yield cluster.start()
    finally:
        cluster.stop()
        server.stop()


def catalogue(folder: Path) -> tuple[Path, Path]:
    rows = write_flatlays(folder, PRODUCTS, size=256)
    profile = small_profile(
        folder, run={"max_workers": 2, "chunk_size": 2, "task_retries": 1, "retry_delay_s": 0.1}
    )
    return write_csv(folder / "products.csv", rows), profile


def onmodel_run(
    cluster: DaskCluster, csv_path: Path, profile: Path, out: str, **env: str
) -> subprocess.Popen[str]:
    command = [
        sys.executable,
        "-m",
        "flows.cli",
        "run",
        str(csv_path),
        "--config",
        str(profile),
        "--out",
        out,
    ]
    return subprocess.Popen(
        [*command, "--dask", cluster.address, "--no-progress"],
        cwd=ROOT,
        env=cluster.env(**env),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        stdin=subprocess.DEVNULL,
    )


def loads_per_worker(cluster: DaskCluster) -> dict[int, list[str]]:
    return {int(path.stem): path.read_text().split() for path in sorted(cluster.loads.glob("*.loads"))}


def batches_per_worker(cluster: DaskCluster) -> dict[int, list[list[str]]]:
    """Worker pid -> the job ids of each batch it rendered so far (dask_worker_preload), oldest first."""
    return {
        int(path.stem): [line.split() for line in path.read_text().splitlines()]
        for path in sorted(cluster.loads.glob("*.batches"))
    }


def expected_chunk_names(products: int = PRODUCTS, chunk: int = 2, workers: int = 2) -> list[str]:
    """The chunk task names of a run over SKU-00 ... (tapered on Dask: the last chunks are single products)."""
    skus = [f"SKU-{index:02d}" for index in range(products)]
    return sorted(f"chunk-{part[0]}" for part in tapered_chunks(skus, chunk, workers))  # type: ignore[arg-type]


def manifest_jobs(out: Path) -> Counter[tuple[str, str]]:
    """(job id, state) of every job row in the folder's manifest."""
    with open(out / "manifest.csv", newline="", encoding="utf-8") as handle:
        return Counter((row["job_id"], row["state"]) for row in csv.DictReader(handle) if row["job_id"])


def chunk_task_runs(cluster: DaskCluster, flow_run_id: str) -> dict[str, list[str]]:
    """Each task run of the flow run: its name -> the state types it went through, oldest first."""
    from prefect.client.schemas.filters import FlowRunFilter, FlowRunFilterId

    with cluster.server.client() as client:
        runs = client.read_task_runs(flow_run_filter=FlowRunFilter(id=FlowRunFilterId(any_=[flow_run_id])))
        names = Counter(run.name for run in runs)
        assert max(names.values()) == 1, names  # one task run per chunk, also for a chunk that ran twice
        return {
            run.name: [state.type.value for state in sorted(client.read_task_run_states(run.id), key=_when)]
            for run in runs
        }


def _when(state: Any) -> Any:
    return state.timestamp


def latest_flow_run(cluster: DaskCluster) -> Any:
    from prefect.client.schemas.sorting import FlowRunSort

    with cluster.server.client() as client:
        return client.read_flow_runs(sort=FlowRunSort.START_TIME_DESC, limit=1)[0]


def check_every_job_once(out: Path, state_url: str = "") -> None:
    """One manifest row, one state-store record (one attempt), one master image and sidecar per job; nothing
    half-written anywhere."""
    jobs = manifest_jobs(out)
    assert len(jobs) == PRODUCTS * JOBS_PER_PRODUCT, jobs
    assert {state for _job, state in jobs} <= {"produced", "skipped"}, jobs
    assert max(jobs.values()) == 1
    job_ids = {job for job, _state in jobs}
    store = open_job_store(state_url or out / "state.sqlite")
    try:
        records = {state.job_id: state for state in store.all_rows()}
    finally:
        store.close()
    assert set(records) == job_ids
    assert {record.status for record in records.values()} == {"produced"}
    assert {record.attempts for record in records.values()} == {1}  # rendered and recorded once, never twice
    masters = sorted(path.stem for path in (out / "images" / "master").rglob("*.png"))
    assert masters == sorted(job_ids)
    assert len(list((out / "images" / "master").rglob("*.json"))) == len(job_ids)
    assert not [path for path in out.rglob("*.tmp")], "a half-written temporary was left behind"


@pytest.mark.slow
def test_a_dask_run_loads_each_model_once_and_survives_a_worker_killed_mid_run(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    csv_path, profile = catalogue(tmp_path / "in")
    # 1. A clean run over the cluster: both workers render, each loads its renderer once.
    first = tmp_path / "first"
    run = onmodel_run(cluster, csv_path, profile, first.as_uri())
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output + cluster.log("worker-cpu:1") + cluster.log("worker-cpu:2")
    assert f"produced {PRODUCTS * JOBS_PER_PRODUCT} · skipped 0" in output, output
    loads = loads_per_worker(cluster)
    assert sorted(device for devices in loads.values() for device in devices) == ["cpu:1", "cpu:2"], loads
    assert set(loads) == set(cluster.worker_pids().values())  # one load per worker process, not per chunk
    assert "cpu:1" in output and "cpu:2" in output  # per-device utilisation of each worker in the summary
    check_every_job_once(first)
    flow_run = latest_flow_run(cluster)
    assert flow_run.state_type.value == "COMPLETED"
    chunks = chunk_task_runs(cluster, str(flow_run.id))
    assert sorted(chunks) == expected_chunk_names()
    assert all(states[-1] == "COMPLETED" and states.count("RUNNING") == 1 for states in chunks.values()), (
        chunks
    )

    # 2. Again into a new folder, and kill -9 a worker while it renders a chunk.
    second = tmp_path / "second"
    run = onmodel_run(cluster, csv_path, profile, second.as_uri())
    pids = cluster.worker_pids()

    def busy_worker() -> str | None:
        produced = len(list((second / "images" / "master").rglob("*.png"))) if second.is_dir() else 0
        busy = [worker for worker, tasks in cluster.processing().items() if tasks]
        return busy[0] if produced >= 2 and busy else None

    victim = wait_until(busy_worker, 120, "a worker rendering a chunk of the second run", interval_s=0.1)
    os.kill(pids[victim], signal.SIGKILL)
    restrictions = cluster.restrictions()  # the chunks still to run (the killed worker's among them)
    # Each chunk needs 1 / CHUNKS_PER_GPU of a worker's GPU (CHUNKS_PER_GPU at once, whatever its --nthreads).
    assert restrictions and all(r == {"GPU": 1 / CHUNKS_PER_GPU} for r in restrictions), restrictions
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output + cluster.log("scheduler")
    survivors = cluster.worker_pids()
    assert list(survivors) == [worker for worker in pids if worker != victim]
    check_every_job_once(second)
    # The models stayed loaded: still one load per worker process, over both runs.
    assert [len(devices) for devices in loads_per_worker(cluster).values()] == [1, 1]
    flow_run = latest_flow_run(cluster)
    assert flow_run.state_type.value == "COMPLETED"
    # Every chunk one task run, completed; the killed worker's chunk ran again, under its id, on the other worker.
    chunks = chunk_task_runs(cluster, str(flow_run.id))
    assert sorted(chunks) == expected_chunk_names()
    assert all(states[-1] == "COMPLETED" for states in chunks.values()), chunks
    assert sorted(states.count("RUNNING") for states in chunks.values())[-1] == 2, chunks


@pytest.mark.slow
def test_a_one_thread_worker_runs_two_chunks_in_one_pool_and_batches_across_them(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    csv_path, profile = catalogue(tmp_path / "in")  # 4 jobs per product, batches of 3, chunks of 2 products
    before = {pid: len(batches) for pid, batches in batches_per_worker(cluster).items()}
    out = tmp_path / "out"
    run = onmodel_run(cluster, csv_path, profile, str(out))
    output, _ = run.communicate(timeout=300)
    assert run.returncode == 0, output
    check_every_job_once(out)
    workers = len(cluster.worker_pids())  # two, or one after the kill test
    skus = [f"SKU-{index:02d}" for index in range(PRODUCTS)]
    parts = tapered_chunks(skus, 2, workers)  # type: ignore[arg-type]
    chunk_of = {sku: index for index, part in enumerate(parts) for sku in part}
    mixed = []
    for pid, batches in batches_per_worker(cluster).items():
        for batch in batches[before.get(pid, 0) :]:
            assert len(batch) <= 3  # never more than the profile's batch size
            chunks = {chunk_of[job.split("__")[0]] for job in batch}
            if len(chunks) > 1:
                mixed.append((pid, batch))
    # One chunk at a time (the thread busy until its chunk ends) never mixes: a chunk's 8 jobs go 3 + 3 + 2, a
    # single product's 4 go 3 + 1. A batch with jobs of two chunks means both were in the worker's one pool.
    assert mixed, batches_per_worker(cluster)
    # Still one renderer per worker process: the chunks shared the worker's pool and its resident model.
    assert all(len(devices) == 1 for devices in loads_per_worker(cluster).values())


@pytest.mark.slow
def test_the_workers_use_the_runs_postgresql_state_store(cluster: DaskCluster, tmp_path: Path) -> None:
    admin_url = os.environ.get(POSTGRES_URL_ENV)
    if not admin_url:
        pytest.skip(f"PostgreSQL case: set {POSTGRES_URL_ENV} (bash .ci/postgres.sh start DIR prints it)")
    csv_path, profile = catalogue(tmp_path / "in")
    out = tmp_path / "out"
    with fresh_postgres_database(admin_url) as state_url:
        # Only the run's process names the store; the workers are given it with each chunk.
        run = onmodel_run(cluster, csv_path, profile, str(out), ONMODEL_STATE_URL=state_url)
        output, _ = run.communicate(timeout=300)
        assert run.returncode == 0, output
        assert not (out / "state.sqlite").exists()
        check_every_job_once(out, state_url)


@pytest.mark.slow
def test_a_dask_run_into_storage_the_workers_cannot_see_is_refused_before_any_work(
    cluster: DaskCluster, tmp_path: Path
) -> None:
    csv_path, profile = catalogue(tmp_path / "in")
    state = tmp_path / "state.sqlite"
    run = onmodel_run(
        cluster, csv_path, profile, "memory://onmodel-unshared", ONMODEL_STATE_URL=f"sqlite:///{state}"
    )
    output, _ = run.communicate(timeout=120)
    assert run.returncode == 2, output
    assert "does not see the outputs at memory://onmodel-unshared" in output, output
    assert "s3://" in output  # says what to use instead
    assert not state.exists()  # refused before the state store was opened


@pytest.mark.slow
def test_a_dask_run_without_a_prefect_server_is_refused(cluster: DaskCluster, tmp_path: Path) -> None:
    csv_path, profile = catalogue(tmp_path / "in")
    env = cluster.env()
    env.pop("PREFECT_API_URL")
    command = [sys.executable, "-m", "flows.cli", "run", str(csv_path), "--config", str(profile)]
    command += ["--out", str(tmp_path / "out"), "--dask", cluster.address, "--no-progress"]
    done = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "needs one Prefect server" in done.stderr and "PREFECT_API_URL" in done.stderr
