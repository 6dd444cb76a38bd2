"""Upload credentials are not readable by other local users, nor from a copy of the database.

A real `celery-composer serve` on a fresh state directory: the directory is born 0700, the
database and its WAL/SHM 0600, the key file 0600; a profile's secret and an upload's secret are
nowhere in the database files' bytes, yet the upload routes and the upload itself read them back.
An installation written by an older version (0755 directory, 0644 database, clear-text rows) is
tightened and sealed at the next start and reads as before.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import sqlite3
import stat
from pathlib import Path

import pytest

from core import sealing
from core.db import DB_FILENAME
from tests.databases import database_for, database_url, on_postgresql

SECRET = "wJalrXUtnFEMI-K7MDENG-bPxRfiCYEXAMPLEKEY"
PROFILE = {"provider": "aws.s3", "profile": "private",
           "settings": {"bucket": "b", "region": "us-east-1", "accessKeyID": "AKIAEXAMPLE",
                        "secretAccessKey": SECRET}}


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def database_bytes(state_dir: Path) -> bytes:
    """What a copy of the store holds: the SQLite files' bytes, or (PostgreSQL) every row."""
    if on_postgresql():
        db = database_for(state_dir)
        rows = [tuple(r) for table in ("compose_uploads", "upload_profiles", "composes")
                for r in db.query(f"SELECT * FROM {table}")]
        return repr(rows).encode()
    return b"".join(p.read_bytes() for p in state_dir.glob(DB_FILENAME + "*"))


def finished_compose(state_dir: Path) -> str:
    """A FINISHED compose with an image, recorded straight in the store (no build needed)."""
    from core.store.composes import ComposeStore

    store = ComposeStore.from_config(_config(state_dir))
    c = store.create(blueprint={"name": "sec", "version": "0.0.1"}, compose_type="tar",
                     distro="test-distro-1", arch="x86_64", test_mode=2,
                     image_filename="root.tar", mime_type="application/x-tar")
    store.image_path(store.get(c.id)).parent.mkdir(parents=True, exist_ok=True)
    store.image_path(store.get(c.id)).write_bytes(b"image")
    return c.id


def _config(state_dir: Path):
    from core import config as config_mod

    return config_mod.load(environ={}, state_dir=state_dir, database_url=database_url(state_dir))


def test_a_fresh_state_dir_is_private_and_secrets_are_sealed(start_weldr_server):
    server = start_weldr_server()
    client = server.client
    r = client.post("/api/v1/upload/providers/save", PROFILE)
    assert r.status == 200, r
    compose_id = finished_compose(server.state_dir)
    r = client.post(f"/api/v1/compose/uploads/schedule/{compose_id}",
                    {"image_name": "img", "provider": "aws.s3",
                     "settings": dict(PROFILE["settings"], secretAccessKey=SECRET + "-upload")})
    assert r.status == 200, r
    upload_id = r.json()["upload_id"]

    state = server.state_dir
    assert mode(state) == 0o700
    files = sorted(state.glob(DB_FILENAME + "*"))
    if not on_postgresql():
        assert {p.name for p in files} >= {DB_FILENAME, DB_FILENAME + "-wal", DB_FILENAME + "-shm"}
    for path in files:
        assert mode(path) == 0o600, path
    key = state / sealing.KEY_FILENAME
    assert mode(key) == 0o600

    raw = database_bytes(state)
    assert SECRET.encode() not in raw and b"AKIAEXAMPLE" not in raw

    # still readable where the service needs them: the store (as the upload worker reads it) ...
    from core.store import uploads as upload_store
    from core.store.composes import ComposeStore

    store = ComposeStore.from_config(_config(state))
    assert store.upload(upload_id).settings["secretAccessKey"] == SECRET + "-upload"
    assert upload_store.load_profile(store.db, "aws.s3", "private")["secretAccessKey"] == SECRET
    # ... and through the API, where the secret itself never shows
    providers = client.get("/api/v1/upload/providers").json()["providers"]
    assert providers["aws.s3"]["profiles"]["private"]["bucket"] == "b"
    assert SECRET not in json.dumps(providers)


