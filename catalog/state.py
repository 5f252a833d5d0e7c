"""Per-job state across runs (SQLite, WAL): lets nightly re-runs skip jobs whose image and config are unchanged.

Prefect's cache key includes the run id, so it cannot do this. Safe for several threads (one connection per
thread) and several processes (WAL plus a busy timeout; every write is a single atomic statement).
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

JobStatus = Literal["produced", "failed"]
_BUSY_TIMEOUT_S = 30.0

_SCHEMA = """
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
_UPSERT = """
INSERT INTO jobs (job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (job_id) DO UPDATE SET
    sku = excluded.sku, image_hash = excluded.image_hash, config_fingerprint = excluded.config_fingerprint,
    status = excluded.status, outputs = excluded.outputs, reason = excluded.reason, updated_at = excluded.updated_at
"""
_COLUMNS = "job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at"


@dataclass(frozen=True)
class JobState:
    """The last recorded outcome of one job (product x pose x variant)."""

    job_id: str
    sku: str
    image_hash: str
    config_fingerprint: str
    status: JobStatus
    outputs: tuple[Path, ...]
    reason: str
    updated_at: str  # ISO 8601, UTC


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


def _row_to_state(row: tuple) -> JobState:
    """A table row as a JobState."""
    job_id, sku, image_hash, fingerprint, status, outputs, reason, updated_at = row
    return JobState(
        job_id=job_id,
        sku=sku,
        image_hash=image_hash,
        config_fingerprint=fingerprint,
        status=status,
        outputs=tuple(Path(output) for output in json.loads(outputs)),
        reason=reason,
        updated_at=updated_at,
    )


class StateStore:
    """Job outcomes keyed by job id, in one SQLite file shared by threads and processes."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._connections: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        # Switching to WAL takes an exclusive lock for which SQLite does not wait (busy timeout or not), so when
        # several tasks open a new store at once, retry; WAL is then a property of the file, set once.
        connection = self._connection()
        _retry_while_locked(lambda: connection.execute("PRAGMA journal_mode=WAL"))
        _retry_while_locked(lambda: connection.execute(_SCHEMA))

    def _connection(self) -> sqlite3.Connection:
        """This thread's connection (sqlite3 connections must not be shared between threads)."""
        connection = getattr(self._local, "connection", None)
        if connection is None:
            # Autocommit (isolation_level=None): each statement is its own transaction.
            # check_same_thread=False only so close() may close other threads' connections; each is used by one thread.
            connection = sqlite3.connect(
                self.path, timeout=_BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
            connection.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes in WAL mode
            self._local.connection = connection
            with self._lock:
                self._connections.append(connection)
        return connection

    def _record(
        self,
        job_id: str,
        sku: str,
        image_hash: str,
        fingerprint: str,
        status: JobStatus,
        outputs: Iterable[Path],
        reason: str,
    ) -> None:
        """Insert or replace one job's row."""
        now = datetime.now(UTC).isoformat(timespec="milliseconds")
        encoded_outputs = json.dumps([str(output) for output in outputs])
        self._connection().execute(
            _UPSERT, (job_id, sku, image_hash, fingerprint, status, encoded_outputs, reason, now)
        )

    def record_produced(
        self, job_id: str, sku: str, image_hash: str, fingerprint: str, outputs: Iterable[Path]
    ) -> None:
        """Record that a job wrote its outputs (call after the files are in place)."""
        self._record(job_id, sku, image_hash, fingerprint, "produced", outputs, "")

    def record_failed(self, job_id: str, sku: str, image_hash: str, fingerprint: str, reason: str) -> None:
        """Record that a job failed after its retries, with the reason; a later run tries it again."""
        self._record(job_id, sku, image_hash, fingerprint, "failed", (), reason)

    def get(self, job_id: str) -> JobState | None:
        """The job's last recorded state, or None if it never ran."""
        row = (
            self._connection().execute(f"SELECT {_COLUMNS} FROM jobs WHERE job_id = ?", (job_id,)).fetchone()
        )
        return _row_to_state(row) if row is not None else None

    def is_done(self, job_id: str, image_hash: str, fingerprint: str) -> bool:
        """Produced with this image hash and config fingerprint, and every output file still exists."""
        state = self.get(job_id)
        return (
            state is not None
            and state.status == "produced"
            and state.image_hash == image_hash
            and state.config_fingerprint == fingerprint
            and bool(state.outputs)
            and all(output.is_file() for output in state.outputs)
        )

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

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
