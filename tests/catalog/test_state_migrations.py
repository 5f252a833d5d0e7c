"""State schema versions: new stores at the head, files of the releases before Alembic migrated in place, a
store from a newer onmodel refused and left untouched, and the migrations matching catalog/state_tables.py."""

from __future__ import annotations

import json
import multiprocessing
import sqlite3
import threading
from pathlib import Path

import pytest
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, inspect, text

from catalog.state import (
    SCHEMA_VERSION,
    SQLiteJobStore,
    StateStoreLayoutError,
    StateStoreVersionError,
    open_job_store,
)
from catalog.state_migrate import MIGRATIONS, revision_for
from catalog.state_tables import metadata

_KEY = "images/master/A-1/A-1__front__v0.png"

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
# The version-2 layout and writes exactly as the raw-sqlite3 catalog/state.py (before SQLAlchemy) made them.
_V2_CREATE_JOBS = """
CREATE TABLE jobs (
    job_id TEXT PRIMARY KEY,
    sku TEXT NOT NULL,
    image_hash TEXT NOT NULL,
    config_fingerprint TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('produced', 'failed')),
    outputs TEXT NOT NULL,
    reason TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    seed INTEGER,
    flags TEXT NOT NULL DEFAULT '[]'
)
"""
_V2_CREATE_SCHEMA_VERSION = "CREATE TABLE schema_version (version INTEGER NOT NULL)"
_V2_UPSERT = """
INSERT INTO jobs (
    job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at, seed, flags
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
    sku = excluded.sku, image_hash = excluded.image_hash, config_fingerprint = excluded.config_fingerprint,
    status = excluded.status, outputs = excluded.outputs, reason = excluded.reason,
    updated_at = excluded.updated_at, seed = excluded.seed, flags = excluded.flags
"""


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