def _legacy_state_dir(state: Path) -> str:
    """What an older version left: 0755 directory, 0644 database, settings in clear."""
    from core.store import uploads as upload_store
    from core.store.composes import ComposeStore

    state.mkdir(mode=0o755, parents=True)
    os.chmod(state, 0o755)
    db = database_for(state)
    store = ComposeStore(db, state / "artifacts")
    upload_store.list_profiles(db, "aws.s3")  # creates the profile table
    c = store.create(blueprint={"name": "old", "version": "0.0.1"}, compose_type="tar",
                     distro="test-distro-1", arch="x86_64", test_mode=2)
    settings = json.dumps(PROFILE["settings"])
    with db.transaction() as conn:  # rows as the old code wrote them
        conn.execute("INSERT INTO upload_profiles (provider, name, settings, saved)"
                     " VALUES ('aws.s3', 'old', ?, 0)", (settings,))
        conn.execute("INSERT INTO compose_uploads (id, compose_id, target, image_name, settings,"
                     " status, created) VALUES ('u-old', ?, 'aws.s3', 'img', ?, 'FAILED', 0)",
                     (c.id, settings))
        record = json.loads(conn.execute("SELECT record FROM composes WHERE id = ?",
                                         (c.id,)).fetchone()[0])
        record["upload_requests"] = [{"provider": "aws.s3", "image_name": "img",
                                      "settings": PROFILE["settings"]}]
        conn.execute("UPDATE composes SET record = ? WHERE id = ?", (json.dumps(record), c.id))
    db.close()
    for path in state.glob(DB_FILENAME + "*"):
        os.chmod(path, 0o644)
    (state / sealing.KEY_FILENAME).unlink(missing_ok=True)
    assert SECRET.encode() in database_bytes(state)
    return c.id


def test_an_older_installation_is_tightened_and_sealed_at_start(tmp_path, start_weldr_server):
    compose_id = _legacy_state_dir(tmp_path / "server0" / "state")  # where the server's will be
    server = start_weldr_server()
    state = server.state_dir
    assert mode(state) == 0o700
    for path in state.glob(DB_FILENAME + "*"):
        assert mode(path) == 0o600, path
    if not on_postgresql():
        # a checkpoint folds the WAL into the file so the old clear pages are overwritten too
        conn = sqlite3.connect(state / DB_FILENAME)
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("VACUUM")
        conn.close()
    assert SECRET.encode() not in database_bytes(state)

    profiles = server.client.get("/api/v1/upload/providers").json()["providers"]["aws.s3"]["profiles"]
    assert profiles["old"]["bucket"] == "b"
    info = server.client.get("/api/v1/upload/info/u-old").json()
    assert info["upload"]["uuid"] == "u-old", info
    from core.store.composes import ComposeStore

    store = ComposeStore.from_config(_config(state))
    assert store.upload("u-old").settings["secretAccessKey"] == SECRET
    assert store.get(compose_id).upload_requests == [{"provider": "aws.s3", "image_name": "img"}]


def _make_key(path: str, barrier) -> bytes:
    barrier.wait()
    return sealing.ensure_key(Path(path))


def test_processes_starting_together_agree_on_one_key(tmp_path):
    path = tmp_path / "state" / sealing.KEY_FILENAME
    ctx = multiprocessing.get_context("spawn")
    n = 6
    barrier = ctx.Manager().Barrier(n)
    with ctx.Pool(n) as pool:
        keys = pool.starmap(_make_key, [(str(path), barrier)] * n)
    assert len(set(keys)) == 1 and len(keys[0]) == 44
    assert mode(path) == 0o600 and [p.name for p in path.parent.iterdir()] == [path.name]


def test_a_wrong_key_is_a_clear_error(tmp_path):
    sealed = sealing.Sealer(tmp_path / "a.key").seal("{}")
    other = sealing.Sealer(tmp_path / "b.key")
    with pytest.raises(sealing.SealingError, match="does not open with"):
        other.open(sealed)
    assert other.open('{"clear": 1}') == '{"clear": 1}'  # rows from before sealing read as they are


def test_an_inline_key_serves_machines_that_share_no_file(tmp_path):
    """`sealing_key` (docker-compose.multi-machine.yml gives every service the same one): two
    processes with different state directories open each other's sealed settings."""
    from core import config as config_mod

    key = "Y2VsZXJ5LWNvbXBvc2VyLWV4YW1wbGUta2V5LTMyYiE="
    api = config_mod.load(environ={"CELERY_COMPOSER_SEALING_KEY": key}, state_dir=tmp_path / "api")
    worker = config_mod.load(environ={"CELERY_COMPOSER_SEALING_KEY": key}, state_dir=tmp_path / "w")
    sealed = sealing.Sealer.from_config(api).seal('{"secretAccessKey": "x"}')
    assert sealing.Sealer.from_config(worker).open(sealed) == '{"secretAccessKey": "x"}'
    assert not (tmp_path / "api" / sealing.KEY_FILENAME).exists()
    with pytest.raises(config_mod.ConfigError, match="Fernet key"):
        config_mod.load(environ={"CELERY_COMPOSER_SEALING_KEY": "short"}, state_dir=tmp_path)
