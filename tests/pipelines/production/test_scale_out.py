"""Many hosts without a cluster: a worker's device, per-host device locks, and the preflight's verdicts."""

from __future__ import annotations

from dataclasses import replace
from types import SimpleNamespace

import pytest

from pipelines.production.device_locks import DeviceClaim, physical_device
from pipelines.production.scale_out import (
    WorkerFacts,
    check_cluster,
    check_output_location,
    is_shared_state,
    worker_device,
)
from pipelines.production.validate import RunConfigError

ADDRESS = "tcp://sched:8786"
API = "http://prefect:4200/api"
POSTGRES = "postgresql+psycopg://onmodel@db/onmodel"


def worker(index: int, host: str = "gpu-a", **changes: object) -> WorkerFacts:
    facts = WorkerFacts(
        address=f"tcp://{host}:{4000 + index}",
        host=host,
        pid=100 + index,
        device="cuda:0",
        lock_name=f"cuda:{index}",
        gpus=1.0,
        code_version="0.1.0+abc",
        sees_outputs=True,
        api_problem="",
    )
    return replace(facts, **changes)  # type: ignore[arg-type]


def check(workers: list[WorkerFacts], **overrides: str) -> list[WorkerFacts]:
    settings = {
        "address": ADDRESS,
        "api_url": API,
        "out_dir": "s3://bucket/out",
        "state_url": POSTGRES,
        "driver_host": "gpu-a",
        "code_version": "0.1.0+abc",
    }
    settings.update(overrides)
    return check_cluster(workers, **settings)


def test_a_worker_device_comes_from_its_environment() -> None:
    assert worker_device({}) == "cpu"
    assert worker_device({"CUDA_VISIBLE_DEVICES": "3"}) == "cuda:0"  # it sees only its own GPU
    assert worker_device({"CUDA_VISIBLE_DEVICES": "-1"}) == "cpu"
    assert worker_device({"ONMODEL_WORKER_DEVICE": "cpu:2", "CUDA_VISIBLE_DEVICES": "1"}) == "cpu:2"
    with pytest.raises(RunConfigError, match="ONMODEL_WORKER_DEVICE='gpu0'"):
        worker_device({"ONMODEL_WORKER_DEVICE": "gpu0"})


def test_locks_name_the_physical_gpu() -> None:
    assert physical_device("cuda:0", {"CUDA_VISIBLE_DEVICES": "3"}) == "cuda:3"
    assert physical_device("cuda:1", {"CUDA_VISIBLE_DEVICES": "4,6"}) == "cuda:6"
    assert physical_device("cuda", {"CUDA_VISIBLE_DEVICES": "2"}) == "cuda:2"
    assert physical_device("cuda:0", {}) == "cuda:0"
    assert physical_device("cuda:0", {"CUDA_VISIBLE_DEVICES": "GPU-8f2a:1"}) == "cuda:GPU-8f2a-1"
    assert physical_device("cpu:1", {"CUDA_VISIBLE_DEVICES": "3"}) == "cpu:1"


def test_two_workers_that_each_see_cuda_0_claim_different_gpus(
    tmp_path: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "0")
    first = DeviceClaim("cuda:0", str(tmp_path))
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
    second = DeviceClaim("cuda:0", str(tmp_path))
    same_gpu = DeviceClaim("cuda:0", str(tmp_path))
    assert first.acquire(blocking=False) and second.acquire(blocking=False)
    assert not same_gpu.acquire(blocking=False)  # physical GPU 1 is taken by `second`
    first.release()
    second.release()


def test_a_good_cluster_gives_its_render_workers() -> None:
    workers = [worker(0), worker(1), worker(0, host="gpu-b"), worker(9, gpus=0.0)]
    assert [w.address for w in check(workers)] == [w.address for w in workers[:3]]


@pytest.mark.parametrize(
    ("workers", "overrides", "message"),
    [
        ([worker(0)], {"api_url": ""}, "needs one Prefect server"),
        ([], {}, "has no worker; start one worker per GPU"),
        ([worker(0, gpus=0.0)], {}, "none with a GPU resource"),
        ([worker(0, api_problem="ConnectError: refused")], {}, "cannot reach the Prefect server"),
        ([worker(0, sees_outputs=False)], {}, "does not see the outputs at s3://bucket/out"),
        ([worker(0, code_version="0.1.0+old")], {}, "install the same version"),
        ([worker(0), worker(1, lock_name="cuda:0")], {}, "all use device cuda:0"),
        ([worker(0), worker(1, device="cpu:1")], {}, "mix device kinds"),
        ([worker(0, device_problem="torch sees none")], {}, "torch sees none"),
        (
            [worker(0), worker(0, host="gpu-b")],
            {"state_url": "sqlite:////srv/out/state.sqlite"},
            "only one host can use safely",
        ),
        ([worker(0, host="gpu-b")], {"state_url": "sqlite:////srv/out/state.sqlite"}, "PostgreSQL"),
    ],
)
def test_what_a_cluster_cannot_do_is_one_teaching_error(
    workers: list[WorkerFacts], overrides: dict[str, str], message: str
) -> None:
    with pytest.raises(RunConfigError, match=message):
        check(workers, **overrides)


def test_a_sqlite_store_is_fine_when_every_worker_is_on_the_driver_host() -> None:
    assert check([worker(0), worker(1)], state_url="sqlite:////srv/out/state.sqlite")
    assert not is_shared_state("sqlite:////srv/out/state.sqlite") and is_shared_state(POSTGRES)


def test_output_urls_are_checked_before_any_work() -> None:
    check_output_location("outputs", state_configured=False)
    check_output_location("file:///srv/out", state_configured=False)  # its state.sqlite lies in the folder
    check_output_location("memory://out", state_configured=True)
    with pytest.raises(RunConfigError, match="set ONMODEL_STATE_URL"):
        check_output_location("memory://out", state_configured=False)
    with pytest.raises(RunConfigError, match="fsspec cannot open nosuchfs://"):
        check_output_location("nosuchfs://bucket/out", state_configured=True)


def test_a_chunk_that_kills_its_workers_fails_its_products_with_the_reason() -> None:
    from distributed.scheduler import KilledWorker

    from flows.scale_out import lost_chunk_reason

    last_worker = SimpleNamespace(address="tcp://127.0.0.1:4000")  # a WorkerState on the scheduler
    error = KilledWorker("wrapper_func-1a2b", last_worker, 3)  # type: ignore[arg-type]
    assert "worker process died each time it ran" in (lost_chunk_reason(error) or "")
    assert lost_chunk_reason(ValueError("a bug")) is None  # anything else still fails the run loudly
