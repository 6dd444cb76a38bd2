"""Alembic migrations of the store (see `core.db.migrate`); one file per schema version."""