def _write_v2_file(path: Path) -> None:
    """A real version-2 store as the raw-sqlite3 release wrote it: WAL, the version row, upserted jobs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute("PRAGMA journal_mode=WAL")
    connection.execute("BEGIN IMMEDIATE")
    connection.execute(_V2_CREATE_JOBS)
    connection.execute(_V2_CREATE_SCHEMA_VERSION)
    connection.execute("INSERT INTO schema_version (version) VALUES (?)", (2,))
    connection.execute("COMMIT")
    updated = "2025-02-01T02:00:00.000+00:00"
    rows = [
        ("A-1/front/0", "A-1", "h1", "fp", "produced", [_KEY, "meta/A-1.json"], "", 11, ["garment_upscaled"]),
        ("A-1/back/0", "A-1", "h1", "fp", "failed", [], "CUDA OOM after 3 tries", 12, []),
        ("B-2/front/0", "B-2", "h2", "fp", "produced", ["images/master/B-2/b.png"], "", 0, []),
    ]
    for job_id, sku, image_hash, fingerprint, status, outputs, reason, seed, flags in rows:
        connection.execute(
            _V2_UPSERT,
            (
                job_id,
                sku,
                image_hash,
                fingerprint,
                status,
                json.dumps(outputs),
                reason,
                updated,
                seed,
                json.dumps(flags),
            ),
        )
    connection.close()


def _raw_version_rows(path: Path) -> list[tuple[int]]:
    """The schema_version table, read without the store."""
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT version FROM schema_version").fetchall()
    finally:
        connection.close()


def _raw_revision(path: Path) -> list[tuple[str]]:
    connection = sqlite3.connect(path)
    try:
        return connection.execute("SELECT version_num FROM alembic_version").fetchall()
    finally:
        connection.close()


# The migrations themselves --------------------------------------------------------------------------------------


def test_migrations_form_one_line_ending_at_the_current_version() -> None:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    script = ScriptDirectory.from_config(config)
    assert script.get_heads() == [revision_for(SCHEMA_VERSION)]
    chain = [revision.revision for revision in script.walk_revisions()]
    assert chain == [revision_for(version) for version in range(SCHEMA_VERSION, 0, -1)]


def test_a_migrated_store_has_exactly_the_tables_the_queries_use(state_url: str) -> None:
    open_job_store(state_url).close()
    engine = create_engine(state_url)
    try:
        inspector = inspect(engine)
        found = {
            name: [column["name"] for column in inspector.get_columns(name)]
            for name in inspector.get_table_names()
        }
        with engine.connect() as connection:
            version = connection.execute(text("SELECT version FROM schema_version")).all()
            revision = connection.execute(text("SELECT version_num FROM alembic_version")).all()
    finally:
        engine.dispose()
    expected = {table.name: [column.name for column in table.columns] for table in metadata.sorted_tables}
    assert found == {**expected, "alembic_version": ["version_num"]}
    assert (version, revision) == ([(SCHEMA_VERSION,)], [(revision_for(SCHEMA_VERSION),)])


# New stores ---------------------------------------------------------------------------------------------------


def test_new_file_is_created_at_the_current_version(tmp_path: Path) -> None:
    path = tmp_path / "out" / "state.sqlite"
    SQLiteJobStore(path).close()
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    assert _raw_revision(path) == [(revision_for(SCHEMA_VERSION),)]
    connection = sqlite3.connect(path)
    journal_mode = connection.execute("PRAGMA journal_mode").fetchone()[0]
    connection.close()
    assert journal_mode == "wal"


def test_reopening_adds_no_version_rows(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    for _ in range(3):
        SQLiteJobStore(path).close()
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    assert _raw_revision(path) == [(revision_for(SCHEMA_VERSION),)]


# Files of the releases before Alembic ----------------------------------------------------------------------------


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
        assert store.schema_version == SCHEMA_VERSION
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
        assert (front.attempts, front.last_error, front.last_run_id) == (1, "", None)
        assert front.is_current("h", "f")
        assert store.get_many(["A-1/back/0"])["A-1/back/0"].outputs == ("images/b.png",)
        failed = store.get("B-2/front/0")
        assert failed is not None and (failed.status, failed.reason, failed.outputs) == ("failed", "boom", ())
        assert failed.last_error == "boom"
        assert [row.job_id for row in store.all_rows()] == ["A-1/back/0", "A-1/front/0", "B-2/front/0"]
        store.record_produced(
            "C-3/front/0", sku="C-3", image_hash="h", fingerprint="f", outputs=[_KEY], seed=7
        )  # the migrated table takes new rows
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    with SQLiteJobStore(path) as reopened:  # a second open finds the head and changes nothing
        assert reopened.get("A-1/front/0") == front
        assert len(reopened.all_rows()) == 4


def test_version_2_file_written_by_the_raw_sqlite_release_is_migrated_in_place(tmp_path: Path) -> None:
    path = tmp_path / "out" / "state.sqlite"
    _write_v2_file(path)
    with open_job_store(path) as store:
        rows = {row.job_id: row for row in store.all_rows()}
        assert set(rows) == {"A-1/front/0", "A-1/back/0", "B-2/front/0"}
        front = rows["A-1/front/0"]
        assert (front.outputs, front.seed, front.flags) == (
            (_KEY, "meta/A-1.json"),
            11,
            ("garment_upscaled",),
        )
        assert (front.updated_at, front.attempts, front.render_fields) == (
            "2025-02-01T02:00:00.000+00:00",
            1,
            {},
        )
        assert front.is_current("h1", "fp")
        back = rows["A-1/back/0"]
        assert (back.status, back.reason, back.last_error, back.seed) == (
            "failed",
            "CUDA OOM after 3 tries",
            "CUDA OOM after 3 tries",
            12,
        )
        assert rows["B-2/front/0"].seed == 0
        # The new tables are there and usable.
        store.record_run_started("r1", profile="demo", csv="c.csv", trigger="cli")
        assert store.requeue_failed() == 1
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    assert _raw_revision(path) == [(revision_for(SCHEMA_VERSION),)]


def _open_v1_file(path: str, barrier: threading.Barrier, index: int) -> None:
    """Child process: open the shared version-1 file the moment every sibling is ready, then use it."""
    barrier.wait(timeout=60)
    with SQLiteJobStore(Path(path)) as store:
        assert store.schema_version == SCHEMA_VERSION
        state = store.get("J")
        assert state is not None and state.outputs == (_KEY,)
        store.record_produced(
            f"child-{index}", sku="A-1", image_hash="h", fingerprint="f", outputs=[_KEY], seed=7
        )


def test_opening_waits_for_a_writer_that_blocks_the_switch_to_wal(tmp_path: Path) -> None:
    """SQLite refuses the WAL switch at once while another connection holds the write lock (waiting could
    deadlock, so no busy timeout applies); the store tries again until the writer is done, instead of failing
    with the driver's "database is locked" (a process of a run starting beside another one's migration)."""
    import threading

    path = tmp_path / "state.sqlite"
    writer = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    writer.execute("CREATE TABLE other_tool (x INTEGER)")
    writer.execute("DROP TABLE other_tool")
    writer.execute("BEGIN IMMEDIATE")  # the write lock, held (readers may still read)
    done = threading.Timer(0.5, lambda: (writer.execute("COMMIT"), writer.close()))
    done.start()
    try:
        with SQLiteJobStore(path) as store:
            assert store.schema_version == SCHEMA_VERSION
    finally:
        done.join()
    connection = sqlite3.connect(path)
    assert connection.execute("PRAGMA journal_mode").fetchone() == ("wal",)
    connection.close()


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
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0, 0, 0, 0]  # none failed on a double migration
    assert _raw_version_rows(path) == [(SCHEMA_VERSION,)]
    with SQLiteJobStore(path) as store:
        rows = {row.job_id: row for row in store.all_rows()}
    assert set(rows) == {"J", "K", "child-0", "child-1", "child-2", "child-3"}
    assert rows["J"].outputs == (_KEY,) and rows["K"].reason == "boom"


# Stores from a newer onmodel, and databases that are not ours ------------------------------------------------------


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


def test_store_with_an_unknown_alembic_revision_raises_and_is_left_unchanged(state_url: str) -> None:
    """A newer onmodel that forgot to raise schema_version is still caught by its Alembic revision."""
    open_job_store(state_url).close()
    engine = create_engine(state_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE alembic_version SET version_num = '0042'"))
            connection.execute(text("CREATE TABLE from_the_future (x INTEGER)"))
        with pytest.raises(StateStoreVersionError, match="version 42"):
            open_job_store(state_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version_num FROM alembic_version")).all() == [("0042",)]
            assert "from_the_future" in inspect(connection).get_table_names()
    finally:
        engine.dispose()


def test_newer_server_schema_raises_before_anything_is_written(state_url: str) -> None:
    open_job_store(state_url).close()
    engine = create_engine(state_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("UPDATE schema_version SET version = 7"))
            connection.execute(text("UPDATE alembic_version SET version_num = '0007'"))
        with pytest.raises(StateStoreVersionError, match="version 7"):
            open_job_store(state_url)
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version FROM schema_version")).all() == [(7,)]
    finally:
        engine.dispose()


def test_a_database_holding_other_tables_is_refused(state_url: str) -> None:
    engine = create_engine(state_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("CREATE TABLE invoices (id INTEGER PRIMARY KEY)"))
        with pytest.raises(StateStoreLayoutError, match="no onmodel job store"):
            open_job_store(state_url)
        with engine.connect() as connection:
            assert inspect(connection).get_table_names() == ["invoices"]
    finally:
        engine.dispose()


def test_an_empty_schema_version_table_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    connection = sqlite3.connect(path, isolation_level=None)
    connection.execute(_V2_CREATE_JOBS)
    connection.execute(_V2_CREATE_SCHEMA_VERSION)
    connection.close()
    with pytest.raises(StateStoreLayoutError, match="not written by onmodel"):
        open_job_store(path)


def test_downgrading_to_version_2_and_back_keeps_the_jobs(state_url: str) -> None:
    """The migrations' downgrades work (for a release that has to be rolled back), rows included."""
    from alembic import command

    from catalog.state_migrate import _alembic_config

    with open_job_store(state_url) as store:
        store.record_produced(
            "J", sku="A", image_hash="h", fingerprint="f", outputs=[_KEY], seed=3, run_id="r"
        )
        store.record_failed("K", sku="B", image_hash="h", fingerprint="f", reason="OOM", run_id="r")
        assert store.requeue_failed() == 1
    engine = create_engine(state_url)
    try:
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection, None), revision_for(2))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT version FROM schema_version")).all() == [(2,)]
            columns = [column["name"] for column in inspect(connection).get_columns("jobs")]
            rows = connection.execute(text("SELECT job_id, status, seed FROM jobs ORDER BY job_id")).all()
        assert columns[-2:] == ["seed", "flags"] and "attempts" not in columns
        assert [tuple(row) for row in rows] == [
            ("J", "produced", 3),
            ("K", "failed", None),
        ]  # queued -> failed
    finally:
        engine.dispose()
    with open_job_store(state_url) as store:  # up to the head again on open
        assert store.schema_version == SCHEMA_VERSION
        assert {(row.job_id, row.status, row.attempts) for row in store.all_rows()} == {
            ("J", "produced", 1),
            ("K", "failed", 1),
        }


