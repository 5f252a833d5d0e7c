"""Per-job state across runs: lets nightly re-runs skip jobs whose image and config are unchanged.

Prefect's cache key includes the run id, so it cannot do this. `JobStore` is what the pipeline needs of a
store; `SQLiteJobStore` implements it in one SQLite file (WAL) in the output root. Safe for several threads
(one connection per thread) and processes (WAL plus a busy timeout; every write is one atomic statement).
Outputs are storage keys relative to the output root, so the store never looks at files: callers check
`JobState.is_current` and then that the keys exist in their storage.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path, PurePath
from typing import Literal, Protocol, runtime_checkable

JobStatus = Literal["produced", "failed"]

SCHEMA_VERSION = 2
_BUSY_TIMEOUT_S = 30.0
# SQLite builds before 3.32 allow 999 bound variables per statement; stay well under it.
_GET_MANY_CHUNK = 500

# The current layout; a new file gets it directly, older files reach it through _MIGRATIONS.
_CREATE_JOBS = """
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
_CREATE_SCHEMA_VERSION = "CREATE TABLE schema_version (version INTEGER NOT NULL)"
_UPSERT = """
INSERT INTO jobs (
    job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at, seed, flags
) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
    sku = excluded.sku, image_hash = excluded.image_hash, config_fingerprint = excluded.config_fingerprint,
    status = excluded.status, outputs = excluded.outputs, reason = excluded.reason,
    updated_at = excluded.updated_at, seed = excluded.seed, flags = excluded.flags
"""
_COLUMNS = "job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at, seed, flags"


class StateStoreVersionError(ValueError):
    """The state file was written by a newer onmodel, with a schema this code cannot read."""

    def __init__(self, path: Path, found: int) -> None:
        self.path = path
        self.found = found
        super().__init__(
            f"{path} has state schema version {found}, but this onmodel reads schema version "
            f"{SCHEMA_VERSION} at most; upgrade onmodel to use this state file (it was left unchanged)"
        )


@dataclass(frozen=True)
class JobState:
    """The last recorded outcome of one job (product x pose x variant)."""

    job_id: str
    sku: str
    image_hash: str
    config_fingerprint: str
    status: JobStatus
    outputs: tuple[str, ...]  # storage keys relative to the output root, '/'-separated
    reason: str
    updated_at: str  # ISO 8601, UTC
    seed: int | None = None  # the seed actually used; None when unknown (rows migrated from version 1)
    flags: tuple[str, ...] = ()  # job-level quality flags, e.g. "garment_upscaled"

    def is_current(self, image_hash: str, fingerprint: str) -> bool:
        """Produced with this image hash and fingerprint, with outputs (the caller checks they exist)."""
        return (
            self.status == "produced"
            and self.image_hash == image_hash
            and self.config_fingerprint == fingerprint
            and bool(self.outputs)
        )


