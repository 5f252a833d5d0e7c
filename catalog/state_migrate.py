"""Bring a state database to the current schema with the Alembic migrations in catalog/migrations.

Three kinds of database arrive here: an empty one (migrated from the start), a file from the releases before
Alembic (version 1: a jobs table only; version 2: plus a schema_version table), stamped with their revision and
migrated from there, and one already under Alembic. A database from a newer onmodel (a higher schema_version,
or an Alembic revision this code does not know) raises StateStoreVersionError before anything is written.
"""

from __future__ import annotations

import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect, text
from sqlalchemy.engine import Connection

SCHEMA_VERSION = 5
MIGRATIONS = Path(__file__).with_name("migrations")


class StateStoreVersionError(ValueError):
    """The state store was written by a newer onmodel, with a schema this code cannot read."""

    def __init__(self, path: Path | str, found: int | str) -> None:
        self.path = path
        self.found = found
        super().__init__(
            f"{path} has state schema version {found}, but this onmodel reads schema version "
            f"{SCHEMA_VERSION} at most; upgrade onmodel to use this state store (it was left unchanged)"
        )


class StateStoreLayoutError(ValueError):
    """The database holds tables that no onmodel release wrote."""


_ALEMBIC_LOCK = threading.Lock()


def revision_for(version: int) -> str:
    """The Alembic revision id of a schema version: 3 -> '0003'."""
    return f"{version:04d}"


def _alembic_config(connection: Connection, sqlite_path: Path | None) -> Config:
    """An Alembic configuration in code: the shipped migrations, this connection, no alembic.ini."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["connection"] = connection
    config.attributes["sqlite_path"] = str(sqlite_path) if sqlite_path else ""
    return config


def _script() -> ScriptDirectory:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return ScriptDirectory.from_config(config)


def stored_version(connection: Connection, location: Path | str) -> tuple[int, str | None]:
    """The schema version and Alembic revision of the database, reading only (0 and None when empty).

    Raises StateStoreVersionError for a newer schema and StateStoreLayoutError for tables onmodel never wrote.
    """
    tables = set(inspect(connection).get_table_names())
    revision = MigrationContext.configure(connection).get_current_revision()
    if "schema_version" in tables:
        row = connection.execute(text("SELECT version FROM schema_version")).first()
        if row is None:
            # onmodel creates the table and writes its row in one transaction.
            raise StateStoreLayoutError(
                f"{location}: the schema_version table is empty; this database was not written by onmodel"
            )
        version = int(row[0])
    else:
        version = 1 if "jobs" in tables else 0
    if version > SCHEMA_VERSION:
        raise StateStoreVersionError(location, version)
    if revision is not None:
        known = {script.revision for script in _script().walk_revisions()}
        if revision not in known:
            raise StateStoreVersionError(location, int(revision) if revision.isdigit() else revision)
    elif version == 0 and tables - {"alembic_version"}:
        raise StateStoreLayoutError(
            f"{location} holds tables ({', '.join(sorted(tables))}) but no onmodel job store; give onmodel "
            "its own database or file"
        )
    return version, revision


def needs_upgrade(version: int, revision: str | None) -> bool:
    """Whether the database is behind the head revision."""
    return version != SCHEMA_VERSION or revision != revision_for(SCHEMA_VERSION)


def upgrade(connection: Connection, location: Path | str, sqlite_path: Path | None) -> None:
    """Migrate to the head inside the caller's write transaction (which holds the database's write lock).

    The version is read again here, under the lock: another process may have migrated in the meantime.
    """
    version, revision = stored_version(connection, location)
    if not needs_upgrade(version, revision):
        return
    config = _alembic_config(connection, sqlite_path)
    # Alembic keeps the running migration in module globals (alembic.context), so two threads migrating two
    # stores at once would trample each other: one migration at a time per process.
    with _ALEMBIC_LOCK:
        if revision is None and version > 0:
            # A file from before Alembic: record which release's layout it has, then migrate from there.
            command.stamp(config, revision_for(version))
        command.upgrade(config, "head")
