"""The state store's tables at the current schema version, as SQLAlchemy Core objects the queries use.

The migrations in catalog/migrations/versions create these tables step by step and never import this file
(a migration must keep doing what it did when it was written); tests/catalog/test_state_migrations.py checks
that a database migrated to the head has exactly these columns.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Column,
    Float,
    Index,
    Integer,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
)

metadata = MetaData()

# Timestamps are ISO 8601 strings in UTC, with microseconds ("2025-01-01T00:00:00.000000+00:00"; version-1
# rows have milliseconds, which still sort correctly against them as text). Lease expiries are
# seconds since the epoch on the database's clock, compared in SQL (hosts' clocks may disagree).

jobs = Table(
    "jobs",
    metadata,
    Column("job_id", Text, nullable=False),
    Column("sku", Text, nullable=False),
    Column("image_hash", Text, nullable=False),
    Column("config_fingerprint", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("outputs", Text, nullable=False),  # JSON list of storage keys relative to the output root
    Column("reason", Text, nullable=False),  # why the job is in its status ("" when produced)
    Column("updated_at", Text, nullable=False),
    Column("seed", BigInteger),
    Column("flags", Text, nullable=False, server_default="[]"),  # JSON list
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("last_error", Text, nullable=False, server_default=""),  # kept after a later success
    Column("last_run_id", Text),
    Column("first_produced_run", Text),
    Column("render_fields", Text, nullable=False, server_default="{}"),  # JSON object
    Column("render_fingerprint", Text, nullable=False, server_default=""),
    # Writes to the row, ever (every write adds one): a product's jobs stamp, free of any host's clock.
    Column("row_version", BigInteger, nullable=False, server_default="0"),
    PrimaryKeyConstraint("job_id", name="pk_jobs"),
    CheckConstraint("status IN ('produced', 'failed', 'queued')", name="ck_jobs_status"),
)
Index("ix_jobs_status", jobs.c.status)
Index("ix_jobs_last_run_id", jobs.c.last_run_id)
Index("ix_jobs_sku_row_version", jobs.c.sku, jobs.c.row_version)

products = Table(
    "products",
    metadata,
    Column("product_key", Text, nullable=False),
    Column("source_identity", Text, nullable=False, server_default="{}"),  # JSON object
    Column("image_hash", Text, nullable=False, server_default=""),
    Column("first_seen_run", Text, nullable=False),
    Column("last_seen_run", Text, nullable=False),
    Column("first_seen_at", Text, nullable=False),
    Column("last_seen_at", Text, nullable=False),
    Column("retired_at", Text),
    Column("retired_run", Text),
    Column("render_fields", Text, nullable=False, server_default="{}"),  # JSON object
    PrimaryKeyConstraint("product_key", name="pk_products"),
)
Index("ix_products_retired_at", products.c.retired_at)

runs = Table(
    "runs",
    metadata,
    Column("run_id", Text, nullable=False),
    Column("started_at", Text, nullable=False),
    Column("finished_at", Text),
    Column("profile", Text, nullable=False),
    Column("csv", Text, nullable=False),
    Column("trigger", Text, nullable=False),
    Column("counts", Text, nullable=False, server_default="{}"),  # JSON object
    Column("status", Text, nullable=False),
    PrimaryKeyConstraint("run_id", name="pk_runs"),
    CheckConstraint("status IN ('running', 'completed', 'failed', 'crashed')", name="ck_runs_status"),
)

review_decisions = Table(
    "review_decisions",
    metadata,
    # Integer, not BigInteger: SQLite autoincrements only an INTEGER PRIMARY KEY (and 2**31 decisions is plenty).
    Column("decision_id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Text, nullable=False),
    Column("image_key", Text, nullable=False, server_default=""),  # the output that was looked at
    Column("decision", Text, nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("comment", Text, nullable=False, server_default=""),
    Column("reviewer", Text, nullable=False),
    Column("decided_at", Text, nullable=False),
    CheckConstraint("decision IN ('approve', 'reject', 'clear')", name="ck_review_decisions_decision"),
)
Index("ix_review_decisions_job_id", review_decisions.c.job_id, review_decisions.c.decision_id)

claims = Table(
    "claims",
    metadata,
    Column("job_id", Text, nullable=False),
    Column("run_id", Text, nullable=False),
    Column("claimed_at", Text, nullable=False),
    Column("expires_at", Float, nullable=False),  # epoch seconds, database clock
    # The holding process (catalog/claim_owners.py): a dead holder on the claimant's host voids its claims.
    Column("owner_host", Text, nullable=False, server_default=""),
    Column("owner_pid", Integer, nullable=False, server_default="0"),
    Column("owner_started", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("job_id", name="pk_claims"),
)
Index("ix_claims_run_id", claims.c.run_id)
Index("ix_claims_owner", claims.c.owner_host, claims.c.owner_pid)

# A product whose every job a plan found done, as that plan saw it; the next plan trusts it whole only while
# nothing it depends on moved (pipelines/production/completed.py checks; nothing here is ever invalidated).
completed_products = Table(
    "completed_products",
    metadata,
    Column("product_key", Text, nullable=False),
    Column("image_hash", Text, nullable=False),
    Column("config_fingerprint", Text, nullable=False),
    Column("jobs_stamp", Text, nullable=False),  # "count|sum(row_version)" of the product's job rows
    Column("decision_stamp", BigInteger, nullable=False),  # the latest review decision id when recorded
    # The planner's text forms (pipelines/production/completed.py), compared as strings:
    Column("plan_key", Text, nullable=False),  # render fields, poses, variants
    Column(
        "presets", Text, nullable=False
    ),  # JSON: [presets earlier renders were derived into, output presets]
    Column("file_stamps", Text, nullable=False),  # output folders' and cutout files' stamps
    Column("jobs", Text, nullable=False),  # JSON rows [seed, approved, flags, fingerprint], in plan order
    Column("cutout_flags", Text, nullable=False, server_default="[]"),  # JSON list
    Column("recorded_at", Text, nullable=False),
    Column("run_id", Text, nullable=False, server_default=""),
    PrimaryKeyConstraint("product_key", name="pk_completed_products"),
)

schema_version = Table("schema_version", metadata, Column("version", Integer, nullable=False))