@runtime_checkable
class JobStore(Protocol):
    """What the pipeline needs of a state store; SQLite today, a shared PostgreSQL store later."""

    @property
    def schema_version(self) -> int:
        """The schema version of the open store."""
        ...

    def get(self, job_id: str) -> JobState | None:
        """The job's last recorded state, or None if it never ran."""
        ...

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The recorded states of these jobs, by job id; jobs that never ran are absent."""
        ...

    def record_produced(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        outputs: Sequence[str],
        seed: int,
        flags: Sequence[str] = (),
    ) -> None:
        """Record that a job wrote its outputs (call after they are in place)."""
        ...

    def record_failed(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        reason: str,
        seed: int | None = None,
    ) -> None:
        """Record that a job failed after its retries, with the reason; a later run tries it again."""
        ...

    def all_rows(self) -> list[JobState]:
        """Every recorded job, ordered by job id."""
        ...

    def close(self) -> None:
        """Release the store; it must not be used afterwards."""
        ...


def _retry_while_locked(statement: Callable[[], object]) -> None:
    """Run a statement, retrying for up to the busy timeout while another connection holds the lock."""
    deadline = time.monotonic() + _BUSY_TIMEOUT_S
    while True:
        try:
            statement()
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


def _file_version(connection: sqlite3.Connection) -> int:
    """The schema version of the open file: 0 for an empty file, 1 for the layout before version tracking."""
    tables = {
        name
        for (name,) in connection.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('jobs', 'schema_version')"
        )
    }
    if "schema_version" in tables:
        row = connection.execute("SELECT version FROM schema_version").fetchone()
        if row is None:
            # Never written by onmodel: the table and its row are created in one transaction.
            raise sqlite3.DatabaseError("the schema_version table is empty")
        return int(row[0])
    return 1 if "jobs" in tables else 0


def _output_key(output: str, roots: Sequence[PurePath]) -> str:
    """A version-1 output path as a key relative to the output root, or as written if it is not under it."""
    path = PurePath(output)
    if not path.is_absolute():
        return output
    normalised = PurePath(os.path.normpath(path))
    for root in roots:
        if normalised.is_relative_to(root) and normalised != root:
            return normalised.relative_to(root).as_posix()
    return output


def _migrate_1_to_2(connection: sqlite3.Connection, store_path: Path) -> None:
    """Add seed and flags, and turn absolute output paths under the store's folder into storage keys."""
    connection.execute("ALTER TABLE jobs ADD COLUMN seed INTEGER")
    connection.execute("ALTER TABLE jobs ADD COLUMN flags TEXT NOT NULL DEFAULT '[]'")
    # The v1 paths were written as given, so match both the lexical and the symlink-resolved folder.
    folder = store_path.absolute().parent
    roots = list(dict.fromkeys([PurePath(os.path.normpath(folder)), PurePath(folder.resolve())]))
    rows = connection.execute("SELECT job_id, outputs FROM jobs").fetchall()
    for job_id, outputs in rows:
        keys = [_output_key(output, roots) for output in json.loads(outputs)]
        connection.execute("UPDATE jobs SET outputs = ? WHERE job_id = ?", (json.dumps(keys), job_id))
    # Version 2 introduces version tracking; the caller then sets the final version.
    connection.execute(_CREATE_SCHEMA_VERSION)
    connection.execute("INSERT INTO schema_version (version) VALUES (2)")


# _MIGRATIONS[v - 1] upgrades a version-v file to version v + 1, in the caller's transaction.
_MIGRATIONS: list[Callable[[sqlite3.Connection, Path], None]] = [_migrate_1_to_2]
assert len(_MIGRATIONS) == SCHEMA_VERSION - 1, "one migration per version step"


def _check_key(key: str) -> str:
    """A storage key as given, or ValueError if it looks like an OS path rather than a relative '/' key."""
    if (
        not isinstance(key, str)
        or not key
        or key.startswith("/")
        or "\\" in key
        or {"", ".", ".."} & set(key.split("/"))
    ):
        raise ValueError(f"not a storage key relative to the output root: {key!r}")
    return key


def _strings(values: Sequence[str], what: str) -> list[str]:
    """The values as a list, refusing a bare string (which would otherwise become one entry per character)."""
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings, not a string")
    return list(values)


def _row_to_state(row: tuple) -> JobState:
    """A table row as a JobState."""
    job_id, sku, image_hash, fingerprint, status, outputs, reason, updated_at, seed, flags = row
    return JobState(
        job_id=job_id,
        sku=sku,
        image_hash=image_hash,
        config_fingerprint=fingerprint,
        status=status,
        outputs=tuple(json.loads(outputs)),
        reason=reason,
        updated_at=updated_at,
        seed=seed,
        flags=tuple(json.loads(flags)),
    )


