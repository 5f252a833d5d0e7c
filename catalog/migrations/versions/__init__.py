"""One file per schema version; Alembic reads them as scripts (this file is skipped)."""
