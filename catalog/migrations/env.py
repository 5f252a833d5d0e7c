"""Alembic's environment: migrate the connection catalog.state_migrate opened, inside its transaction."""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection


def run_migrations() -> None:
    """Run the pending migrations on the caller's connection (which holds the write lock)."""
    connection = context.config.attributes.get("connection")
    if not isinstance(connection, Connection):
        raise RuntimeError(
            "catalog/migrations runs only through catalog.state_migrate (open_job_store), which passes the "
            "open connection; there is no alembic.ini to run it from the command line."
        )
    context.configure(connection=connection, target_metadata=None)
    # The caller's transaction is open already, so this adds no transaction of its own.
    with context.begin_transaction():
        context.run_migrations()


# Alembic gives `context` its configuration while it runs this file; a plain import (an import check) does
# nothing.
if hasattr(context, "config"):
    run_migrations()
