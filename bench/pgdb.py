"""A fresh PostgreSQL database for one benchmark run (`--database-url`), dropped afterwards.

`--database-url` names the server to use by its maintenance database (e.g.
postgresql://postgres@127.0.0.1:5432/postgres); the run gets a database of its own on it, so a
benchmark never measures or disturbs another's data.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator


@contextlib.contextmanager
def fresh_database(server_url: str) -> Iterator[str]:
    """'' (the embedded SQLite) when `server_url` is empty, else a new database's URL."""
    if not server_url:
        yield ""
        return
    import psycopg

    name = f"ccbench_{os.getpid()}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield server_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
