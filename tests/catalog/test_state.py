"""The SQLite job store: is_current, seeds and flags, threads, processes, schema versions, migration."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest

from catalog.state import SCHEMA_VERSION, JobState, JobStore, SQLiteJobStore, StateStoreVersionError

# The version-1 layout exactly as catalog/state.py created it before schema versions existed.
_V1_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    job_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('produced', 'failed')),
    outputs TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_at TEXT NOT NULL
)
"""
_V1_INSERT = """
INSERT INTO jobs (job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
"""
_KEY = "images/master/A-1/A-1__front__v0.png"


@pytest.fixture
def store(tmp_path: Path):
    with SQLiteJobStore(tmp_path / "out" / "state.sqlite") as opened:
        yield opened


def _produce(store: SQLiteJobStore, job_id: str, outputs: list[str], *, h: str = "h", f: str = "f") -> None:
    """Record a produced job with a fixed sku and seed."""
    store.record_produced(job_id, sku="A-1", image_hash=h, fingerprint=f, outputs=outputs, seed=7)


def _fail(store: SQLiteJobStore, job_id: str, sku: str = "S", reason: str = "x") -> None:
    """Record a failed job."""
    store.record_failed(job_id, sku=sku, image_hash="h", fingerprint="f", reason=reason)


def _is_current(store: SQLiteJobStore, job_id: str, h: str, f: str) -> bool:
    """The caller's side of skip-if-done, minus the storage existence check."""
    state = store.get(job_id)
    return state is not None and state.is_current(h, f)


def _write_v1_file(path: Path, rows: list[tuple[str, str, list[str]]], *, wal: bool = True) -> None:
    """A real version-1 store made with raw sqlite3: (job_id, status, absolute output paths) per row."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    if wal:
        connection.execute("PRAGMA journal_mode=WAL")  # as version-1 onmodel left its files
    connection.execute(_V1_SCHEMA)
    for job_id, status, outputs in rows:
        reason = "boom" if status == "failed" else ""
        updated = "2025-01-01T00:00:00.000+00:00"
        connection.execute(
            _V1_INSERT, (job_id, "A-1", "h", "f", status, json.dumps(outputs), reason, updated)
        )
    connection.close()


def _raw_version_rows(path: Path) -> list[tuple[int]]:
    """The schema_version table, read without the store."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT version FROM schema_version").fetchall()
    finally:
        connection.close()


def test_is_current_only_when_produced_with_same_hash_fingerprint_and_outputs(store: SQLiteJobStore) -> None:
    assert not _is_current(store, "A-1/front/0", "h1", "f1")  # never ran
    _produce(store, "A-1/front/0", [_KEY], h="h1", f="f1")
    assert _is_current(store, "A-1/front/0", "h1", "f1")
    assert not _is_current(store, "A-1/front/0", "h2", "f1")  # the product image changed
    assert not _is_current(store, "A-1/front/0", "h1", "f2")  # the config changed
    _produce(store, "empty", [], h="h1", f="f1")
    assert not _is_current(store, "empty", "h1", "f1")  # nothing recorded to check for
    _fail(store, "A-1/front/0")
    assert not _is_current(store, "A-1/front/0", "h", "f")  # failed, even with matching hash and fingerprint


def test_failed_jobs_are_not_current_and_keep_their_reason(store: SQLiteJobStore) -> None:
    _produce(store, "J", [_KEY])
    store.record_failed(
        "J", sku="A-1", image_hash="h", fingerprint="f", reason="CUDA OOM after 3 tries", seed=11
    )
    state = store.get("J")
    assert state is not None
    assert (state.status, state.reason, state.outputs) == ("failed", "CUDA OOM after 3 tries", ())
    assert (state.seed, state.flags) == (11, ())  # a failure replaces the produced seed and flags
    assert not state.is_current("h", "f")


def test_get_and_all_rows_round_trip(store: SQLiteJobStore) -> None:
    second = "meta/A-1/A-1__front__v0.json"
    store.record_produced("b", sku="B-2", image_hash="h", fingerprint="f", outputs=[_KEY, second], seed=3)
    _fail(store, "a", sku="A-1", reason="bad")
    assert store.get("missing") is None
    state = store.get("b")
    assert state is not None
    assert (state.job_id, state.sku, state.image_hash, state.config_fingerprint) == ("b", "B-2", "h", "f")
    assert (state.status, state.outputs, state.reason) == ("produced", (_KEY, second), "")
    assert state.updated_at.endswith("+00:00")
    assert [row.job_id for row in store.all_rows()] == ["a", "b"]
    assert store.schema_version == SCHEMA_VERSION == 2


