"""The durable store's database: one SQLite file in WAL mode under the state directory.

Why SQLite: every acknowledged write must survive a `kill -9` of any process, several API and
worker processes on one host write concurrently, and a fresh machine must need nothing installed.
WAL gives readers that never block the writer, and `BEGIN IMMEDIATE` transactions serialise writers
without the "database is locked" surprises of deferred upgrades.

Each store module (`core/store/*.py`) declares its tables as a `Schema`; `Database` creates all
registered schemas on open, so a module owns its tables without a central migration list.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

DB_FILENAME = "celery-composer.sqlite3"
BUSY_TIMEOUT_MS = 30_000


@dataclass(frozen=True)
class Schema:
    """Tables of one store module. `version` lets the module migrate its own tables later."""

    name: str
    version: int
    sql: str


_SCHEMAS: dict[str, Schema] = {}


def register_schema(schema: Schema) -> Schema:
    _SCHEMAS[schema.name] = schema
    return schema


class Database:
    """A per-thread connection pool over one SQLite file.

    sqlite3 connections must not cross threads, and gunicorn's threaded workers or a Celery worker's
    helper threads would otherwise share one; a connection per thread is cheap and keeps each
    thread's transactions its own.  Fork safety: a child process opens its own connections because
    the pool is keyed by process id too.
    """

    def __init__(self, path: Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._init_lock = threading.Lock()
        self._initialised = False

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> "Database":
        return cls(Path(state_dir) / DB_FILENAME)

    def _connect(self) -> sqlite3.Connection:
        conn = sqlite3.connect(self.path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None,
                               check_same_thread=False)
        conn.row_factory = sqlite3.Row
        conn.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction is on disk before the API answers; it also survives an OS
        # crash, not only a killed process. The cost is one fsync per write transaction.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        pid = os.getpid()
        conn = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != pid:
            conn = self._connect()
            self._local.conn, self._local.pid = conn, pid
            self._ensure_schemas(conn)
        return conn

    def _ensure_schemas(self, conn: sqlite3.Connection) -> None:
        with self._init_lock:
            if self._initialised:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                conn.execute("CREATE TABLE IF NOT EXISTS schema_versions"
                             " (name TEXT PRIMARY KEY, version INTEGER NOT NULL)")
                for schema in _SCHEMAS.values():
                    for statement in _split_sql(schema.sql):
                        conn.execute(statement)
                    conn.execute("INSERT INTO schema_versions (name, version) VALUES (?, ?)"
                                 " ON CONFLICT(name) DO UPDATE SET version = excluded.version",
                                 (schema.name, schema.version))
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            self._initialised = True

    def register_and_create(self, schema: Schema) -> None:
        """For a schema registered after the database was first opened (imports in any order)."""
        register_schema(schema)
        with self._init_lock:
            self._initialised = False
        self._ensure_schemas(self.conn)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """A write transaction: taken at once (IMMEDIATE), committed on success, rolled back on error."""
        conn = self.conn
        if conn.in_transaction:  # nested use joins the outer transaction
            yield conn
            return
        conn.execute("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")

    def query(self, sql: str, params: tuple | dict = ()) -> list[sqlite3.Row]:
        return self.conn.execute(sql, params).fetchall()

    def query_one(self, sql: str, params: tuple | dict = ()) -> sqlite3.Row | None:
        return self.conn.execute(sql, params).fetchone()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


def _split_sql(sql: str) -> list[str]:
    """Statements of a schema script; `executescript` would commit our open transaction."""
    return [s.strip() for s in sql.split(";") if s.strip()]
