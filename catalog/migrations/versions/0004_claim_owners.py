"""Version 4: a job claim names the process that holds it (host, pid, start token); products keep their
render fields.

Revision ID: 0004
Revises: 0003

A claim whose holder on this host is dead is void at once (a run killed with -9 does not block the rerun for a
lease's length); claims recorded before this version name no owner and end with their lease, as before.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision: str | None = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("claims", sa.Column("owner_host", sa.Text, nullable=False, server_default=""))
    op.add_column("claims", sa.Column("owner_pid", sa.Integer, nullable=False, server_default="0"))
    op.add_column("claims", sa.Column("owner_started", sa.Text, nullable=False, server_default=""))
    op.create_index("ix_claims_owner", "claims", ["owner_host", "owner_pid"])
    # The product fields that affect rendering, as the last full catalogue run saw them (JSON object).
    op.add_column("products", sa.Column("render_fields", sa.Text, nullable=False, server_default="{}"))
    op.execute("UPDATE schema_version SET version = 4")


def downgrade() -> None:
    with op.batch_alter_table("products") as batch:
        batch.drop_column("render_fields")
    op.drop_index("ix_claims_owner", "claims")
    with op.batch_alter_table("claims") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("owner_started")
        batch.drop_column("owner_pid")
        batch.drop_column("owner_host")
    op.execute("UPDATE schema_version SET version = 3")
