"""Many hosts: the run's chunk tasks on a Dask cluster through prefect-dask's DaskTaskRunner, one worker per GPU.

Prefect and Dask wiring only; what a worker's device is and whether a cluster can run a catalogue are
pipelines.production.scale_out. The workers are started by the operator (README "Scaling out"):

    CUDA_VISIBLE_DEVICES=0 PREFECT_API_URL=http://PREFECT-HOST:4200/api dask worker tcp://SCHEDULER:8786 \\
        --nthreads 1 --resources GPU=1

Each chunk task asks for 1 / CHUNKS_PER_GPU of a GPU (`dask.annotate(resources={"GPU": 0.5})`) and, once started,
leaves the worker's thread pool (`distributed.secede`: it only waits on the pool), so a worker holds
CHUNKS_PER_GPU chunks whatever its --nthreads, rendered on its own device by its own resident pool
(flows.caches.run_chunk_on_worker), which batches across them. A worker that dies takes its chunks with it; the
scheduler gives them to another worker, which skips the jobs the dead one finished (they are in the state store)
and renders the rest.
"""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

from flows import caches, warm_up
from pipelines.production.fsspec_storage import local_folder
from pipelines.production.outcomes import DeviceUsage
from pipelines.production.profile import code_version
from pipelines.production.resume import remove_orphaned_temporaries
from pipelines.production.scale_out import (
    GPU_RESOURCE,
    WorkerFacts,
    check_cluster,
    physical_device,
    worker_device,
)
from pipelines.production.validate import RunConfigError, cuda_device_count

CONNECT_TIMEOUT_S = 15
# Chunks a GPU worker holds at once. One at a time leaves the device idle at every chunk boundary (the last
# batches finish, the next chunk is planned and its first products prepared): bench/dask_pool.py measured 3.4 s
# idle between batches over 11 batches with one, 0.1 s with two (the next chunk is prepared while the other
# renders). More gain nothing there, and leave more of the run's end on one worker while the others are done.
CHUNKS_PER_GPU = 2
# One key in the output storage, rewritten with a fresh token by every preflight: a worker that reads the same
# token sees the same storage (not a local folder of the same name, not another process's memory://).
PROBE_KEY = ".onmodel-cluster-probe"
NEEDS_DASK = (
    "--dask needs prefect-dask and distributed on this host and the workers: pip install 'onmodel[gpu]'."
)


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """A Dask client for the scheduler at `address`, or a RunConfigError saying how to start one."""
    try:
        import distributed
    except ImportError:
        raise RunConfigError(NEEDS_DASK) from None
    try:
        client = distributed.Client(address, timeout=CONNECT_TIMEOUT_S, set_as_default=False)
    except (OSError, TimeoutError, ValueError) as error:
        raise RunConfigError(
            f"the Dask scheduler at {address} does not answer ({type(error).__name__}: {error}); start it with "
            "`dask scheduler --host 0.0.0.0 --port 8786` and pass --dask tcp://SCHEDULER-HOST:8786."
        ) from None
    try:
        yield client
    finally:
        client.close()


def render_workers(address: str, out_dir: str, state_url: str) -> list[WorkerFacts]:
    """The preflight of a Dask run: every worker reports on itself, then check_cluster decides (or explains)."""
    from prefect.settings import PREFECT_API_URL

    api_url = str(PREFECT_API_URL.value() or "")
    token = uuid.uuid4().hex
    caches.storage_of(out_dir).write_bytes(PROBE_KEY, token.encode())
    with dask_client(address) as client:
        reports: Mapping[str, Any] = client.run(_facts_on_worker, out_dir, token, api_url, on_error="return")
        try:  # the chunk tasks' imports, on the scheduler and every worker, while the flow starts (warm_up)
            client.run(warm_up.import_on_loop, wait=False)
            client.run_on_scheduler(warm_up.import_on_loop, wait=False)
        except Exception:  # a process that cannot even import onmodel fails the first chunk, with its error
            pass
    return check_cluster(
        [_facts_or_problem(worker, reports[worker], code_version()) for worker in sorted(reports)],
        address=address,
        api_url=api_url,
        out_dir=out_dir,
        state_url=state_url,
        driver_host=socket.gethostname(),
        code_version=code_version(),
    )


def _facts_or_problem(address: str, report: Any, version: str) -> WorkerFacts:
    """A worker's report, or (it could not even run the check) its error as the problem to fix."""
    if isinstance(report, WorkerFacts):
        return report
    return WorkerFacts(
        address=address,
        host=address,
        pid=0,
        device="cpu",
        lock_name="",
        gpus=1.0,
        code_version=version,  # unknown; the problem below is the one to fix
        sees_outputs=True,
        api_problem="",
        device_problem=(
            f"cannot run onmodel's check ({type(report).__name__}: {report}); start the worker in an environment "
            "with the same onmodel installed (pip install 'onmodel[gpu]')"
        ),
    )


