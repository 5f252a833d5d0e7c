"""The SQLite job state store: skip-if-done semantics, threads, two processes, file hashing."""

from __future__ import annotations

import multiprocessing
import threading
from pathlib import Path

import pytest

from catalog.state import StateStore


@pytest.fixture
def store(tmp_path: Path):
    with StateStore(tmp_path / "state" / "jobs.sqlite") as opened:
        yield opened


@pytest.fixture
def output(tmp_path: Path) -> Path:
    path = tmp_path / "out" / "A-1_front_0.png"
    path.parent.mkdir(parents=True)
    path.write_bytes(b"png")
    return path


def test_done_only_with_same_hash_fingerprint_and_existing_output(store: StateStore, output: Path) -> None:
    assert not store.is_done("A-1/front/0", "h1", "f1")
    store.record_produced("A-1/front/0", "A-1", "h1", "f1", [output])
    assert store.is_done("A-1/front/0", "h1", "f1")
    assert not store.is_done("A-1/front/0", "h2", "f1")  # the product image changed
    assert not store.is_done("A-1/front/0", "h1", "f2")  # the config changed
    output.unlink()
    assert not store.is_done("A-1/front/0", "h1", "f1")  # the output was deleted


def test_failed_jobs_are_not_done_and_keep_their_reason(store: StateStore, output: Path) -> None:
    store.record_produced("J", "A-1", "h1", "f1", [output])
    store.record_failed("J", "A-1", "h1", "f1", "CUDA out of memory after 3 tries")
    state = store.get("J")
    assert state is not None
    assert (state.status, state.reason, state.outputs) == ("failed", "CUDA out of memory after 3 tries", ())
    assert not store.is_done("J", "h1", "f1")


def test_get_and_all_rows_round_trip(store: StateStore, output: Path) -> None:
    second = output.with_name("A-1_front_0.json")
    store.record_produced("b", "B-2", "h", "f", [output, second])
    store.record_failed("a", "A-1", "h", "f", "bad")
    assert store.get("missing") is None
    state = store.get("b")
    assert state is not None
    assert (state.job_id, state.sku, state.image_hash, state.config_fingerprint) == ("b", "B-2", "h", "f")
    assert state.outputs == (output, second)
    assert state.updated_at.endswith("+00:00")
    assert [row.job_id for row in store.all_rows()] == ["a", "b"]
    assert not store.is_done("b", "h", "f")  # one of its two outputs does not exist


def test_state_survives_reopening(tmp_path: Path, output: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    with StateStore(path) as first:
        first.record_produced("J", "A-1", "h", "f", [output])
    with StateStore(path) as second:
        assert second.is_done("J", "h", "f")


def test_many_threads_write_without_losing_rows(store: StateStore) -> None:
    def work(thread_index: int) -> None:
        for job in range(40):
            store.record_failed(f"t{thread_index}-{job}", "S", "h", "f", "x")
            store.get(f"t{thread_index}-{job}")

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.all_rows()) == 6 * 40


def _write_jobs(path: str, prefix: str, count: int) -> None:
    """Child process: record `count` jobs in the shared store."""
    with StateStore(Path(path)) as store:
        for job in range(count):
            store.record_failed(f"{prefix}-{job}", "S", "h", "f", "x")
            store.record_failed(f"shared-{job}", prefix, "h", "f", "x")  # both processes write the same keys


def test_two_processes_write_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "jobs.sqlite"
    StateStore(path).close()  # create the schema first
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_jobs, args=(str(path), prefix, 150)) for prefix in ("p", "q")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    with StateStore(path) as store:
        rows = store.all_rows()
    assert len(rows) == 150 * 3
    assert {row.sku for row in rows if row.job_id.startswith("shared-")} <= {"p", "q"}


def test_many_threads_open_a_new_store_at_once(tmp_path: Path) -> None:
    """A run's first tasks open the store concurrently: the WAL switch and schema must not fail as 'locked'."""
    import threading

    errors: list[BaseException] = []
    for attempt in range(5):
        path = tmp_path / f"state-{attempt}.sqlite"
        barrier = threading.Barrier(8)

        def worker(index: int, path: Path = path, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                store = StateStore(path)
                store.record_produced(f"job-{index}", "sku", "hash", "fp", [path])
                assert store.is_done(f"job-{index}", "hash", "fp")
            except BaseException as error:  # noqa: BLE001 - collected and asserted below
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
    assert errors == []
