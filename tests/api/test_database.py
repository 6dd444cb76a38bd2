"""The database layer on a real SQLite file and a real PostgreSQL server (whichever
`TEST_DATABASE` selects): migrations, the migrate command, claims under concurrent workers, and
what a lost database looks like to a caller."""

from __future__ import annotations

import sqlite3
import subprocess
import sys
import threading
from pathlib import Path

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from core import db as db_mod
from core import jobs
from core.store.composes import ComposeStore
from core.tables import metadata
from tests.databases import database_for, database_url, on_postgresql

PROJECT_DIR = Path(__file__).resolve().parents[2]


def test_migrations_make_exactly_the_tables_of_core_tables(tmp_path):
    db = database_for(tmp_path)
    with db.engine.connect() as conn:
        assert db_mod.current_revision(conn) == db_mod.head_revision()
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    assert diff == []


def test_an_sqlite_file_from_before_migrations_is_adopted(tmp_path):
    """A state directory written by a celery-composer that created tables on import."""
    path = tmp_path / db_mod.DB_FILENAME
    old = sqlite3.connect(path)
    old.executescript("""
        CREATE TABLE schema_versions (name TEXT PRIMARY KEY, version INTEGER NOT NULL);
        CREATE TABLE sources (id TEXT PRIMARY KEY, data TEXT NOT NULL);
        INSERT INTO sources VALUES ('kept', '{"id": "kept"}');
    """)
    old.close()
    db = db_mod.Database.in_state_dir(tmp_path)
    assert db.query_one("SELECT data FROM sources WHERE id = 'kept'")["data"] == '{"id": "kept"}'
    names = {r["name"] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"composes", "pipeline_jobs", "alembic_version"} <= names
    assert "schema_versions" not in names


def test_migrate_command_applies_and_checks(tmp_path):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path),
           "CELERY_COMPOSER_STATE_DIR": str(tmp_path / "state"),
           "CELERY_COMPOSER_DATABASE_URL": database_url(tmp_path / "state")}

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "app.cli", "migrate", *args], cwd=PROJECT_DIR,
                              env=env, capture_output=True, text=True, timeout=120)

    check = run("--check")
    assert check.returncode == 1 and "at no schema, newest" in check.stdout
    done = run()
    assert done.returncode == 0 and "migrated from no schema to" in done.stdout
    again = run("--check")
    assert again.returncode == 0, again.stdout + again.stderr
    assert run().stdout.strip().endswith(f"already at {db_mod.head_revision()}")


