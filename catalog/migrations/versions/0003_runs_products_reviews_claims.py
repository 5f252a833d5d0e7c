"""Version 3: per-job attempts, errors, runs and render inputs; products, runs, review decisions, job claims.

Revision ID: 0003
Revises: 0002

jobs is rebuilt rather than altered: its status check gains 'queued', and SQLite cannot change a CHECK
constraint in place. Rows are copied with attempts = 1 (each had at least one recorded attempt) and a failed
row's reason as its last error.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision: str | None = "0002"
branch_labels = None
depends_on = None

_COPIED = "job_id, sku, image_hash, config_fingerprint, status, outputs, reason, updated_at, seed, flags"


def upgrade() -> None:
    """Rebuild jobs with the new columns, then add products, runs, review_decisions and claims."""
    # 1. jobs, rebuilt under a new name, filled, then renamed.
    op.create_table(
        "jobs_v3",
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("image_hash", sa.Text, nullable=False),
        sa.Column("config_fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("seed", sa.BigInteger),
        sa.Column("flags", sa.Text, nullable=False, server_default="[]"),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("last_error", sa.Text, nullable=False, server_default=""),
        sa.Column("last_run_id", sa.Text),
        sa.Column("first_produced_run", sa.Text),
        sa.Column("render_fields", sa.Text, nullable=False, server_default="{}"),
        sa.Column("render_fingerprint", sa.Text, nullable=False, server_default=""),
        sa.PrimaryKeyConstraint("job_id", name="pk_jobs"),
        sa.CheckConstraint("status IN ('produced', 'failed', 'queued')", name="ck_jobs_status"),
    )
    op.execute(
        f"INSERT INTO jobs_v3 ({_COPIED}, attempts, last_error) "
        f"SELECT {_COPIED}, 1, CASE WHEN status = 'failed' THEN reason ELSE '' END FROM jobs"
    )
    op.drop_table("jobs")
    op.rename_table("jobs_v3", "jobs")
    op.create_index("ix_jobs_status", "jobs", ["status"])
    op.create_index("ix_jobs_last_run_id", "jobs", ["last_run_id"])
    op.create_index("ix_jobs_sku", "jobs", ["sku"])
    # 2. Products seen in catalogue runs, and retired when a full catalogue no longer lists them.
    op.create_table(
        "products",
        sa.Column("product_key", sa.Text, nullable=False),
        sa.Column("source_identity", sa.Text, nullable=False, server_default="{}"),
        sa.Column("image_hash", sa.Text, nullable=False, server_default=""),
        sa.Column("first_seen_run", sa.Text, nullable=False),
        sa.Column("last_seen_run", sa.Text, nullable=False),
        sa.Column("first_seen_at", sa.Text, nullable=False),
        sa.Column("last_seen_at", sa.Text, nullable=False),
        sa.Column("retired_at", sa.Text),
        sa.Column("retired_run", sa.Text),
        sa.PrimaryKeyConstraint("product_key", name="pk_products"),
    )
    op.create_index("ix_products_retired_at", "products", ["retired_at"])
    # 3. Runs: who started them, over what, and their counts.
    op.create_table(
        "runs",
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("started_at", sa.Text, nullable=False),
        sa.Column("finished_at", sa.Text),
        sa.Column("profile", sa.Text, nullable=False),
        sa.Column("csv", sa.Text, nullable=False),
        sa.Column("trigger", sa.Text, nullable=False),
        sa.Column("counts", sa.Text, nullable=False, server_default="{}"),
        sa.Column("status", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("run_id", name="pk_runs"),
        sa.CheckConstraint("status IN ('running', 'completed', 'failed', 'crashed')", name="ck_runs_status"),
    )
    # 4. Review decisions: every one kept, the latest per job wins.
    op.create_table(
        "review_decisions",
        sa.Column("decision_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("image_key", sa.Text, nullable=False, server_default=""),
        sa.Column("decision", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False, server_default=""),
        sa.Column("comment", sa.Text, nullable=False, server_default=""),
        sa.Column("reviewer", sa.Text, nullable=False),
        sa.Column("decided_at", sa.Text, nullable=False),
        sa.CheckConstraint("decision IN ('approve', 'reject', 'clear')", name="ck_review_decisions_decision"),
    )
    op.create_index("ix_review_decisions_job_id", "review_decisions", ["job_id", "decision_id"])
    # 5. Job claims: which run renders a job now, until its lease expires.
    op.create_table(
        "claims",
        sa.Column("job_id", sa.Text, nullable=False),
        sa.Column("run_id", sa.Text, nullable=False),
        sa.Column("claimed_at", sa.Text, nullable=False),
        sa.Column("expires_at", sa.Float, nullable=False),
        sa.PrimaryKeyConstraint("job_id", name="pk_claims"),
    )
    op.create_index("ix_claims_run_id", "claims", ["run_id"])
    op.execute("UPDATE schema_version SET version = 3")


def downgrade() -> None:
    op.drop_table("claims")
    op.drop_table("review_decisions")
    op.drop_table("runs")
    op.drop_table("products")
    op.create_table(
        "jobs_v2",
        sa.Column("job_id", sa.Text, primary_key=True),
        sa.Column("sku", sa.Text, nullable=False),
        sa.Column("image_hash", sa.Text, nullable=False),
        sa.Column("config_fingerprint", sa.Text, nullable=False),
        sa.Column("status", sa.Text, nullable=False),
        sa.Column("outputs", sa.Text, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("updated_at", sa.Text, nullable=False),
        sa.Column("seed", sa.BigInteger),
        sa.Column("flags", sa.Text, nullable=False, server_default="[]"),
        sa.CheckConstraint("status IN ('produced', 'failed')"),
    )
    # A queued job was a failed one an operator asked to retry; version 2 retries failed jobs anyway.
    op.execute(
        f"INSERT INTO jobs_v2 ({_COPIED}) SELECT job_id, sku, image_hash, config_fingerprint, "
        "CASE WHEN status = 'queued' THEN 'failed' ELSE status END, outputs, reason, updated_at, seed, flags "
        "FROM jobs"
    )
    op.drop_table("jobs")
    op.rename_table("jobs_v2", "jobs")
    op.execute("UPDATE schema_version SET version = 2")
