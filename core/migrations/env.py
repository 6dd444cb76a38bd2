"""Alembic's entry point, run by `core.db.migrate` with the connection (and its lock) it holds.

There is no alembic.ini: `celery-composer migrate` and every process opening the database go
through `core.db`, which knows the `database_url` of the configuration.
"""

from __future__ import annotations

from alembic import context

from core.tables import metadata

connection = context.config.attributes["connection"]
context.configure(connection=connection, target_metadata=metadata,
                  # SQLite alters a table by copying it; batch mode does that for us
                  render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