@pytest.mark.parametrize("enqueued", [True, False], ids=["queued-job", "adopted-message"])
def test_concurrent_claims_give_a_step_to_one_worker(tmp_path, enqueued):
    """Eight threads, each with its own connection, claim the same step at once: exactly one
    gets it (row lock), and heartbeats of the loser never touch the winner's claim.  Also when
    no job row was recorded (a message sent by hand): one of them adopts it, the others skip."""
    db = database_for(tmp_path / "state")
    store = ComposeStore(db, tmp_path / "artifacts")
    cid = store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                       distro="d", arch="x86_64").id
    if enqueued:
        jobs.enqueue(db, cid, jobs.BUILD)
    barrier = threading.Barrier(8)
    won: list[jobs.Claim] = []

    def claim(n: int) -> None:
        barrier.wait()
        got = jobs.claim(db, cid, jobs.BUILD, f"w{n}", stale_after=60)
        if got is not None:
            won.append(got)

    threads = [threading.Thread(target=claim, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(won) == 1
    (row,) = jobs.jobs(db, cid)
    assert (row["state"], row["attempt"], row["token"]) == ("running", 1, won[0].token)


def test_concurrent_state_changes_lose_no_update(tmp_path):
    """Cancel requests and failure records race on each compose: whichever comes first decides
    it, whole (the state, the reason and the cancel flag agree), on both backends."""
    db = database_for(tmp_path / "state")
    store = ComposeStore(db, tmp_path / "artifacts")
    ids = [store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                        distro="d", arch="x86_64").id for _ in range(20)]
    for cid in ids:
        store.mark_running(cid)
    barrier = threading.Barrier(2)

    def fail_all() -> None:
        barrier.wait()
        for cid in ids:
            store.mark_failed(cid, "boom", failure={"id": "BuildError", "msg": "boom"})

    def cancel_all() -> None:
        barrier.wait()
        for cid in ids:
            try:
                store.request_cancel(cid)
            except Exception:  # noqa: BLE001 - already FAILED: the other thread won that one
                pass

    threads = [threading.Thread(target=fail_all), threading.Thread(target=cancel_all)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cid in ids:
        compose = store.get(cid)
        assert compose.queue_status == "FAILED"
        # either side may win each race (a cancel is final when it is taken, as in
        # osbuild-composer), but the record is wholly the winner's: never a mix, never lost
        if store.cancel_requested(cid):
            assert compose.error == "" and not compose.failure, (cid, compose.error)
        else:
            assert compose.error == "boom" and compose.failure == {"id": "BuildError", "msg": "boom"}
    assert store.generation() >= 60  # 20 creates + 20 starts + 20 failures, none overwritten


def test_finish_and_cancel_race_to_one_outcome(tmp_path):
    """A step finishing (one conditional UPDATE, no read first) races a cancel on each compose:
    every compose ends either FINISHED and never cancelled, or FAILED with the cancel recorded;
    and a start racing a cancel never starts a cancelled compose."""
    db = database_for(tmp_path / "state")
    store = ComposeStore(db, tmp_path / "artifacts")

    def create() -> str:
        return store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="tar",
                            distro="d", arch="x86_64", size=5).id

    running = [create() for _ in range(20)]
    waiting = [create() for _ in range(20)]
    for cid in running:
        store.mark_running(cid)
    barrier = threading.Barrier(2)
    finished: set[str] = set()
    started: set[str] = set()

    def finish_and_start() -> None:
        barrier.wait()
        for a, b in zip(running, waiting, strict=True):
            if store.mark_finished(a, image_size=5):
                finished.add(a)
            if store.start(b) is not None:
                started.add(b)

    def cancel_all() -> None:
        barrier.wait()
        for cid in [c for pair in zip(running, waiting, strict=True) for c in pair]:
            try:
                store.request_cancel(cid)
            except Exception:  # noqa: BLE001 - already FINISHED: the other thread won that one
                pass

    threads = [threading.Thread(target=finish_and_start), threading.Thread(target=cancel_all)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for cid in running:
        compose = store.get(cid)
        if cid in finished:
            assert (compose.queue_status, compose.cancel_requested) == ("FINISHED", False), cid
        else:
            assert (compose.queue_status, compose.cancel_requested) == ("FAILED", True), cid
    for cid in waiting:
        compose = store.get(cid)
        # the cancel ends every one (WAITING and RUNNING are both cancellable); it found RUNNING
        # exactly those the start took first, and the start took none the cancel had taken
        assert (compose.queue_status, compose.cancel_requested) == ("FAILED", True), cid
        expected = "compose cancelled\n" if cid in started else "compose cancelled before it started\n"
        assert store.read_log(cid) == expected, cid


def test_unreachable_database_is_a_weldr_error_naming_it():
    """A PostgreSQL nobody listens on (a closed loopback port): 503 DatabaseError, password hidden."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    db = db_mod.Database(f"postgresql://u:secret@127.0.0.1:{port}/nothing?connect_timeout=2")
    with pytest.raises(db_mod.DatabaseUnavailable) as info:
        db.query("SELECT 1")
    err = info.value
    assert (err.id, err.http_status) == ("DatabaseError", 503)
    assert f"127.0.0.1:{port}/nothing" in err.msg and "secret" not in err.msg


@pytest.mark.skipif(not on_postgresql(), reason="a dropped server connection needs PostgreSQL")
def test_connection_killed_by_the_server_is_replaced(tmp_path):
    """The server ends our pooled connections (as a restart would): the next use reconnects
    (the pool notices at checkout, or the first statement reconnects) instead of failing."""
    db = database_for(tmp_path)
    assert db.query_one("SELECT 1 AS one")["one"] == 1
    name = db.url.database
    admin = sa.create_engine(db_mod.url_for(database_url(tmp_path).rsplit("/", 1)[0] + "/postgres",
                                            tmp_path), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                             " WHERE datname = :name AND pid != pg_backend_pid()"), {"name": name})
    admin.dispose()
    assert db.query_one("SELECT 2 AS two")["two"] == 2
