"""Catalogue state across runs: jobs, products, runs, review decisions and job claims, in one SQL database.

Prefect's cache key includes the run id, so it cannot skip work across nightly runs; this store does. It is
SQLAlchemy Core over a SQLite file in the output root by default (WAL, a busy timeout, every write one
transaction that takes the write lock at once), or PostgreSQL by URL when several hosts share a catalogue
(`postgresql+psycopg://user:password@host/db`). The schema is versioned with the Alembic migrations in
catalog/migrations, applied on open (catalog/state_migrate.py).

Outputs are storage keys relative to the output root, so the store never looks at files: callers check
`JobState.is_current` and then that the keys exist in their storage.

Two runs at once (a nightly and an upload over overlapping products, on one host or many) keep off each
other's jobs with `claim`: one atomic upsert per chunk hands each job to exactly one live run. A claim names
its holding process (host, pid, start token): one whose holder on the claimant's host is dead (killed with -9)
is void at once, one held on another host ends with its lease (`renew` extends it while the run lives). Claim
first, then re-read the states of what you claimed: a job another run produced between your planning and your
claim is current by then.
"""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from dataclasses import fields as dataclass_fields
from datetime import UTC, datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, Literal, NamedTuple, Protocol, TypeVar, runtime_checkable

from sqlalchemy import (
    ColumnElement,
    Engine,
    Float,
    Row,
    Table,
    Text,
    any_,
    bindparam,
    cast,
    create_engine,
    delete,
    event,
    exc,
    func,
    literal_column,
    select,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url

from catalog import claim_owners, state_migrate
from catalog.claim_owners import ClaimOwner
from catalog.state_migrate import SCHEMA_VERSION, StateStoreLayoutError, StateStoreVersionError
from catalog.state_tables import claims, completed_products, jobs, products, review_decisions, runs

__all__ = [
    "SCHEMA_VERSION",
    "ClaimOwner",
    "CompletedProduct",
    "JobState",
    "JobStatus",
    "JobStore",
    "ProductSighting",
    "ProductState",
    "ReviewDecision",
    "RunState",
    "SQLJobStore",
    "SQLiteJobStore",
    "StateStore",
    "StateStoreLayoutError",
    "StateStoreVersionError",
    "choose_state_url",
    "open_job_store",
    "state_url",
]

JobStatus = Literal["produced", "failed", "queued"]
# "clear" takes a verdict back (the review app's undo when no earlier verdict was in force).
Decision = Literal["approve", "reject", "clear"]
RunStatus = Literal["running", "completed", "failed", "crashed"]
JOB_STATUSES: tuple[JobStatus, ...] = ("produced", "failed", "queued")
DECISIONS: tuple[Decision, ...] = ("approve", "reject", "clear")
RUN_STATUSES: tuple[RunStatus, ...] = ("running", "completed", "failed", "crashed")
STATE_URL_ENV = "ONMODEL_STATE_URL"

_BUSY_TIMEOUT_S = 30.0
# Bound variables per statement for the multi-row claim upsert (id sets elsewhere travel as one parameter):
# SQLite builds before 3.32 allow 999; PostgreSQL allows 65535, and fewer round trips matter over a network.
_SQLITE_VARIABLES = 999
_POSTGRES_VARIABLES = 30000
# Errors worth another try of the whole transaction: SQLite's lock held past the busy timeout's reach (the WAL
# switch does not wait), PostgreSQL's deadlock and serialization failures.
_RETRY_MARKERS = (
    "database is locked",
    "database table is locked",
    "deadlock detected",
    "could not serialize",
)
_PRODUCTS_PER_STATEMENT = 1000  # products recorded or marked seen per statement (and per transaction)
_T = TypeVar("_T")


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
    attempts: int = 0  # recorded attempts (produced or failed), ever; migrated rows start at 1
    last_error: str = ""  # the reason of the latest failure, kept after a later success
    last_run_id: str | None = None  # the run of the latest attempt (None for rows from before version 3)
    first_produced_run: str | None = None
    # The product fields that affect pixels (read-only); left out of the hash, so a JobState stays hashable.
    render_fields: Mapping[str, Any] = field(default_factory=dict, hash=False)
    render_fingerprint: str = ""  # preset-independent: the same render serves every preset

    def is_current(self, image_hash: str, fingerprint: str) -> bool:
        """Produced with this image hash and fingerprint, with outputs (the caller checks they exist)."""
        return (
            self.status == "produced"
            and self.image_hash == image_hash
            and self.config_fingerprint == fingerprint
            and bool(self.outputs)
        )


@dataclass(frozen=True)
class ProductState:
    """A product as the catalogue runs last saw it."""

    product_key: str  # the sku
    source_identity: Mapping[str, Any]  # what identifies the photo: path + size + mtime, or URL + ETag ...
    image_hash: str
    first_seen_run: str
    last_seen_run: str
    first_seen_at: str
    last_seen_at: str
    retired_at: str | None = None  # set when a full catalogue run no longer listed it; its files are kept
    retired_run: str | None = None
    render_fields: Mapping[str, Any] = field(default_factory=dict)  # the product fields that affect pixels

    @property
    def retired(self) -> bool:
        return self.retired_at is not None


@dataclass(frozen=True)
class ProductSighting:
    """A product as one catalogue run sees it: what `record_products` writes."""

    product_key: str
    image_hash: str
    source_identity: Mapping[str, Any] = field(default_factory=dict)
    render_fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class RunState:
    """One run: what started it, over which CSV and profile, and how it ended."""

    run_id: str
    started_at: str
    finished_at: str | None
    profile: str
    csv: str
    trigger: str  # cli, nightly, upload, ...
    counts: Mapping[str, int]
    status: RunStatus


@dataclass(frozen=True)
class ReviewDecision:
    """One reviewer's verdict on one job's image; the latest per job is the one in force."""

    decision_id: int
    job_id: str
    image_key: str
    decision: Decision
    reason: str
    comment: str
    reviewer: str
    decided_at: str


class CompletedProduct(NamedTuple):  # a tuple: a nightly plan reads 100k of them
    """A product whose every job one plan found done, and what that plan saw, in the planner's text forms
    (pipelines/production/completed.py): the store keeps them as written and never decodes them.

    jobs_stamp: `job_stamps` of the product when the plan read its jobs; decision_stamp: `latest_decision_id`
    then.
    """

    product_key: str
    image_hash: str
    config_fingerprint: str
    jobs_stamp: str
    decision_stamp: int
    plan_key: str
    presets: str
    file_stamps: str
    jobs: str
    cutout_flags: str = "[]"
    recorded_at: str = ""
    run_id: str = ""


@runtime_checkable
class JobStore(Protocol):
    """What the pipeline's stages need of a state store (SQLJobStore implements it on SQLite and PostgreSQL)."""

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


@runtime_checkable
class StateStore(JobStore, Protocol):
    """The whole catalogue state: jobs with their run and render inputs, products, runs, reviews, claims."""

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
        run_id: str | None = None,
        render_fields: Mapping[str, Any] | None = None,
        render_fingerprint: str = "",
    ) -> None: ...

    def record_failed(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        reason: str,
        seed: int | None = None,
        run_id: str | None = None,
        render_fields: Mapping[str, Any] | None = None,
        render_fingerprint: str = "",
    ) -> None: ...

    def failed_jobs(self) -> list[JobState]: ...

    def requeue_failed(self, job_ids: Sequence[str] | None = None) -> int: ...

    def skus_to_retry(self) -> set[str]: ...

    def counts_by_status(self, run_id: str | None = None) -> dict[str, int]: ...

    def counts_by_run(self) -> dict[str, dict[str, int]]: ...

    def record_run_started(self, run_id: str, *, profile: str, csv: str, trigger: str) -> None: ...

    def record_run_finished(
        self, run_id: str, *, counts: Mapping[str, int], status: RunStatus = "completed"
    ) -> None: ...

    def get_run(self, run_id: str) -> RunState | None: ...

    def list_runs(self) -> list[RunState]: ...

    def record_product(
        self,
        product_key: str,
        *,
        run_id: str,
        image_hash: str,
        source_identity: Mapping[str, Any],
        render_fields: Mapping[str, Any] | None = None,
    ) -> None: ...

    def record_products(self, sightings: Sequence[ProductSighting], run_id: str) -> int: ...

    def mark_seen(self, product_keys: Sequence[str], run_id: str) -> None: ...

    def get_products(self, product_keys: Sequence[str] | None = None) -> dict[str, ProductState]: ...

    def retire_missing(self, present_keys: Iterable[str], run_id: str) -> list[str]: ...

    def record_decision(
        self,
        job_id: str,
        decision: Decision,
        *,
        reviewer: str,
        reason: str = "",
        comment: str = "",
        image_key: str = "",
    ) -> ReviewDecision: ...

    def decisions(self, job_ids: Sequence[str] | None = None) -> dict[str, ReviewDecision]: ...

    def history(self, job_id: str) -> list[ReviewDecision]: ...

    def decisions_after(self, decision_id: int, limit: int = 100_000) -> list[ReviewDecision]: ...

    def latest_decision_id(self) -> int: ...

    def decided_since(self, decision_id: int) -> dict[str, int]: ...

    def job_stamps(self, skus: Sequence[str]) -> dict[str, str]: ...

    def get_completed(self, product_keys: Sequence[str]) -> dict[str, CompletedProduct]: ...

    def record_completed(self, completed: Sequence[CompletedProduct], run_id: str) -> None: ...

    def claim(
        self,
        job_ids: Sequence[str],
        run_id: str,
        lease_seconds: float,
        owner: ClaimOwner | None = None,
    ) -> set[str]: ...

    def renew(self, run_id: str, lease_seconds: float, owner: ClaimOwner | None = None) -> int: ...

    def release(self, job_ids: Sequence[str], run_id: str) -> int: ...

    def claims_of(self, run_id: str) -> set[str]: ...

    def claim_holders(self, job_ids: Sequence[str]) -> dict[str, str]: ...


