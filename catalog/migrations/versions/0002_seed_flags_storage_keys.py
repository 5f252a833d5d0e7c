"""Version 2: seed and flags per job, output paths as storage keys, and the schema_version table.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from pathlib import Path, PurePath

import sqlalchemy as sa
from alembic import context, op

revision = "0002"
down_revision: str | None = "0001"
branch_labels = None
depends_on = None


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


def _output_roots() -> list[PurePath]:
    """The folders a version-1 SQLite file's absolute output paths are relative to (none for a server)."""
    sqlite_path = context.config.attributes.get("sqlite_path")
    if not sqlite_path:
        return []
    # The v1 paths were written as given, so match both the lexical and the symlink-resolved folder.
    folder = Path(sqlite_path).absolute().parent
    return list(dict.fromkeys([PurePath(os.path.normpath(folder)), PurePath(folder.resolve())]))


def upgrade() -> None:
    """Add seed and flags, turn absolute output paths under the store's folder into keys, track the version."""
    op.add_column("jobs", sa.Column("seed", sa.BigInteger))
    op.add_column("jobs", sa.Column("flags", sa.Text, nullable=False, server_default="[]"))
    connection = op.get_bind()
    roots = _output_roots()
    if roots:
        rows = connection.execute(sa.text("SELECT job_id, outputs FROM jobs")).all()
        for job_id, outputs in rows:
            keys = [_output_key(output, roots) for output in json.loads(outputs)]
            connection.execute(
                sa.text("UPDATE jobs SET outputs = :outputs WHERE job_id = :job_id"),
                {"outputs": json.dumps(keys), "job_id": job_id},
            )
    op.create_table("schema_version", sa.Column("version", sa.Integer, nullable=False))
    op.execute("INSERT INTO schema_version (version) VALUES (2)")


def downgrade() -> None:
    op.drop_table("schema_version")
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns by copying the table
        batch.drop_column("flags")
        batch.drop_column("seed")
