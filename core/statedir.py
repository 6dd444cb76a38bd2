"""The state directory is the service's alone: 0700, its databases 0600, files made under umask 027.

Why: the store holds upload credentials (sealed, `core.sealing`), blueprints with password hashes
and the broker's messages; a 0755 directory with a 0644 database let any local user read them.
Every process that opens the store (`serve`, `worker`, the API app) calls `prepare` first, so a
fresh installation is born private and an existing one is tightened at its next start. systemd
units say the same (`StateDirectoryMode=0700`, `UMask=0027`).

SQLite creates a database's `-wal` and `-shm` files with the database file's own mode, so the
database file is made 0600 before SQLite first opens it.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

SERVICE_UMASK = 0o027  # what the service's processes create: never world-readable
STATE_DIR_MODE = 0o700
DATABASE_MODE = 0o600
# the store's database, and the embedded broker's and result backend's (core.db, tasks.celery_app)
DATABASE_FILES = ("celery-composer.sqlite3", "broker.sqlite3", "results.sqlite3")
_SQLITE_COMPANIONS = ("", "-wal", "-shm", "-journal")


def prepare(config: Any, *, umask: bool = True) -> None:
    """Make or tighten the state directory and its databases, and set the process umask.

    Tightening only ever removes permissions, and only on what this user owns; OSError (e.g. a
    read-only or foreign directory) propagates with the path, for the caller to report.
    """
    if umask:
        os.umask(SERVICE_UMASK)
    state_dir = Path(config.state_dir)
    state_dir.mkdir(parents=True, exist_ok=True, mode=STATE_DIR_MODE)
    _tighten(state_dir, STATE_DIR_MODE)
    for name in DATABASE_FILES:
        for suffix in _SQLITE_COMPANIONS:
            path = state_dir / (name + suffix)
            if path.exists():
                _tighten(path, DATABASE_MODE)
    database = state_dir / DATABASE_FILES[0]
    if not config.database_url and not database.exists():
        # born private (SQLite gives -wal/-shm the same mode); a database server keeps its own
        os.close(os.open(database, os.O_WRONLY | os.O_CREAT, DATABASE_MODE))
    key = Path(config.sealing_key_file or state_dir / "sealing.key")
    if key.exists():
        _tighten(key, 0o600)


def _tighten(path: Path, mode: int) -> None:
    st = path.stat()
    if st.st_uid != os.geteuid():
        return  # not ours to change (a shared or root-owned path); systemd's modes apply there
    current = stat.S_IMODE(st.st_mode)
    if current & ~mode:
        os.chmod(path, current & mode)
        log.info("tightened %s from %04o to %04o", path, current, current & mode)