def _now() -> str:
    """Now, in the store's timestamp format: sorts as text, also against the milliseconds of version-1 rows."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


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


def _strings(values: Iterable[str], what: str) -> list[str]:
    """The values as a list, refusing a bare string (which would otherwise become one entry per character)."""
    if isinstance(values, str):
        raise TypeError(f"{what} must be a sequence of strings, not a string")
    listed = list(values)
    for value in listed:
        if not isinstance(value, str):
            raise TypeError(f"{what} must hold strings; got {value!r}")
    return listed


def _unique(values: Iterable[str], what: str) -> list[str]:
    """The distinct values in a stable (sorted) order: sorted writes take row locks in one order, no deadlocks."""
    return sorted(set(_strings(values, what)))


def _chunks(values: Sequence[_T], size: int) -> Iterator[Sequence[_T]]:
    for start in range(0, len(values), size):
        yield values[start : start + size]


def _json_object(value: Mapping[str, Any] | None, what: str) -> str:
    """A mapping as canonical JSON, or TypeError naming the argument."""
    if value is None:
        return "{}"
    if not isinstance(value, Mapping):
        raise TypeError(
            f"{what} must be a mapping (it is stored as a JSON object); got {type(value).__name__}"
        )
    try:
        return json.dumps(dict(value), sort_keys=True)
    except TypeError as error:
        raise TypeError(f"{what} must be JSON-serialisable: {error}") from error


# The jobs columns in the order _JobDecoder unpacks them.
_JOB_COLUMNS = [
    jobs.c[name]
    for name in (
        "job_id",
        "sku",
        "image_hash",
        "config_fingerprint",
        "status",
        "outputs",
        "reason",
        "updated_at",
        "seed",
        "flags",
        "attempts",
        "last_error",
        "last_run_id",
        "first_produced_run",
        "render_fields",
        "render_fingerprint",
    )
]
_NO_FIELDS: Mapping[str, Any] = MappingProxyType({})
# JobState's fields, in the order of _JOB_COLUMNS (the decoder fills them by position).
_JOB_STATE_FIELDS = tuple(item.name for item in dataclass_fields(JobState))
assert _JOB_STATE_FIELDS == tuple(column.name for column in _JOB_COLUMNS), "JobState and _JOB_COLUMNS differ"


class _JobDecoder:
    """Rows of _JOB_COLUMNS as JobStates, fast enough for a 100k-job plan (its JSON decoded once per value).

    The jobs of one product share their render fields, so each distinct JSON text is decoded once and shared
    read-only.
    """

    def __init__(self) -> None:
        self._fields: dict[str, Mapping[str, Any]] = {"{}": _NO_FIELDS}

    def __call__(self, row: Sequence[Any]) -> JobState:
        (
            job_id,
            sku,
            image_hash,
            fingerprint,
            status,
            outputs,
            reason,
            updated_at,
            seed,
            flags,
            attempts,
            last_error,
            last_run_id,
            first_produced_run,
            render_fields,
            render_fingerprint,
        ) = row
        fields = self._fields.get(render_fields)
        if fields is None:
            fields = self._fields[render_fields] = MappingProxyType(json.loads(render_fields))
        # The frozen dataclass's __init__ sets each field through object.__setattr__; filling the instance's
        # dict at once is the same object for half the time (a 100k-product plan decodes 600k rows).
        state = object.__new__(JobState)
        state.__dict__.update(zip(_JOB_STATE_FIELDS, (
            job_id,
            sku,
            image_hash,
            fingerprint,
            status,
            tuple(json.loads(outputs)),
            reason,
            updated_at,
            seed,
            () if flags == "[]" else tuple(json.loads(flags)),
            attempts,
            last_error,
            last_run_id,
            first_produced_run,
            fields,
            render_fingerprint,
        ), strict=True))  # fmt: skip
        return state


def _product_from_row(row: Row[Any]) -> ProductState:
    return ProductState(
        product_key=row.product_key,
        source_identity=json.loads(row.source_identity),
        image_hash=row.image_hash,
        first_seen_run=row.first_seen_run,
        last_seen_run=row.last_seen_run,
        first_seen_at=row.first_seen_at,
        last_seen_at=row.last_seen_at,
        retired_at=row.retired_at,
        retired_run=row.retired_run,
        render_fields=json.loads(row.render_fields),
    )


def _run_from_row(row: Row[Any]) -> RunState:
    return RunState(
        run_id=row.run_id,
        started_at=row.started_at,
        finished_at=row.finished_at,
        profile=row.profile,
        csv=row.csv,
        trigger=row.trigger,
        counts=json.loads(row.counts),
        status=row.status,
    )


def _decision_from_row(row: Row[Any]) -> ReviewDecision:
    return ReviewDecision(
        decision_id=row.decision_id,
        job_id=row.job_id,
        image_key=row.image_key,
        decision=row.decision,
        reason=row.reason,
        comment=row.comment,
        reviewer=row.reviewer,
        decided_at=row.decided_at,
    )


def state_url(target: str | Path) -> str:
    """A SQLAlchemy URL for a store: a path becomes a SQLite file URL, postgresql:// gets the psycopg driver."""
    if isinstance(target, Path) or "://" not in target:
        return f"sqlite:///{Path(target)}"
    for prefix in ("postgres://", "postgresql://"):
        if target.startswith(prefix):
            return "postgresql+psycopg://" + target[len(prefix) :]
    return target