def test_seed_and_flags_round_trip_through_get_and_get_many(store: SQLiteJobStore) -> None:
    store.record_produced(
        "J",
        sku="A-1",
        image_hash="h",
        fingerprint="f",
        outputs=[_KEY],
        seed=123456789,
        flags=["garment_upscaled", "low_contrast"],
    )
    store.record_produced("K", sku="A-1", image_hash="h", fingerprint="f", outputs=[_KEY], seed=0)
    _fail(store, "L")
    for states in ({job: store.get(job) for job in ("J", "K", "L")}, store.get_many(["J", "K", "L"])):
        assert states["J"] == JobState(
            "J",
            "A-1",
            "h",
            "f",
            "produced",
            (_KEY,),
            "",
            states["J"].updated_at,
            seed=123456789,
            flags=("garment_upscaled", "low_contrast"),
        )
        assert (states["K"].seed, states["K"].flags) == (0, ())  # 0 is a real seed, not "unknown"
        assert (states["L"].seed, states["L"].flags) == (None, ())


def test_get_many_on_1200_ids_returns_exactly_the_recorded_ones(store: SQLiteJobStore) -> None:
    recorded = {f"job-{index:04d}" for index in range(0, 1200, 3)}
    for job_id in sorted(recorded):
        _produce(store, job_id, [f"images/{job_id}.png"])
    _produce(store, "not-asked", [_KEY])
    # Older SQLite builds allow only 999 bound variables: get_many must chunk rather than bind 1200 at once.
    store._connection().setlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER, 999)
    asked = [f"job-{index:04d}" for index in range(1200)]
    found = store.get_many(asked + asked[:10])  # repeated ids are harmless
    assert set(found) == recorded
    assert all(
        state.job_id == job_id and state.outputs == (f"images/{job_id}.png",)
        for job_id, state in found.items()
    )
    assert store.get_many([]) == {}


def test_outputs_must_be_storage_keys_not_os_paths(store: SQLiteJobStore, tmp_path: Path) -> None:
    for bad in (str(tmp_path / "out" / "a.png"), "images\\a.png", "images/../a.png", "", "images//a.png"):
        with pytest.raises(ValueError, match="storage key"):
            _produce(store, "J", [bad])
    with pytest.raises(TypeError):
        _produce(store, "J", _KEY)  # type: ignore[arg-type] - a bare string is not a list of keys
    assert store.get("J") is None


def test_state_survives_reopening(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    with SQLiteJobStore(path) as first:
        _produce(first, "J", [_KEY])
    with SQLiteJobStore(path) as second:
        assert _is_current(second, "J", "h", "f")
        assert second.schema_version == SCHEMA_VERSION
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]  # reopening does not add version rows


def test_new_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "out" / "state.sqlite"
    SQLiteJobStore(path).close()
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    connection = sqlite3.connect(path)
    columns = [row[1] for row in connection.execute("PRAGMA table_info(jobs)")]
    journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert columns[-2:] == ["seed", "flags"]
    assert journal_mode == "wal"


def test_version_1_file_is_migrated_in_place(tmp_path: Path) -> None:
    root = tmp_path / "out"
    path = root / "state.sqlite"
    outside = str(tmp_path / "elsewhere" / "A-1__front__v0.png")
    _write_v1_file(
        path,
        [
            ("A-1/front/0", "produced", [str(root / _KEY), str(root / "meta" / "A-1.json"), outside]),
            ("A-1/back/0", "produced", [f"{root}/images/../images/b.png"]),  # written unnormalised
            ("B-2/front/0", "failed", []),
        ],
    )
    with SQLiteJobStore(path) as store:
        assert store.schema_version == 2
        front = store.get("A-1/front/0")
        assert front is not None
        assert front.outputs == (
            _KEY,
            "meta/A-1.json",
            outside,
        )  # keys relative to root; outside kept as written
        assert (front.seed, front.flags, front.status, front.updated_at) == (
            None,
            (),
            "produced",
            "2025-01-01T00:00:00.000+00:00",
        )
        assert front.is_current("h", "f")
        assert store.get_many(["A-1/back/0"])["A-1/back/0"].outputs == ("images/b.png",)
        failed = store.get("B-2/front/0")
        assert failed is not None and (failed.status, failed.reason, failed.outputs) == ("failed", "boom", ())
        assert [row.job_id for row in store.all_rows()] == ["A-1/back/0", "A-1/front/0", "B-2/front/0"]
        _produce(store, "C-3/front/0", [_KEY])  # the migrated table takes new rows
    assert _raw_version_rows(path) == [(2,)]
    with SQLiteJobStore(path) as reopened:  # a second open finds version 2 and changes nothing
        assert reopened.get("A-1/front/0") == front
        assert len(reopened.all_rows()) == 4


