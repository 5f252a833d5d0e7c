"""Version 5: a job row counts its writes (row_version); completed products remember their last full skip.

Revision ID: 0005
Revises: 0004

A nightly run over a catalogue where little changed decided every job of every product from its row; now a
product whose every job was found done keeps one `completed_products` row, which the next plan checks against
the product's job rows (count and sum of row_version: any write to any of its jobs changes it, whatever the
clocks of the hosts that wrote), the review decisions since, its photo hash, config and the stamps of its
output folders, and trusts whole when nothing moved. Rows written before this version count 0 writes.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision: str | None = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("jobs", sa.Column("row_version", sa.BigInteger, nullable=False, server_default="0"))
    # The planner's per-product stamp reads only this index (sku, row_version), never the rows.
    op.create_index("ix_jobs_sku_row_version", "jobs", ["sku", "row_version"])
    op.drop_index("ix_jobs_sku", "jobs")
    op.create_table(
        "completed_products",
        sa.Column("product_key", sa.Text, nullable=False),
        sa.Column("image_hash", sa.Text, nullable=False),
        sa.Column("config_fingerprint", sa.Text, nullable=False),
        sa.Column("jobs_stamp", sa.Text, nullable=False),  # "count|sum(row_version)" of the product's jobs
        sa.Column("decision_stamp", sa.BigInteger, nullable=False),  # the latest decision id when recorded
        # What the plan rested on and decided, in the planner's own text forms (compared as strings, no
        # decoding per product): the plan (fields, poses, variants), the output presets, the file stamps, the
        # jobs (JSON, decoded only when their outcomes are asked for) and the cutout's flags (JSON).
        sa.Column("plan_key", sa.Text, nullable=False),
        sa.Column("presets", sa.Text, nullable=False),
        sa.Column("file_stamps", sa.Text, nullable=False),
        sa.Column("jobs", sa.Text, nullable=False),
        sa.Column("cutout_flags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("recorded_at", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("product_key", name="pk_completed_products"),
    )
    op.execute("UPDATE schema_version SET version = 5")


def downgrade() -> None:
    op.drop_table("completed_products")
    op.create_index("ix_jobs_sku", "jobs", ["sku"])
    op.drop_index("ix_jobs_sku_row_version", "jobs")
    with op.batch_alter_table("jobs") as batch:  # SQLite drops columns by rebuilding the table
        batch.drop_column("row_version")
    op.execute("UPDATE schema_version SET version = 4")