def _shown(url: URL) -> str:
    """The URL for messages: a SQLite file as its path, a server URL without its password."""
    if url.get_backend_name() == "sqlite":
        return str(url.database)
    return url.render_as_string(hide_password=True)


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, exc.OperationalError | exc.DBAPIError) and any(
        marker in str(error.orig) for marker in _RETRY_MARKERS
    )


def _install_fork_guard(engine: Engine) -> None:
    """A forked child must not reuse its parent's pooled connections (they share one socket or file lock)."""

    @event.listens_for(engine, "connect")
    def remember_pid(dbapi_connection: Any, record: Any) -> None:
        record.info["pid"] = os.getpid()

    @event.listens_for(engine, "checkout")
    def refuse_foreign(dbapi_connection: Any, record: Any, proxy: Any) -> None:
        if record.info.get("pid") != os.getpid():
            record.dbapi_connection = proxy.dbapi_connection = None
            raise exc.DisconnectionError("connection opened in another process; reconnecting")


def _install_sqlite_transactions(engine: Engine) -> None:
    """pysqlite's own transaction handling defers BEGIN past DDL; take over: BEGIN, or BEGIN IMMEDIATE to write.

    The SQLAlchemy-documented recipe. IMMEDIATE takes the write lock at the start (waiting up to the busy
    timeout), so a write transaction never fails halfway on a lock upgrade that SQLite will not wait for.
    """

    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout = {int(_BUSY_TIMEOUT_S * 1000)}")
        cursor.execute("PRAGMA synchronous = NORMAL")  # durable across process crashes in WAL mode
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(connection: Connection) -> None:
        writing = connection.get_execution_options().get("onmodel_write", False)
        connection.exec_driver_sql("BEGIN IMMEDIATE" if writing else "BEGIN")


