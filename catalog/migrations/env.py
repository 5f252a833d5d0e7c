"""Alembic's environment: migrate the connection catalog.state_migrate opened, inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

connection = context.config.attributes.get("connection")
if not isinstance(connection, Connection):
    raise RuntimeError(
        "catalog/migrations runs only through catalog.state_migrate (open_job_store), which passes the "
        "open connection; there is no alembic.ini to run it from the command line."
    )
context.configure(connection=connection, target_metadata=None)
# The caller holds the write lock in an open transaction, so this adds no transaction of its own.
with context.begin_transaction():
    context.run_migrations()