def _facts_on_worker(out_dir: str, token: str, api_url: str, dask_worker: Any = None) -> WorkerFacts:
    """Runs on each worker (client.run): its host, device, resources, and whether it sees the run's storage and
    Prefect server."""
    import httpx

    device_problem = ""
    try:
        device = worker_device(os.environ)
    except RunConfigError as error:
        device, device_problem = "cpu", str(error)
    if device.startswith("cuda") and not device_problem and cuda_device_count() == 0:
        device_problem = (
            f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', '')!r} names a GPU, but torch sees "
            "none (a CPU build of torch, or no driver)."
        )
    try:
        sees_outputs = caches.storage_of(out_dir).read_bytes(PROBE_KEY).decode() == token
    except Exception:  # a missing folder, another process's memory, no credentials: it does not see it
        sees_outputs = False
    api_problem = ""
    try:
        httpx.get(f"{api_url.rstrip('/')}/health", timeout=5.0, trust_env=False).raise_for_status()
    except httpx.HTTPError as error:
        api_problem = f"{type(error).__name__}: {error}"
    resources = getattr(getattr(dask_worker, "state", None), "total_resources", None) or {}
    return WorkerFacts(
        address=str(getattr(dask_worker, "address", "")),
        host=socket.gethostname(),
        pid=os.getpid(),
        device=device,
        lock_name=physical_device(device, os.environ),
        gpus=float(resources.get(GPU_RESOURCE, 0)),
        code_version=code_version(),
        sees_outputs=sees_outputs,
        api_problem=api_problem,
        device_problem=device_problem,
    )


def leave_worker_threads() -> bool:
    """Inside a chunk task on a Dask worker: give its thread slot back (the task only waits on this process's
    device pool), so the worker starts its next chunk whatever its --nthreads; the GPU resource the task holds
    still bounds its chunks to CHUNKS_PER_GPU. False (and nothing done) outside a worker's task thread."""
    try:
        from distributed import secede
        from distributed.threadpoolexecutor import thread_state as pool_thread
        from distributed.worker import thread_state as task_thread
    except ImportError:
        return False
    if getattr(pool_thread, "executor", None) is None or getattr(task_thread, "key", None) is None:
        return False  # not a Dask task's thread (Prefect ran the task elsewhere, or no worker at all)
    secede()
    return True


@contextmanager
def chunk_runner(address: str) -> Iterator[Any]:
    """prefect-dask's DaskTaskRunner on the cluster, started for the chunks of one run."""
    try:
        from prefect_dask import DaskTaskRunner
    except ImportError:
        raise RunConfigError(NEEDS_DASK) from None
    with DaskTaskRunner(address=address) as runner:
        yield runner


def chunk_slots(workers: Sequence[WorkerFacts]) -> list[str | None]:
    """Where a run's chunks go at once: CHUNKS_PER_GPU per render worker (round robin, so the first chunks spread)."""
    return [worker.address for _ in range(CHUNKS_PER_GPU) for worker in workers]


def submit_chunk(runner: Any, task: Any, parameters: dict[str, Any], worker: str | None = None) -> Any:
    """One chunk task on the cluster, needing 1 / CHUNKS_PER_GPU of a GPU worker: at most CHUNKS_PER_GPU chunks
    at once on a worker, all on its one device through its one pool.

    worker: the worker that takes it (the flow hands each chunk to the worker whose chunk just ended: Dask's own
    placement counts a seceded chunk as done, and stealing moves only chunks that have not started), or any
    other once that one is gone.
    """
    import dask

    placement: dict[str, Any] = {"resources": {GPU_RESOURCE: 1 / CHUNKS_PER_GPU}}
    if worker:
        placement.update(workers=[worker], allow_other_workers=True)
    with dask.annotate(**placement):
        return runner.submit(task, parameters)


def lost_chunk_reason(error: BaseException) -> str | None:
    """Why a chunk could not finish on any worker (it killed every worker that took it), else None."""
    try:
        from distributed.scheduler import KilledWorker
    except ImportError:
        return None
    if isinstance(error, KilledWorker):
        return f"the chunk's worker process died each time it ran ({error})"
    return None


def finish_on_workers(
    address: str, run_id: str, out_dir: str, workers_at_start: set[str]
) -> list[DeviceUsage]:
    """At the run's end: every worker closes its pool for the run (final per-device counters). When workers
    were lost during the run, one worker per host removes the half-written temporaries of dead processes."""
    with dask_client(address) as client:
        closed: Mapping[str, Any] = client.run(caches.close_worker_pool, run_id, on_error="return")
        usage = {worker: result for worker, result in closed.items() if isinstance(result, list)}
        alive = set(closed)
        if workers_at_start - alive:
            hosts: Mapping[str, str] = client.run(socket.gethostname)
            first_of_host = {host: address for address, host in sorted(hosts.items(), reverse=True)}
            client.run(
                _remove_temporaries, out_dir, workers=sorted(first_of_host.values()), on_error="ignore"
            )
    return [snapshot for worker in sorted(usage) for snapshot in usage[worker]]


def _remove_temporaries(out_dir: str) -> int:
    folder = local_folder(caches.storage_of(out_dir))
    return len(remove_orphaned_temporaries(folder)) if folder is not None and folder.is_dir() else 0
