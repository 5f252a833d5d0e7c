"""Alembic migrations of the state store (catalog.state); applied by catalog.state_migrate on every open.

No alembic.ini is needed: catalog.state_migrate configures Alembic in code and hands env.py the open
connection. A new schema version is a new file in versions/ (copy the latest, set `revision` to the next
four-digit number and `down_revision` to the previous one), and `SCHEMA_VERSION` in catalog/state_migrate.py
goes up by one; each upgrade also writes the new number into the schema_version table, which is what onmodel
releases before Alembic check to refuse a newer file.
"""