class SQLJobStore:
    """The catalogue state in one SQL database (SQLite file or PostgreSQL), shared by threads and processes."""

    def __init__(self, url: str | Path) -> None:
        self.url = make_url(state_url(url))
        backend = self.url.get_backend_name()
        if backend not in ("sqlite", "postgresql"):
            raise ValueError(
                f"state store URL {_shown(self.url)}: onmodel keeps its state in SQLite (a file path or "
                "sqlite:///path) or PostgreSQL (postgresql+psycopg://user:password@host/database)"
            )
        self.location = _shown(self.url)
        self.path: Path | None = None
        if backend == "sqlite":
            if not self.url.database or self.url.database == ":memory:":
                raise ValueError(
                    "an in-memory SQLite state store would be empty in every connection; give a file path"
                )
            self.path = Path(self.url.database)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._engine = create_engine(
                self.url,
                connect_args={"timeout": _BUSY_TIMEOUT_S},
                pool_size=8,
                max_overflow=24,
                pool_timeout=_BUSY_TIMEOUT_S,
            )
            _install_sqlite_transactions(self._engine)
            self._variables = _SQLITE_VARIABLES
        else:
            self._engine = create_engine(
                self.url, pool_size=8, max_overflow=24, pool_timeout=_BUSY_TIMEOUT_S, pool_pre_ping=True
            )
            self._variables = _POSTGRES_VARIABLES
        _install_fork_guard(self._engine)
        self._closed = threading.Event()
        self._schema_version = 0
        try:
            self._open()
        except BaseException:
            self._engine.dispose()
            raise

    # Opening ------------------------------------------------------------------------------------------------

    def _open(self) -> None:
        """Refuse a newer schema (reading only), switch SQLite to WAL, then create or migrate the schema."""
        with self._engine.connect() as connection:
            version, revision = state_migrate.stored_version(connection, self.location)
        if self.path is not None:
            # Switching to WAL takes an exclusive lock for which SQLite does not wait (busy timeout or not), so
            # when several tasks open a new store at once, retry; WAL is then a property of the file, set once.
            self._retrying(lambda: self._set_wal())
        if state_migrate.needs_upgrade(version, revision):
            self._write(self._upgrade)
        self._schema_version = SCHEMA_VERSION

    def _set_wal(self) -> None:
        # Outside any transaction (SQLite refuses the switch inside one), so on the driver's connection; the
        # driver's own error is wrapped as SQLAlchemy's would be, so `_retrying` sees a lock and tries again.
        raw = self._engine.raw_connection()
        try:
            raw.cursor().execute("PRAGMA journal_mode = WAL")
        except sqlite3.OperationalError as error:
            raise exc.OperationalError("PRAGMA journal_mode = WAL", None, error) from error
        finally:
            raw.close()

    def _upgrade(self, connection: Connection) -> None:
        """Migrate under the write lock, so concurrent openers (threads, processes, hosts) do it exactly once."""
        if self.url.get_backend_name() == "postgresql":
            # PostgreSQL has transactional DDL but no database-wide write lock: an advisory lock serialises
            # migrations (held until the transaction ends).
            connection.execute(select(func.pg_advisory_xact_lock(0x6F6E6D6F64656C)))  # "onmodel"
        state_migrate.upgrade(connection, self.location, self.path)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; the pipeline uses the methods)."""
        return self._engine

    @property
    def schema_version(self) -> int:
        """The schema version of the open store (always SCHEMA_VERSION once opened)."""
        return self._schema_version

    # Transactions -------------------------------------------------------------------------------------------

    def _retrying(self, attempt: Callable[[], _T]) -> _T:
        """Run `attempt`, again while the database reports a lock, deadlock or serialization conflict."""
        deadline = time.monotonic() + _BUSY_TIMEOUT_S
        delay = 0.01
        while True:
            try:
                return attempt()
            except exc.DBAPIError as error:
                if not _is_retryable(error) or time.monotonic() > deadline:
                    raise
            time.sleep(delay)
            delay = min(delay * 2, 0.2)

    def _write(self, work: Callable[[Connection], _T]) -> _T:
        """`work` in one write transaction (SQLite: BEGIN IMMEDIATE), retried whole on a lock conflict."""

        def attempt() -> _T:
            with self._engine.connect() as connection:
                connection.execution_options(onmodel_write=True)
                with connection.begin():
                    return work(connection)

        return self._retrying(attempt)

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._engine.connect() as connection:
            yield connection

    def _insert(self, table: Table) -> Any:
        """The dialect's INSERT, which has on_conflict_do_update / do_nothing (SQLite and PostgreSQL alike)."""
        if self.url.get_backend_name() == "postgresql":
            return postgresql.insert(table)
        return sqlite.insert(table)

    def _db_now(self) -> ColumnElement[float]:
        """Seconds since the epoch on the database's clock (the one clock every host of a team agrees on)."""
        if self.url.get_backend_name() == "postgresql":
            return cast(func.extract("epoch", func.clock_timestamp()), Float)
        return literal_column("((julianday('now') - 2440587.5) * 86400.0)", Float)

    def _rows_per_statement(self, columns: int) -> int:
        return max(1, self._variables // columns)

    def _among(self, column: ColumnElement[str], values: Sequence[str]) -> ColumnElement[bool]:
        """`column IN values` with one bound parameter however many values (no per-value binds to chunk).

        SQLite expands a JSON array with json_each, PostgreSQL compares with ANY of a text[]; a 100k-job plan
        is then one query, not hundreds of chunks compiled one by one.
        """
        if self.url.get_backend_name() == "postgresql":
            return column == any_(bindparam(None, list(values), type_=postgresql.ARRAY(Text)))
        listed = func.json_each(bindparam(None, json.dumps(list(values)))).table_valued("value")
        return column.in_(select(listed.c.value).scalar_subquery())

    # Jobs ---------------------------------------------------------------------------------------------------

    def _record(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        status: JobStatus,
        outputs: Sequence[str],
        reason: str,
        seed: int | None,
        flags: Sequence[str],
        run_id: str | None,
        render_fields: Mapping[str, Any] | None,
        render_fingerprint: str,
    ) -> None:
        """Insert or update one job's row: attempts + 1, the first producing run kept, the last error kept."""
        values = {
            "job_id": job_id,
            "sku": sku,
            "image_hash": image_hash,
            "config_fingerprint": fingerprint,
            "status": status,
            "outputs": json.dumps([_check_key(key) for key in _strings(outputs, "outputs")]),
            "reason": reason,
            "updated_at": _now(),
            "seed": seed,
            "flags": json.dumps(_strings(flags, "flags")),
            "attempts": 1,
            "last_error": reason if status == "failed" else "",
            "last_run_id": run_id,
            "first_produced_run": run_id if status == "produced" else None,
            "render_fields": _json_object(render_fields, "render_fields"),
            "render_fingerprint": render_fingerprint,
            "row_version": 1,
        }
        statement = self._insert(jobs).values(values)
        new = statement.excluded
        kept = (
            "job_id",
            "attempts",
            "last_error",
            "first_produced_run",
            "render_fields",
            "render_fingerprint",
        )
        replaced: dict[str, Any] = {name: new[name] for name in values if name not in kept}
        replaced["attempts"] = jobs.c.attempts + 1
        replaced["row_version"] = jobs.c.row_version + 1
        if status == "failed":
            replaced["last_error"] = new.last_error
        else:
            replaced["first_produced_run"] = func.coalesce(jobs.c.first_produced_run, new.first_produced_run)
        # A caller that does not pass render inputs (the stages of before version 3) keeps the recorded ones.
        if render_fields is not None:
            replaced["render_fields"] = new.render_fields
        if render_fingerprint:
            replaced["render_fingerprint"] = new.render_fingerprint
        statement = statement.on_conflict_do_update(index_elements=[jobs.c.job_id], set_=replaced)
        self._write(lambda connection: connection.execute(statement))

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
        run_id: str | None = None,
        render_fields: Mapping[str, Any] | None = None,
        render_fingerprint: str = "",
    ) -> None:
        """Record that a job wrote its outputs (call once they are in place), with its seed, flags and run."""
        self._record(
            job_id,
            sku=sku,
            image_hash=image_hash,
            fingerprint=fingerprint,
            status="produced",
            outputs=outputs,
            reason="",
            seed=seed,
            flags=flags,
            run_id=run_id,
            render_fields=render_fields,
            render_fingerprint=render_fingerprint,
        )

    def record_failed(
        self,
        job_id: str,
        *,
        sku: str,
        image_hash: str,
        fingerprint: str,
        reason: str,
        seed: int | None = None,
        run_id: str | None = None,
        render_fields: Mapping[str, Any] | None = None,
        render_fingerprint: str = "",
    ) -> None:
        """Record that a job failed after its retries, with the reason; a later run tries it again."""
        self._record(
            job_id,
            sku=sku,
            image_hash=image_hash,
            fingerprint=fingerprint,
            status="failed",
            outputs=(),
            reason=reason,
            seed=seed,
            flags=(),
            run_id=run_id,
            render_fields=render_fields,
            render_fingerprint=render_fingerprint,
        )

    def get(self, job_id: str) -> JobState | None:
        """The job's last recorded state, or None if it never ran."""
        with self._read() as connection:
            row = connection.execute(select(*_JOB_COLUMNS).where(jobs.c.job_id == job_id)).first()
        return _JobDecoder()(row) if row is not None else None

    def get_many(self, job_ids: Sequence[str]) -> dict[str, JobState]:
        """The recorded states of these jobs, by job id; jobs that never ran are absent."""
        unique = list(dict.fromkeys(_strings(job_ids, "job_ids")))
        if not unique:
            return {}
        decode = _JobDecoder()
        query = select(*_JOB_COLUMNS).where(self._among(jobs.c.job_id, unique))
        with self._read() as connection:
            states = [decode(row) for row in connection.execute(query).all()]
        return {state.job_id: state for state in states}

    def all_rows(self) -> list[JobState]:
        """Every recorded job, ordered by job id."""
        decode = _JobDecoder()
        with self._read() as connection:
            return [
                decode(row) for row in connection.execute(select(*_JOB_COLUMNS).order_by(jobs.c.job_id)).all()
            ]

    def failed_jobs(self) -> list[JobState]:
        """The jobs whose latest attempt failed, ordered by job id."""
        query = select(*_JOB_COLUMNS).where(jobs.c.status == "failed").order_by(jobs.c.job_id)
        decode = _JobDecoder()
        with self._read() as connection:
            return [decode(row) for row in connection.execute(query).all()]

    def requeue_failed(self, job_ids: Sequence[str] | None = None) -> int:
        """Mark failed jobs (all, or these) queued, so the next run over their products renders them; the count.

        The last error and the attempt count are kept; a queued job is never current, like a failed one.
        """
        chosen = None if job_ids is None else _unique(job_ids, "job_ids")

        def work(connection: Connection) -> int:
            base = (
                update(jobs)
                .where(jobs.c.status == "failed")
                .values(status="queued", updated_at=_now(), row_version=jobs.c.row_version + 1)
            )
            if chosen is not None:
                base = base.where(self._among(jobs.c.job_id, chosen))
            return int(connection.execute(base).rowcount)

        return self._write(work)

    def skus_to_retry(self) -> set[str]:
        """Products with a failed or queued job: a nightly run renders them even if nothing else changed."""
        query = select(jobs.c.sku).where(jobs.c.status.in_(("failed", "queued"))).distinct()
        with self._read() as connection:
            return set(connection.execute(query).scalars())

    def counts_by_status(self, run_id: str | None = None) -> dict[str, int]:
        """Jobs per status (every status present, zeros included), of the whole store or of one run's attempts."""
        query = select(jobs.c.status, func.count()).group_by(jobs.c.status)
        if run_id is not None:
            query = query.where(jobs.c.last_run_id == run_id)
        counts: dict[str, int] = dict.fromkeys(JOB_STATUSES, 0)
        with self._read() as connection:
            for status, count in connection.execute(query):
                counts[status] = int(count)
        return counts

    def counts_by_run(self) -> dict[str, dict[str, int]]:
        """Jobs per status by the run of their latest attempt ('' for rows from before version 3)."""
        run = func.coalesce(jobs.c.last_run_id, "")
        query = select(run, jobs.c.status, func.count()).group_by(run, jobs.c.status)
        counts: dict[str, dict[str, int]] = {}
        with self._read() as connection:
            for run_id, status, count in connection.execute(query):
                counts.setdefault(run_id, dict.fromkeys(JOB_STATUSES, 0))[status] = int(count)
        return dict(sorted(counts.items()))

    # Runs ---------------------------------------------------------------------------------------------------

    def record_run_started(self, run_id: str, *, profile: str, csv: str, trigger: str) -> None:
        """Record a run as running (again, if a run with this id was recorded before)."""
        if not run_id:
            raise ValueError("a run needs a non-empty run id")
        if not trigger:
            raise ValueError("say what started the run: trigger='cli', 'nightly', 'upload', ...")
        values = {
            "run_id": run_id,
            "started_at": _now(),
            "finished_at": None,
            "profile": profile,
            "csv": csv,
            "trigger": trigger,
            "counts": "{}",
            "status": "running",
        }
        statement = self._insert(runs).values(values)
        statement = statement.on_conflict_do_update(
            index_elements=[runs.c.run_id],
            set_={name: statement.excluded[name] for name in values if name != "run_id"},
        )
        self._write(lambda connection: connection.execute(statement))

    def record_run_finished(
        self, run_id: str, *, counts: Mapping[str, int], status: RunStatus = "completed"
    ) -> None:
        """Record how a run ended, and release every job claim it still holds."""
        if status not in RUN_STATUSES or status == "running":
            raise ValueError(f"a finished run's status is completed, failed or crashed; got {status!r}")
        encoded = json.dumps({str(key): int(value) for key, value in counts.items()}, sort_keys=True)

        def work(connection: Connection) -> None:
            result = connection.execute(
                update(runs)
                .where(runs.c.run_id == run_id)
                .values(finished_at=_now(), counts=encoded, status=status)
            )
            if result.rowcount != 1:
                raise KeyError(f"run {run_id!r} was never recorded as started (record_run_started)")
            connection.execute(delete(claims).where(claims.c.run_id == run_id))

        self._write(work)

    def get_run(self, run_id: str) -> RunState | None:
        with self._read() as connection:
            row = connection.execute(select(runs).where(runs.c.run_id == run_id)).first()
        return _run_from_row(row) if row is not None else None

    def list_runs(self) -> list[RunState]:
        """Every recorded run, oldest first."""
        query = select(runs).order_by(runs.c.started_at, runs.c.run_id)
        with self._read() as connection:
            return [_run_from_row(row) for row in connection.execute(query)]

    # Products -----------------------------------------------------------------------------------------------

    def record_product(
        self,
        product_key: str,
        *,
        run_id: str,
        image_hash: str,
        source_identity: Mapping[str, Any],
        render_fields: Mapping[str, Any] | None = None,
    ) -> None:
        """Record a product's photo as this run saw it (hash and source identity); a retired one returns."""
        sighting = ProductSighting(product_key, image_hash, source_identity, render_fields or {})
        self.record_products([sighting], run_id)

    def record_products(self, sightings: Sequence[ProductSighting], run_id: str) -> int:
        """Record products as this run saw them (photo hash, source identity, render fields); retired ones
        return. One statement per 1000 products (the driver's executemany); how many were recorded."""
        if not run_id:
            raise ValueError("recording products needs the run's id")
        now = _now()
        rows = [
            {
                "product_key": sighting.product_key,
                "source_identity": _json_object(sighting.source_identity, "source_identity"),
                "image_hash": sighting.image_hash,
                "first_seen_run": run_id,
                "last_seen_run": run_id,
                "first_seen_at": now,
                "last_seen_at": now,
                "render_fields": _json_object(sighting.render_fields, "render_fields"),
            }
            # One row per product (the last sighting wins): PostgreSQL refuses to upsert a row twice at once.
            for sighting in {sighting.product_key: sighting for sighting in sightings}.values()
        ]
        statement = self._insert(products)
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[products.c.product_key],
            set_={
                "source_identity": new.source_identity,
                "image_hash": new.image_hash,
                "last_seen_run": new.last_seen_run,
                "last_seen_at": new.last_seen_at,
                "render_fields": new.render_fields,
                "retired_at": None,
                "retired_run": None,
            },
        )
        self._write_many(statement, rows)
        return len(rows)

    def mark_seen(self, product_keys: Sequence[str], run_id: str) -> None:
        """Record that this run's catalogue lists these products (new ones get a row); retired ones return."""
        keys = _unique(product_keys, "product_keys")
        now = _now()

        if not keys:
            return
        statement = self._insert(products)
        new = statement.excluded
        statement = statement.on_conflict_do_update(
            index_elements=[products.c.product_key],
            set_={
                "last_seen_run": new.last_seen_run,
                "last_seen_at": new.last_seen_at,
                "retired_at": None,
                "retired_run": None,
            },
        )
        rows = [
            {
                "product_key": key,
                "first_seen_run": run_id,
                "last_seen_run": run_id,
                "first_seen_at": now,
                "last_seen_at": now,
            }
            for key in keys
        ]
        # One statement, many parameter sets: the driver's executemany (no SQL compiled per chunk).
        self._write_many(statement, rows)

    def _write_many(self, statement: Any, rows: Sequence[dict[str, Any]]) -> None:
        """One statement with many parameter sets (the driver's executemany), a transaction per 1000 rows."""
        for part in _chunks(rows, _PRODUCTS_PER_STATEMENT):

            def work(connection: Connection, part: Sequence[dict[str, Any]] = part) -> None:
                connection.execute(statement, list(part))

            self._write(work)

    def get_products(self, product_keys: Sequence[str] | None = None) -> dict[str, ProductState]:
        """Products by key: these (absent when never seen), or all of them."""
        query = select(products).order_by(products.c.product_key)
        if product_keys is not None:
            wanted = list(dict.fromkeys(_strings(product_keys, "product_keys")))
            if not wanted:
                return {}
            query = query.where(self._among(products.c.product_key, wanted))
        with self._read() as connection:
            rows = connection.execute(query).all()
        return {row.product_key: _product_from_row(row) for row in rows}

    def retire_missing(self, present_keys: Iterable[str], run_id: str) -> list[str]:
        """Retire the products a full catalogue no longer lists; their keys, sorted. Their files stay.

        Call it only from a run over the whole catalogue (a nightly run), never from an upload of some rows.
        A product that another run recorded after this run started (a full run alongside) is not retired.
        """
        present = set(_strings(present_keys, "present_keys"))

        def work(connection: Connection) -> list[str]:
            started = connection.execute(select(runs.c.started_at).where(runs.c.run_id == run_id)).scalar()
            cutoff = started or _now()
            listed = connection.execute(
                select(products.c.product_key).where(
                    products.c.retired_at.is_(None), products.c.last_seen_at < cutoff
                )
            ).scalars()
            missing = sorted(set(listed) - present)
            if missing:
                connection.execute(
                    update(products)
                    .where(self._among(products.c.product_key, missing), products.c.retired_at.is_(None))
                    .values(retired_at=_now(), retired_run=run_id)
                )
            return missing

        return self._write(work)

    # Review decisions ---------------------------------------------------------------------------------------

    def record_decision(
        self,
        job_id: str,
        decision: Decision,
        *,
        reviewer: str,
        reason: str = "",
        comment: str = "",
        image_key: str = "",
    ) -> ReviewDecision:
        """Add a reviewer's decision on a job's image; it replaces the job's current one, the history keeps all."""
        if decision not in DECISIONS:
            raise ValueError(f"a review decision is 'approve', 'reject' or 'clear'; got {decision!r}")
        if not reviewer or not reviewer.strip():
            raise ValueError("a review decision needs the reviewer's name (reviewer='...')")
        if decision == "reject" and not reason.strip():
            raise ValueError("a rejection needs a reason, so whoever fixes the image knows what is wrong")
        if image_key:
            _check_key(image_key)
        values = {
            "job_id": job_id,
            "image_key": image_key,
            "decision": decision,
            "reason": reason,
            "comment": comment,
            "reviewer": reviewer,
            "decided_at": _now(),
        }

        def work(connection: Connection) -> int:
            result = connection.execute(
                self._insert(review_decisions).values(values).returning(review_decisions.c.decision_id)
            )
            return int(result.scalar_one())

        decision_id = self._write(work)
        return ReviewDecision(decision_id=decision_id, **values)  # type: ignore[arg-type]

    def decisions(self, job_ids: Sequence[str] | None = None) -> dict[str, ReviewDecision]:
        """The decision in force (the latest recorded) per job: of these jobs, or of every reviewed job."""
        latest = select(func.max(review_decisions.c.decision_id)).group_by(review_decisions.c.job_id)
        with self._read() as connection:
            if job_ids is None:
                query = select(review_decisions).where(
                    review_decisions.c.decision_id.in_(latest.scalar_subquery())
                )
                return {row.job_id: _decision_from_row(row) for row in connection.execute(query)}
            wanted = list(dict.fromkeys(_strings(job_ids, "job_ids")))
            if not wanted:
                return {}
            of_these = latest.where(self._among(review_decisions.c.job_id, wanted)).scalar_subquery()
            query = select(review_decisions).where(review_decisions.c.decision_id.in_(of_these))
            return {row.job_id: _decision_from_row(row) for row in connection.execute(query)}

    def history(self, job_id: str) -> list[ReviewDecision]:
        """Every decision on a job, oldest first; the last one is in force."""
        query = (
            select(review_decisions)
            .where(review_decisions.c.job_id == job_id)
            .order_by(review_decisions.c.decision_id)
        )
        with self._read() as connection:
            return [_decision_from_row(row) for row in connection.execute(query)]

    def decisions_after(self, decision_id: int, limit: int = 100_000) -> list[ReviewDecision]:
        """Decisions recorded after this one (by id, oldest first): lets a reader keep its view current cheaply."""
        query = (
            select(review_decisions)
            .where(review_decisions.c.decision_id > int(decision_id))
            .order_by(review_decisions.c.decision_id)
            .limit(limit)
        )
        with self._read() as connection:
            return [_decision_from_row(row) for row in connection.execute(query)]

    def latest_decision_id(self) -> int:
        """The id of the latest recorded decision (0 when none): decisions after it are new to a reader."""
        with self._read() as connection:
            return int(connection.execute(select(func.max(review_decisions.c.decision_id))).scalar() or 0)

    def decided_since(self, decision_id: int) -> dict[str, int]:
        """The jobs with a decision recorded after this one, each with its latest decision id."""
        query = (
            select(review_decisions.c.job_id, func.max(review_decisions.c.decision_id))
            .where(review_decisions.c.decision_id > int(decision_id))
            .group_by(review_decisions.c.job_id)
        )
        with self._read() as connection:
            return {job_id: int(latest) for job_id, latest in connection.execute(query)}

    def counts_by_decision(self) -> dict[str, int]:
        """Reviewed jobs per decision in force (approve, reject); a cleared verdict counts as none."""
        current = self.decisions()
        counts: dict[str, int] = {"approve": 0, "reject": 0}
        for decision in current.values():
            if decision.decision in counts:
                counts[decision.decision] += 1
        return counts

    # Completed products ---------------------------------------------------------------------------------------

    def job_stamps(self, skus: Sequence[str]) -> dict[str, str]:
        """Per product with recorded jobs: "count|sum(row_version)" of its job rows. Every write to a job adds
        one to its row_version, so any write (produced, failed, re-queued, a new job) changes its product's
        stamp; products without jobs are absent. One query (the (sku, row_version) index) for all of them."""
        wanted = list(dict.fromkeys(_strings(skus, "skus")))
        if not wanted:
            return {}
        query = (
            select(jobs.c.sku, func.count(), func.sum(jobs.c.row_version))
            .where(self._among(jobs.c.sku, wanted))
            .group_by(jobs.c.sku)
        )
        with self._read() as connection:
            rows = connection.execute(query).all()  # fetched at once, not row by row
        return {sku: f"{count}|{int(total or 0)}" for sku, count, total in rows}

    def get_completed(self, product_keys: Sequence[str]) -> dict[str, CompletedProduct]:
        """The completed-product records of these products (absent when none was recorded)."""
        wanted = list(dict.fromkeys(_strings(product_keys, "product_keys")))
        if not wanted:
            return {}
        table = completed_products
        query = select(table).where(self._among(table.c.product_key, wanted))
        with self._read() as connection:
            rows = connection.execute(query).all()
        # The table's columns are the tuple's fields, in order.
        return {row[0]: CompletedProduct._make(row) for row in rows}

    def record_completed(self, completed: Sequence[CompletedProduct], run_id: str) -> None:
        """Record (or replace) these products' completed records, a transaction per 1000."""
        if not completed:
            return
        now = _now()
        rows = [
            {
                "product_key": item.product_key,
                "image_hash": item.image_hash,
                "config_fingerprint": item.config_fingerprint,
                "jobs_stamp": item.jobs_stamp,
                "decision_stamp": int(item.decision_stamp),
                "plan_key": item.plan_key,
                "presets": item.presets,
                "file_stamps": item.file_stamps,
                "jobs": item.jobs,
                "cutout_flags": item.cutout_flags,
                "recorded_at": now,
                "run_id": run_id,
            }
            # One row per product (the last wins): PostgreSQL refuses to upsert a row twice at once.
            for item in {item.product_key: item for item in completed}.values()
        ]
        statement = self._insert(completed_products)
        statement = statement.on_conflict_do_update(
            index_elements=[completed_products.c.product_key],
            set_={name: statement.excluded[name] for name in rows[0] if name != "product_key"},
        )
        self._write_many(statement, rows)

    # Claims -------------------------------------------------------------------------------------------------

    def claim(
        self,
        job_ids: Sequence[str],
        run_id: str,
        lease_seconds: float,
        owner: ClaimOwner | None = None,
    ) -> set[str]:
        """Claim jobs for this run; the ones it now holds (another live run's are left out).

        A job is claimed when nobody holds it, when its lease has expired, when its holder is a process on this
        host that is no longer running (a run killed with -9: void at once), or when this run holds it already
        (claiming again renews the lease). owner: the claiming process (default: this one). Each chunk is one
        atomic upsert, so two runs racing for one job, in one process or on two hosts, never both get it.
        Claim, then re-read the claimed jobs' states: one produced by another run since you planned is current
        by then.
        """
        if not run_id:
            raise ValueError("a claim needs the claiming run's id")
        if lease_seconds < 0:
            raise ValueError(f"lease_seconds must be >= 0; got {lease_seconds}")
        wanted = _unique(job_ids, "job_ids")
        holder = owner or ClaimOwner.current()
        claimed: set[str] = set()
        for chunk in _chunks(wanted, self._rows_per_statement(7)):

            def work(connection: Connection, chunk: Sequence[str] = chunk) -> set[str]:
                got = self._claim_chunk(connection, chunk, run_id, lease_seconds, holder)
                voided = self._void_dead_holders(connection, [job for job in chunk if job not in got], holder)
                if voided:  # the jobs of holders that died on this host: claim them now
                    got |= self._claim_chunk(connection, voided, run_id, lease_seconds, holder)
                return got

            claimed |= self._write(work)
        return claimed

    def _claim_chunk(
        self,
        connection: Connection,
        job_ids: Sequence[str],
        run_id: str,
        lease_seconds: float,
        owner: ClaimOwner,
    ) -> set[str]:
        """INSERT ... ON CONFLICT DO UPDATE ... WHERE the holder's lease ran out or is ours ... RETURNING."""
        # The database's clock, read in this transaction: under SQLite's write lock nobody claims in between; on
        # PostgreSQL the upsert below re-checks each conflicting row under its row lock.
        now = connection.execute(select(self._db_now())).scalar_one()
        claimed_at = _now()
        rows = [
            {
                "job_id": job_id,
                "run_id": run_id,
                "claimed_at": claimed_at,
                "expires_at": now + lease_seconds,
                "owner_host": owner.host,
                "owner_pid": owner.pid,
                "owner_started": owner.started,
            }
            for job_id in job_ids
        ]
        statement = self._insert(claims).values(rows)
        new = statement.excluded
        taken = ("run_id", "claimed_at", "expires_at", "owner_host", "owner_pid", "owner_started")
        statement = statement.on_conflict_do_update(
            index_elements=[claims.c.job_id],
            set_={name: new[name] for name in taken},
            where=(claims.c.expires_at <= now) | (claims.c.run_id == new.run_id),
        ).returning(claims.c.job_id)
        return set(connection.execute(statement).scalars())

    def _void_dead_holders(
        self, connection: Connection, job_ids: Sequence[str], claimant: ClaimOwner
    ) -> list[str]:
        """Delete the claims on these jobs whose holder is a dead process on the claimant's host; those jobs.

        Each delete names the dead holder (host, pid, start token), so on PostgreSQL a claim another run took
        over meanwhile is left alone.
        """
        if not job_ids:
            return []
        rows = connection.execute(
            select(claims.c.job_id, claims.c.owner_pid, claims.c.owner_started).where(
                self._among(claims.c.job_id, job_ids),
                claims.c.owner_host == claimant.host,
                claims.c.owner_pid > 0,
            )
        ).all()
        by_owner: dict[ClaimOwner, list[str]] = {}
        for job_id, pid, started in rows:
            by_owner.setdefault(ClaimOwner(claimant.host, int(pid), started), []).append(job_id)
        voided: list[str] = []
        for holder, held in by_owner.items():
            if holder == claimant or claim_owners.is_alive(holder):
                continue
            result = connection.execute(
                delete(claims).where(
                    self._among(claims.c.job_id, held),
                    claims.c.owner_host == holder.host,
                    claims.c.owner_pid == holder.pid,
                    claims.c.owner_started == holder.started,
                )
            )
            if result.rowcount:
                voided.extend(held)
        return sorted(voided)

    def renew(self, run_id: str, lease_seconds: float, owner: ClaimOwner | None = None) -> int:
        """Extend the lease of every claim this process holds for the run (one statement); how many."""
        if lease_seconds < 0:
            raise ValueError(f"lease_seconds must be >= 0; got {lease_seconds}")
        holder = owner or ClaimOwner.current()
        statement = (
            update(claims)
            .where(
                claims.c.run_id == run_id,
                claims.c.owner_host == holder.host,
                claims.c.owner_pid == holder.pid,
            )
            .values(expires_at=self._db_now() + lease_seconds)
        )
        return self._write(lambda connection: int(connection.execute(statement).rowcount))

    def release(self, job_ids: Sequence[str], run_id: str) -> int:
        """Give back this run's claims on these jobs (others' claims are untouched); how many were released."""
        wanted = _unique(job_ids, "job_ids")

        if not wanted:
            return 0
        statement = delete(claims).where(claims.c.run_id == run_id, self._among(claims.c.job_id, wanted))
        return self._write(lambda connection: int(connection.execute(statement).rowcount))

    def claims_of(self, run_id: str) -> set[str]:
        """The jobs this run holds a claim on (expired leases included until someone takes them over)."""
        with self._read() as connection:
            return set(connection.execute(select(claims.c.job_id).where(claims.c.run_id == run_id)).scalars())

    def claim_holders(self, job_ids: Sequence[str]) -> dict[str, str]:
        """The run holding each of these jobs' claims (expired ones included), by job id; unclaimed are absent."""
        wanted = list(dict.fromkeys(_strings(job_ids, "job_ids")))
        if not wanted:
            return {}
        query = select(claims.c.job_id, claims.c.run_id).where(self._among(claims.c.job_id, wanted))
        with self._read() as connection:
            return {job_id: run_id for job_id, run_id in connection.execute(query)}

    # Closing ------------------------------------------------------------------------------------------------

    def close(self) -> None:
        """Close every pooled connection; the store must not be used afterwards."""
        self._engine.dispose()

    def __enter__(self) -> SQLJobStore:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.location!r})"


class SQLiteJobStore(SQLJobStore):
    """The store in one SQLite file (the name callers used before PostgreSQL): `SQLiteJobStore(path)`."""

    def __init__(self, path: Path | str) -> None:
        super().__init__(Path(path))


def open_job_store(url_or_path: str | Path) -> SQLJobStore:
    """Open (creating or migrating) the store: a SQLite file path, sqlite:///path, or a PostgreSQL URL."""
    return SQLJobStore(url_or_path)


def choose_state_url(default_path: str | Path, configured: str | None = None) -> str:
    """Where the state lives: the configured URL (a profile's run.state_url), else $ONMODEL_STATE_URL, else
    the default SQLite file (the output root's state.sqlite)."""
    chosen = configured or os.environ.get(STATE_URL_ENV, "")
    return state_url(chosen or Path(default_path))
