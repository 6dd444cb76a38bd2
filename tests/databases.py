"""Which database the tests' stores use: SQLite (default) or PostgreSQL (`TEST_DATABASE=postgresql`).

The product picks its database by `database_url` (empty: the SQLite file in `state_dir`).  Tests
think in state directories — a server's, a pipeline installation's, a `tmp_path` — so with
PostgreSQL each state directory gets a fresh database of its own, created on first use and
dropped when the session ends; every process of that installation (API, workers, the test
itself) is handed its URL.  The server is `TEST_POSTGRESQL_URL` (default: 127.0.0.1:5432, user
postgres, trust authentication), as `.ci/run` provides.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

TEST_DATABASE = os.environ.get("TEST_DATABASE", "sqlite").lower()
ADMIN_URL = os.environ.get("TEST_POSTGRESQL_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
if TEST_DATABASE not in ("sqlite", "postgresql"):
    raise SystemExit(f"TEST_DATABASE must be sqlite or postgresql, not {TEST_DATABASE!r}")

_created: dict[str, str] = {}  # database name -> URL


def on_postgresql() -> bool:
    return TEST_DATABASE == "postgresql"


def _admin() -> Any:
    import psycopg

    try:
        return psycopg.connect(ADMIN_URL, autocommit=True, connect_timeout=5)
    except psycopg.OperationalError as exc:
        raise RuntimeError(f"TEST_DATABASE=postgresql but {ADMIN_URL} does not answer (.ci/run"
                           f" starts one): {exc}") from exc


def database_url(state_dir: Path) -> str:
    """`database_url` for the installation with this state directory ('' on SQLite)."""
    if not on_postgresql():
        return ""
    return postgresql_database(state_dir)


def postgresql_database(key: Path) -> str:
    """A fresh PostgreSQL database named for `key` (whatever TEST_DATABASE says), for tests that
    need a database server: several machines, a server restart."""
    name = "cct_" + hashlib.sha1(str(Path(key).resolve()).encode()).hexdigest()[:20]
    if name not in _created:
        with _admin() as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{name}"')
        base = ADMIN_URL.rsplit("/", 1)[0]
        _created[name] = f"{base}/{name}"
    return _created[name]


def database_for(state_dir: Path) -> Any:
    """The `core.db.Database` of the installation with this state directory."""
    from core.db import Database
    from core.sealing import KEY_FILENAME, Sealer

    url = database_url(state_dir)
    if not url:
        return Database.in_state_dir(state_dir)
    db = Database(url)
    # the installation's processes seal upload settings with <state_dir>/sealing.key (their
    # default sealing_key_file); the test reads them with the same key
    db.sealer = Sealer(Path(state_dir) / KEY_FILENAME)
    return db


def drop_created() -> None:
    """Drop this session's databases (connections of servers still running are cut)."""
    if not _created:
        return
    with _admin() as conn:
        for name in list(_created):
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            del _created[name]