class SQLiteJobStore:
    """Job outcomes by job id, in one SQLite file in the output root, shared by threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        self._schema_version = 0
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _open(self) -> None:
        """Refuse a newer file, switch to WAL, then create or migrate the schema."""
        connection = self._connection()
        # Read-only check first: a file from a newer onmodel must be left as it is (no WAL switch either).
        version = 0

        def read_version() -> None:
            nonlocal version
            version = _file_version(connection)

        _retry_while_locked(read_version)
        if version > SCHEMA_VERSION:
            raise StateStoreVersionError(self.path, version)
        # Switching to WAL takes an exclusive lock for which SQLite does not wait (busy timeout or not), so
        # when several tasks open a new store at once, retry; WAL is then a property of the file, set once.
        _retry_while_locked(lambda: connection.execute("PRAGMA journal_mode=WAL"))
        if version != SCHEMA_VERSION:
            _retry_while_locked(lambda: self._upgrade(connection))
        self._schema_version = SCHEMA_VERSION

    def _upgrade(self, connection: sqlite3.Connection) -> None:
        """Create or migrate the schema in one write transaction, so concurrent openers do it exactly once."""
        # BEGIN IMMEDIATE takes the write lock at once: a second opener waits here, then sees the new version.
        connection.execute("BEGIN IMMEDIATE")
        try:
            version = _file_version(connection)  # again, under the lock: another process may have done it
            if version > SCHEMA_VERSION:
                raise StateStoreVersionError(self.path, version)
            if version == 0:
                connection.execute(_CREATE_JOBS)
                connection.execute(_CREATE_SCHEMA_VERSION)
                connection.execute("INSERT INTO schema_version (version) VALUES (?)", (SCHEMA_VERSION,))
            elif version < SCHEMA_VERSION:
                for migrate in _MIGRATIONS[version - 1 :]:
                    migrate(connection, self.path)
                connection.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION,))
            connection.execute("COMMIT")
        except BaseException:
            # No half-migrated file, and a clean connection for a retry (SQLite may have rolled back already).
            if connection.in_transaction:
                connection.execute("ROLLBACK")
            raise

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must not be shared between threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit (isolation_level=None): each statement is its own transaction.
            # check_same_thread=False only so close() may close other threads' connections; each is used by
            # one thread.
            connection = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    @property
    def schema_version(self) -> int:
        """The schema version of the open file (always SCHEMA_VERSION once opened)."""
        return self._schema_version

    def _record(
        self,
        job_id: str,
        sku: str,
        image_hash: str,
        fingerprint: str,
        status: JobStatus,
        outputs: Sequence[str],
        reason: str,
        seed: int | None,
        flags: Sequence[str],
    ) -> None:
        """Insert or replace one job's row."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        encoded_outputs = json.dumps([_check_key(key) for key in _strings(outputs, "outputs")])
        encoded_flags = json.dumps(_strings(flags, "flags"))
        self._connection().execute(
            _UPSERT,
            (job_id, sku, image_hash, fingerprint, status, encoded_outputs, reason, now, seed, encoded_flags),
        )

    def record_produced(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        outputs: Sequence[str],
        seed: int,
        flags: Sequence[str] = (),
    ) -> None:
        """Record that a job wrote its outputs (call once they are in place), with its seed and flags."""
        self._record(job_id, sku, image_hash, fingerprint, "produced", outputs, "", seed, flags)

    def record_failed(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        reason: str,
        seed: int | None = None,
    ) -> None:
        """Record that a job failed after its retries, with the reason; a later run tries it again."""
        self._record(job_id, sku, image_hash, fingerprint, "failed", (), reason, seed, ())

    def get(self, job_id: str) -> JobState | None:
        """The job's last recorded state, or None if it never ran."""
        row = (
            self._connection().execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        )
        return _row_to_state(row) if row is not None else None

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The recorded states of these jobs, by job id; jobs that never ran are absent."""
        unique = list(dict.fromkeys(_strings(job_ids, "job_ids")))
        connection = self._connection()
        found: dict[str, JobState] = {}
        # One query per chunk: SQLite caps the number of bound variables in one statement.
        for start in range(0, len(unique), _GET_MANY_CHUNK):
            chunk = unique[start : start + _GET_MANY_CHUNK]
            placeholders = ", ".join("?" * len(chunk))
            query = f"SELECT {_COLUMNS} FROM jobs WHERE job_id IN ({placeholders})"
            for row in connection.execute(query, chunk):
                state = _row_to_state(row)
                found[state.job_id] = state
        return found

    def all_rows(self) -> list[JobState]:
        """Every recorded job, ordered by job id."""
        rows = self._connection().execute(f"SELECT {_COLUMNS} FROM jobs ORDER BY job_id").fetchall()
        return [_row_to_state(row) for row in rows]

    def close(self) -> None:
        """Close every thread's connection; the store must not be used afterwards."""
        with self._lock:
            for connection in self._connections:
                connection.close()
            self._connections.clear()
        self._local = threading.local()

    def __enter__(self) -> SQLiteJobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
