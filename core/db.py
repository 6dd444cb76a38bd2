"""The durable store's database: SQLite in the state directory, or PostgreSQL by `database_url`.

Why two: a fresh machine must need nothing installed (`make run`), so the embedded default is one
SQLite file in WAL mode; machines that share nothing but the broker and the database (a build host
added to a deployment) need a database server, PostgreSQL.  Both are reached through SQLAlchemy
Core with the same tables (`core.tables`), created and changed by the Alembic migrations in
`core/migrations/`, which the first process to open the database applies under a lock.

The stores write SQL text with `?` placeholders (`conn.execute(sql, params)`), portable between
the two because it is run as SQLAlchemy `text()` with named parameters; where the two databases
differ (a row lock for a claim), they build the statement from `core.tables` instead.

Durability: every acknowledged write is one committed transaction.  SQLite runs `synchronous=FULL`
and takes the write lock when a transaction begins (`BEGIN IMMEDIATE`), so writers queue instead
of failing with "database is locked" on a deferred upgrade.  A database that cannot be reached
raises `DatabaseUnavailable`, a Weldr error (503 `DatabaseError`) naming the database.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import select
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event, exc
from sqlalchemy.engine import URL, Engine
from sqlalchemy.sql.elements import TextClause

from core.errors import WeldrError

log = logging.getLogger(__name__)

DB_FILENAME = "celery-composer.sqlite3"
BUSY_TIMEOUT_MS = 30_000
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"
# pg_advisory_xact_lock key of the migration lock: any constant no other application uses
MIGRATION_LOCK_KEY = 0x63636D6967  # "ccmig"


class DatabaseUnavailable(WeldrError):
    """The database cannot be reached (server down, connection lost, file unreadable).

    Nothing acknowledged is lost: the failed transaction was rolled back, and the caller (a
    request, a task) fails instead of answering as if it had been stored.
    """

    def __init__(self, name: str, reason: str):
        super().__init__("DatabaseError", f"the database {name} cannot be used: {reason}", 503)
        self.database = name


class Row(Sequence[Any]):
    """A result row readable by position and by column name, like `sqlite3.Row`."""

    __slots__ = ("_values", "_index")

    def __init__(self, values: tuple[Any, ...], index: dict[str, int]):
        self._values = values
        self._index = index

    def __getitem__(self, key: Any) -> Any:  # type: ignore[override]
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def __len__(self) -> int:
        return len(self._values)

    def keys(self) -> list[str]:
        return list(self._index)

    def __repr__(self) -> str:
        return f"Row({dict(zip(self._index, self._values, strict=True))!r})"


class Result:
    """What `Connection.execute` returns: rows (`fetchone`/`fetchall`) and `rowcount`."""

    def __init__(self, result: sa.CursorResult[Any]):
        self._result = result
        self.rowcount: int = result.rowcount
        self._index = ({k: i for i, k in enumerate(result.keys())} if result.returns_rows else {})

    def fetchone(self) -> Row | None:
        if not self._index:
            return None
        row = self._result.fetchone()
        return None if row is None else Row(tuple(row), self._index)

    def fetchall(self) -> list[Row]:
        if not self._index:
            return []
        return [Row(tuple(r), self._index) for r in self._result.fetchall()]


@functools.lru_cache(maxsize=2048)
def _qmark_text(sql: str) -> tuple[TextClause, tuple[str, ...]]:
    """`?` placeholders as named parameters; other `:` escaped so `text()` takes them literally."""
    out: list[str] = []
    names: list[str] = []
    quote = ""
    for ch in sql:
        if quote:
            if ch == quote:
                quote = ""
            out.append("\\:" if ch == ":" else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            names.append(f"p{len(names)}")
            out.append(":" + names[-1])
        else:
            out.append("\\:" if ch == ":" else ch)
    return sa.text("".join(out)), tuple(names)


class Connection:
    """One connection inside a transaction (or, for reads, in autocommit).

    A pooled connection is not pinged before use (that would be one more round trip to the
    server per transaction, a third of what a pipeline step costs on PostgreSQL).  Instead, when
    the first statement finds the connection dead (the server restarted or ended it while it sat
    in the pool), nothing has happened on the server yet, so the statement is run again on a new
    connection (`reconnect`).  A connection lost later in a transaction is an error as before:
    what the transaction wrote is rolled back, and whether a lost COMMIT happened is not known.
    """

    def __init__(self, conn: sa.Connection,
                 reconnect: "Callable[[], sa.Connection] | None" = None):
        self.sa = conn
        self._reconnect = reconnect

    def execute(self, statement: str | sa.Executable, params: Sequence[Any] | dict[str, Any] = ()
                ) -> Result:
        """Run SQL text with `?` (a sequence) or `:name` (a dict) parameters, or a Core statement."""
        clause: sa.Executable
        if isinstance(statement, str):
            if isinstance(params, dict):
                clause = sa.text(statement)
            else:
                clause, names = _qmark_text(statement)
                if len(names) != len(params):
                    raise ValueError(
                        f"{len(names)} placeholders but {len(params)} parameters: {statement}")
                params = dict(zip(names, params, strict=True))
        else:
            clause = statement
        try:
            result = self.sa.execute(clause, params or {})  # type: ignore[arg-type]
        except exc.DBAPIError as err:
            if self._reconnect is None or not err.connection_invalidated:
                raise
            log.info("a pooled connection to the database was dead (%s); reconnecting",
                     str(err.orig).strip().splitlines()[0] if err.orig else err)
            self.sa = self._reconnect()
            result = self.sa.execute(clause, params or {})  # type: ignore[arg-type]
        self._reconnect = None
        return Result(result)


# Engines by (URL, process): every `Database` handle of a process shares one pool per database,
# and a forked child (gunicorn, Celery prefork) gets its own connections.
_engines: dict[tuple[str, int], Engine] = {}
_engines_lock = threading.Lock()


def _sqlite_engine(url: URL) -> Engine:
    path = Path(url.database or "")
    path.parent.mkdir(parents=True, exist_ok=True)
    engine = sa.create_engine(url, connect_args={"timeout": BUSY_TIMEOUT_MS / 1000},
                              pool_size=8, max_overflow=24)

    @event.listens_for(engine, "connect")
    def _connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # the driver begins nothing; `_begin` below does
        cur = dbapi_conn.cursor()
        cur.execute("PRAGMA journal_mode=WAL")
        # FULL: a committed transaction is on disk before the API answers; it also survives an
        # OS crash, not only a killed process.  The cost is one fsync per write transaction.
        cur.execute("PRAGMA synchronous=FULL")
        cur.execute("PRAGMA foreign_keys=ON")
        cur.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn: sa.Connection) -> None:
        if conn.get_execution_options().get("isolation_level") != "AUTOCOMMIT":
            conn.exec_driver_sql("BEGIN IMMEDIATE")

    return engine


def _still_open(dbapi_conn: Any) -> bool:
    """Whether a pooled psycopg connection can still be used, mostly without asking the server.

    An idle connection has nothing to read; one the server ended (restart, pg_terminate_backend)
    has its farewell message or end-of-file waiting.  A poll() of the socket tells the two apart
    for free, where SQLAlchemy's pre-ping costs a round trip on every checkout; only when
    something did arrive does a real query decide.
    """
    if dbapi_conn.closed or dbapi_conn.broken:
        return False
    try:
        poller = select.poll()
        poller.register(dbapi_conn.fileno(), select.POLLIN | select.POLLERR | select.POLLHUP)
        if not poller.poll(0):
            return True
        dbapi_conn.execute("SELECT 1")
        dbapi_conn.rollback()
    except Exception:  # noqa: BLE001 - whatever failed, this connection is not to be used
        return False
    return True


def _postgresql_engine(url: URL) -> Engine:
    # no pool_pre_ping (a round trip per checkout): `_still_open` at checkout, and a transaction
    # whose first statement still finds its connection dead reconnects (`Connection`)
    engine = sa.create_engine(url, pool_size=5, max_overflow=20)

    @event.listens_for(engine, "checkout")
    def _checkout(dbapi_conn: Any, _record: Any, _proxy: Any) -> None:
        if not _still_open(dbapi_conn):
            # the pool drops this connection and checks out another (a new one if need be)
            raise exc.DisconnectionError("the server closed this pooled connection")

    return engine


def engine_for(url: URL) -> Engine:
    key = (url.render_as_string(hide_password=False), os.getpid())
    with _engines_lock:
        engine = _engines.get(key)
        if engine is None:
            if url.get_backend_name() == "sqlite":
                engine = _sqlite_engine(url)
            else:
                engine = _postgresql_engine(url)
            _engines[key] = engine
        return engine


def url_for(database_url: str, state_dir: Path) -> URL:
    """`database_url` as SQLAlchemy understands it; empty means the SQLite file in state_dir.

    `postgresql://` selects psycopg 3 (SQLAlchemy's default would be psycopg2).
    """
    if not database_url:
        return URL.create("sqlite", database=str(Path(state_dir) / DB_FILENAME))
    url = sa.make_url(database_url)
    if url.drivername in ("postgresql", "postgres"):
        url = url.set(drivername="postgresql+psycopg")
    return url


class Database:
    """A handle on the store's database; cheap, and any number may share one connection pool.

    `transaction()` is a write transaction; `query`/`query_one` read (inside the thread's open
    transaction when there is one, so a transaction sees its own writes).  The schema is
    migrated to the newest version the first time a process uses a database.
    """

    def __init__(self, url: str | URL):
        self.url = sa.make_url(url) if isinstance(url, str) else url
        self.name = self.url.render_as_string(hide_password=True)
        self._local = threading.local()
        # how upload settings are sealed at rest (core.sealing.Sealer; set by open_database)
        self.sealer: Any = None

    @classmethod
    def in_state_dir(cls, state_dir: Path) -> "Database":
        """The embedded default: `<state_dir>/celery-composer.sqlite3`."""
        return cls(url_for("", state_dir))

    @classmethod
    def from_config(cls, config: Any) -> "Database":
        return cls(url_for(config.database_url, config.state_dir))

    @property
    def dialect(self) -> str:
        """`sqlite` or `postgresql`."""
        return self.url.get_backend_name()

    @property
    def path(self) -> Path | None:
        """The SQLite file, None for a database server."""
        return Path(self.url.database or "") if self.dialect == "sqlite" else None

    @property
    def engine(self) -> Engine:
        engine = engine_for(self.url)
        if self.url not in _migrated:  # a forked child inherits its parent's knowledge
            with self._errors():
                migrate(engine)
            _migrated.add(self.url)
        return engine

    @contextlib.contextmanager
    def _errors(self) -> Iterator[None]:
        try:
            yield
        except (exc.OperationalError, exc.InterfaceError) as err:
            reason = str(err.orig if getattr(err, "orig", None) is not None else err)
            raise DatabaseUnavailable(self.name, reason.strip().splitlines()[0]) from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """A write transaction: committed on success, rolled back on error; nested use joins."""
        current = getattr(self._local, "tx", None)
        if current is not None:
            yield current
            return
        engine = self.engine

        def reconnect() -> sa.Connection:
            conn.sa.close()
            fresh = engine.connect()
            fresh.begin()
            return fresh

        with self._errors():
            conn = Connection(engine.connect(), reconnect)
            try:
                conn.sa.begin()
                self._local.tx = conn
                try:
                    yield conn
                finally:
                    self._local.tx = None
                conn.sa.commit()
            finally:
                conn.sa.close()  # rolls back what was not committed

    def execute(self, sql: str | sa.Executable, params: Sequence[Any] | dict[str, Any] = ()
                ) -> int:
        """One write statement, committed; returns the rows it changed.  Inside an open
        transaction it joins it.

        On its own on PostgreSQL it runs in autocommit: the server commits the statement by
        itself (as durably as a COMMIT), one round trip instead of three (BEGIN, statement,
        COMMIT).  Not retried on a dead connection: the statement may have been committed before
        the connection was lost.  SQLite keeps its `BEGIN IMMEDIATE` transaction, which costs no
        round trip there.
        """
        if getattr(self._local, "tx", None) is not None or self.dialect == "sqlite":
            with self.transaction() as conn:
                return conn.execute(sql, params).rowcount
        engine = self.engine
        with self._errors(), engine.connect() as sa_conn:
            return Connection(sa_conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                sql, params).rowcount

    def execute_returning(self, sql: str | sa.Executable,
                          params: Sequence[Any] | dict[str, Any] = ()) -> list[Row]:
        """`execute` for a statement that returns rows (`RETURNING`, or a PostgreSQL `WITH`
        whose parts write): committed on its own (autocommit on PostgreSQL, one round trip),
        or joining the open transaction.  Not retried on a dead connection either."""
        if getattr(self._local, "tx", None) is not None or self.dialect == "sqlite":
            with self.transaction() as conn:
                return conn.execute(sql, params).fetchall()
        engine = self.engine
        with self._errors(), engine.connect() as sa_conn:
            return Connection(sa_conn.execution_options(isolation_level="AUTOCOMMIT")).execute(
                sql, params).fetchall()

    def query(self, sql: str | sa.Executable, params: Sequence[Any] | dict[str, Any] = ()
              ) -> list[Row]:
        current = getattr(self._local, "tx", None)
        if current is not None:
            return current.execute(sql, params).fetchall()
        engine = self.engine

        def reconnect() -> sa.Connection:
            return stack.enter_context(engine.connect()).execution_options(
                isolation_level="AUTOCOMMIT")

        with self._errors(), contextlib.ExitStack() as stack:
            sa_conn = stack.enter_context(engine.connect())
            return Connection(sa_conn.execution_options(isolation_level="AUTOCOMMIT"),
                              reconnect).execute(sql, params).fetchall()

    def query_one(self, sql: str | sa.Executable, params: Sequence[Any] | dict[str, Any] = ()
                  ) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def close(self) -> None:
        """Close the pooled connections of this database in this process."""
        with _engines_lock:
            engine = _engines.pop((self.url.render_as_string(hide_password=False), os.getpid()),
                                  None)
        if engine is not None:
            engine.dispose()
        _migrated.discard(self.url)


_migrated: set[URL] = set()


def _alembic_config(conn: sa.Connection) -> Any:
    from alembic.config import Config as AlembicConfig

    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.attributes["connection"] = conn
    return cfg


def head_revision() -> str | None:
    from alembic.script import ScriptDirectory

    cfg = _alembic_config(None)  # type: ignore[arg-type]
    return ScriptDirectory.from_config(cfg).get_current_head()


def current_revision(conn: sa.Connection) -> str | None:
    from alembic.migration import MigrationContext

    return MigrationContext.configure(conn).get_current_revision()


def migrate(engine: Engine) -> str | None:
    """Bring the schema to the newest revision; returns the revision it was at (None: empty).

    Many processes start at once (API workers, Celery workers on several machines), so the
    upgrade runs under a lock: PostgreSQL's transaction-scoped advisory lock, SQLite's write lock
    (`BEGIN IMMEDIATE` on the file).  Whoever gets it second finds the schema current.
    """
    from alembic import command

    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lines are for its own CLI
    head = head_revision()
    with engine.connect() as conn:
        if current_revision(conn.execution_options(isolation_level="AUTOCOMMIT")) == head:
            return head
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"), {"key": MIGRATION_LOCK_KEY})
        before = current_revision(conn)
        if before != head:
            log.info("migrating the database %s from %s to %s",
                     engine.url.render_as_string(hide_password=True), before or "empty", head)
            command.upgrade(_alembic_config(conn), "head")
    return before
