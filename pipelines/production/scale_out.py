"""Many hosts: what a Dask worker's device is, and whether a cluster can run a catalogue (no Prefect, no Dask).

A scaled-out run is the same flow with its chunk tasks on Dask workers, one per GPU
(`CUDA_VISIBLE_DEVICES=i dask worker tcp://SCHEDULER:8786 --nthreads 1 --resources GPU=1`). Each worker renders
on its own device with its own resident pool, so everything the workers share must be shared for real: the
outputs (a folder every host mounts, or an fsspec URL), the state store (PostgreSQL once there are several
hosts) and the Prefect server. `check_cluster` turns what the workers report about themselves into one clear
error per problem before any work starts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pipelines.production.device_locks import physical_device
from pipelines.production.validate import RunConfigError, check_device

__all__ = ["physical_device"]  # re-exported: the lock name a worker reports

WORKER_DEVICE_ENV = "ONMODEL_WORKER_DEVICE"
GPU_RESOURCE = "GPU"


def worker_device(environ: Mapping[str, str]) -> str:
    """The one device of a worker process: $ONMODEL_WORKER_DEVICE (cpu, cpu:N, cuda:N), else cuda:0 when
    CUDA_VISIBLE_DEVICES names a GPU (the worker sees only its own, as cuda:0), else cpu."""
    named = environ.get(WORKER_DEVICE_ENV, "").strip()
    if named:
        try:
            return check_device(named)
        except RunConfigError as error:
            raise RunConfigError(f"{WORKER_DEVICE_ENV}={named!r}: {error}") from None
    visible = environ.get("CUDA_VISIBLE_DEVICES", "").strip()
    if visible and visible != "-1":
        return "cuda:0"
    return "cpu"


@dataclass(frozen=True)
class WorkerFacts:
    """What one Dask worker says about itself in the preflight (scale_out wiring in flows/)."""

    address: str  # tcp://10.0.0.5:40321
    host: str  # its host name
    pid: int
    device: str  # worker_device(): cuda:0, cpu, cpu:N
    lock_name: str  # physical_device(): what its device lock is called on its host
    gpus: float  # its GPU resource (--resources GPU=1); 0: it takes no render task
    code_version: str
    sees_outputs: bool  # found the probe the run wrote into its output storage
    api_problem: str  # why it cannot reach the run's Prefect server ('' when it can)
    device_problem: str = ""  # a bad ONMODEL_WORKER_DEVICE, or torch sees no CUDA device


def worker_command(address: str, api_url: str, index: int = 0) -> str:
    """The command that starts the GPU worker number `index` of a host."""
    return (
        f"CUDA_VISIBLE_DEVICES={index} PREFECT_API_URL={api_url or 'http://PREFECT-HOST:4200/api'} "
        f"dask worker {address} --nthreads 1 --resources {GPU_RESOURCE}=1"
    )


def is_shared_state(state_url: str) -> bool:
    """A store several hosts can use at once: a database server (PostgreSQL), not a SQLite file."""
    return not state_url.startswith("sqlite")


def check_cluster(
    workers: Sequence[WorkerFacts],
    *,
    address: str,
    api_url: str,
    out_dir: str,
    state_url: str,
    driver_host: str,
    code_version: str,
) -> list[WorkerFacts]:
    """The workers that render (one GPU resource each), or a RunConfigError naming what to change."""
    # 1. A Prefect server every worker reports to (the embedded API lives in one process).
    if not api_url:
        raise RunConfigError(
            f"a Dask run (--dask {address}) needs one Prefect server for the flow and every worker: start "
            "`prefect server start --host 0.0.0.0`, then set PREFECT_API_URL=http://PREFECT-HOST:4200/api here "
            "and on every worker."
        )
    # 2. Workers that take render tasks: one GPU resource each.
    render_workers = [worker for worker in workers if worker.gpus >= 1]
    if not render_workers:
        seen = f"{len(workers)} worker(s), none with a {GPU_RESOURCE} resource" if workers else "no worker"
        raise RunConfigError(
            f"the Dask scheduler at {address} has {seen}; start one worker per GPU, e.g. "
            f"`{worker_command(address, api_url)}`."
        )
    problems: list[str] = []
    for worker in render_workers:
        where = f"worker {worker.address} (host {worker.host}, pid {worker.pid})"
        if worker.device_problem:
            problems.append(f"{where}: {worker.device_problem}")
        if worker.api_problem:
            problems.append(
                f"{where} cannot reach the Prefect server at {api_url} ({worker.api_problem}); every worker "
                "must reach PREFECT_API_URL (start the server with --host 0.0.0.0 on a multi-host cluster)."
            )
        if not worker.sees_outputs:
            problems.append(
                f"{where} does not see the outputs at {out_dir}; use a folder every host mounts at the same "
                "path, or an fsspec URL all hosts can reach (s3://bucket/prefix), not memory:// or a local folder."
            )
        if worker.code_version != code_version:
            problems.append(
                f"{where} runs onmodel {worker.code_version}, this run {code_version}; install the same version "
                "on every host (images must not depend on which worker made them)."
            )
    # 3. One device per worker: two workers of a host on one GPU would wait for each other's device lock.
    by_lock: dict[tuple[str, str], list[str]] = {}
    for worker in render_workers:
        by_lock.setdefault((worker.host, worker.lock_name), []).append(worker.address)
    for (host, lock_name), addresses in sorted(by_lock.items()):
        if len(addresses) > 1 and lock_name != "cpu":
            problems.append(
                f"workers {', '.join(addresses)} on host {host} all use device {lock_name}; give each worker its "
                "own GPU (CUDA_VISIBLE_DEVICES=0, =1, ...) or its own ONMODEL_WORKER_DEVICE."
            )
    kinds = {worker.device.partition(":")[0] for worker in render_workers}
    if len(kinds) > 1:
        problems.append(
            f"the workers mix device kinds ({', '.join(sorted(kinds))}); one run renders on one kind, so the "
            "images of a catalogue do not depend on which worker made them."
        )
    # 4. The state store: a SQLite file is one host's; several hosts need a database server.
    hosts = sorted({worker.host for worker in render_workers} | {driver_host})
    if len(hosts) > 1 and not is_shared_state(state_url):
        problems.append(
            f"the state store is the SQLite file {state_url.removeprefix('sqlite:///')}, which only one host can "
            f"use safely, but this run spans hosts {', '.join(hosts)}; set ONMODEL_STATE_URL to a PostgreSQL "
            "database here and on the workers, e.g. ONMODEL_STATE_URL=postgresql://onmodel@db-host/onmodel."
        )
    if problems:
        raise RunConfigError("the Dask cluster cannot run this catalogue:\n  - " + "\n  - ".join(problems))
    return render_workers


def check_output_location(out_dir: str, *, state_configured: bool) -> None:
    """An output URL fsspec can open, and a state store it can live beside (RunConfigError otherwise)."""
    if "://" not in out_dir:
        return
    protocol = out_dir.split("://", 1)[0]
    try:
        import fsspec

        fsspec.get_filesystem_class(protocol)
    except (ImportError, ValueError) as error:
        raise RunConfigError(
            f"--out {out_dir}: fsspec cannot open {protocol}:// ({error}); install its package (s3fs for s3://, "
            "gcsfs for gs://, adlfs for az://) or use a folder."
        ) from None
    if protocol not in ("file", "local") and not state_configured:
        raise RunConfigError(
            f"--out {out_dir} is not a folder, so the state store cannot be its state.sqlite; set "
            "ONMODEL_STATE_URL to a PostgreSQL database (postgresql://onmodel@db-host/onmodel) or a SQLite file "
            "(sqlite:////srv/onmodel/state.sqlite, one host only)."
        )