def test_threads_creating_different_new_stores_at_once_all_get_the_schema(tmp_path: Path) -> None:
    """Alembic keeps the running migration in module globals: concurrent migrations in one process must not
    trample each other (a device pool's threads opening stores of several output folders)."""
    import threading

    from catalog.state import open_job_store

    errors: list[BaseException] = []
    barrier = threading.Barrier(6)

    def open_one(index: int) -> None:
        barrier.wait()
        try:
            store = open_job_store(tmp_path / f"out{index}" / "state.sqlite")
            store.record_produced(
                "J", sku="S", image_hash="h", fingerprint="f", outputs=["images/x.png"], seed=1
            )
            assert store.get("J") is not None
        except BaseException as error:  # reported below, with every thread's
            errors.append(error)

    threads = [threading.Thread(target=open_one, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == []


def test_claims_from_version_3_name_no_owner_and_end_with_their_lease(state_url: str) -> None:
    """A version-3 claim (no holder recorded) migrates as it was: held until its lease ends, never voided."""
    from alembic import command

    from catalog.state_migrate import _alembic_config

    open_job_store(state_url).close()
    engine = create_engine(state_url)
    try:
        with engine.begin() as connection:
            command.downgrade(_alembic_config(connection, None), revision_for(3))
        with engine.begin() as connection:
            assert "owner_pid" not in {c["name"] for c in inspect(connection).get_columns("claims")}
            connection.execute(
                text(
                    "INSERT INTO claims (job_id, run_id, claimed_at, expires_at) VALUES "
                    "('held', 'old-run', '2025-01-01T00:00:00+00:00', 9e12), "
                    "('lapsed', 'old-run', '2025-01-01T00:00:00+00:00', 0)"
                )
            )
    finally:
        engine.dispose()
    with open_job_store(state_url) as store:
        assert store.schema_version == SCHEMA_VERSION == 5
        assert store.claims_of("old-run") == {"held", "lapsed"}
        assert store.claim(["held", "lapsed"], "new-run", lease_seconds=60) == {"lapsed"}
        assert store.claim_holders(["held"]) == {"held": "old-run"}