def _open_v1_file(path: str, barrier: threading.Barrier, index: int) -> None:
    """Child process: open the shared version-1 file the moment every sibling is ready, then use it."""
    barrier.wait(timeout=60)
    with SQLiteJobStore(Path(path)) as store:
        assert store.schema_version == 2
        state = store.get("J")
        assert state is not None and state.outputs == (_KEY,)
        _produce(store, f"child-{index}", [_KEY])


def test_two_processes_open_the_same_version_1_file_at_once(tmp_path: Path) -> None:
    path = tmp_path / "out" / "state.sqlite"
    _write_v1_file(path, [("J", "produced", [str(path.parent / _KEY)]), ("K", "failed", [])], wal=False)
    context = multiprocessing.get_context("spawn")
    barrier = context.Barrier(4)
    processes = [
        context.Process(target=_open_v1_file, args=(str(path), barrier, index)) for index in range(4)
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=90)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]  # none failed on a double migration
    assert _raw_version_rows(path) == [(2,)]
    with SQLiteJobStore(path) as store:
        rows = {row.job_id: row for row in store.all_rows()}
    assert set(rows) == {"J", "K", "child-0", "child-1", "child-2", "child-3"}
    assert rows["J"].outputs == (_KEY,) and rows["K"].reason == "boom"


def test_file_from_a_newer_version_raises_and_is_left_unchanged(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)  # rollback journal: a WAL switch would show
    connection.execute("CREATE TABLE jobs (job_id TEXT PRIMARY KEY, something_new BLOB)")
    connection.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    connection.execute("INSERT INTO schema_version (version) VALUES (99)")
    connection.close()
    before = path.read_bytes()
    with pytest.raises(StateStoreVersionError, match="upgrade onmodel") as raised:
        SQLiteJobStore(path)
    assert isinstance(raised.value, ValueError)
    assert "version 99" in str(raised.value) and f"version {SCHEMA_VERSION}" in str(raised.value)
    assert path.read_bytes() == before
    assert sorted(item.name for item in tmp_path.iterdir()) == [
        "state.sqlite"
    ]  # no WAL or journal left behind


def _count_produced(store: JobStore) -> int:
    """A caller typed against the protocol only."""
    return sum(row.status == "produced" for row in store.all_rows())


def test_sqlite_store_satisfies_the_job_store_protocol(store: SQLiteJobStore) -> None:
    assert isinstance(store, JobStore)
    assert not isinstance(object(), JobStore)
    _produce(store, "J", [_KEY])
    assert _count_produced(store) == 1


def test_many_threads_write_without_losing_rows(store: SQLiteJobStore) -> None:
    def work(thread_index: int) -> None:
        for job in range(40):
            _fail(store, f"t{thread_index}-{job}")
            store.get(f"t{thread_index}-{job}")

    threads = [threading.Thread(target=work, args=(index,)) for index in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(store.all_rows()) == 6 * 40


def _write_jobs(path: str, prefix: str, count: int) -> None:
    """Child process: record `count` jobs in the shared store."""
    with SQLiteJobStore(Path(path)) as store:
        for job in range(count):
            _fail(store, f"{prefix}-{job}")
            _fail(store, f"shared-{job}", sku=prefix)  # both processes write the same keys


def test_two_processes_write_the_same_store(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    SQLiteJobStore(path).close()  # create the schema first
    context = multiprocessing.get_context("spawn")
    processes = [context.Process(target=_write_jobs, args=(str(path), prefix, 150)) for prefix in ("p", "q")]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=60)
    assert [process.exitcode for process in processes] == [0, 0]
    with SQLiteJobStore(path) as store:
        rows = store.all_rows()
    assert len(rows) == 150 * 3
    assert {row.sku for row in rows if row.job_id.startswith("shared-")} <= {"p", "q"}


def test_many_threads_open_a_new_store_at_once(tmp_path: Path) -> None:
    """A run's first tasks open the store at once: the WAL switch and schema must not fail as 'locked'."""
    errors: list[BaseException] = []
    for attempt in range(5):
        path = tmp_path / f"state-{attempt}.sqlite"
        barrier = threading.Barrier(8)

        def worker(index: int, path: Path = path, barrier: threading.Barrier = barrier) -> None:
            try:
                barrier.wait()
                store = SQLiteJobStore(path)
                _produce(store, f"job-{index}", [_KEY], h="hash", f="fp")
                assert _is_current(store, f"job-{index}", "hash", "fp")
            except BaseException as error:
                errors.append(error)

        threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)
        assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]  # created exactly once
    assert errors == []
