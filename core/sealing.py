"""Upload settings (credentials) are stored sealed: encrypted with a key file only the service reads.

Why: profiles (`upload/providers/save`) and each upload's settings hold cloud credentials. The
database is private to the service (`core.statedir`), but a copy of it (a backup, a support
bundle, a PostgreSQL dump) should not hand them out; sealed, they need the key file too.

The key is a Fernet key (AES-128-CBC with HMAC-SHA256, from `cryptography`), in `sealing_key_file`
(default `<state_dir>/sealing.key`), created 0600 the first time a process needs it, or given
as `sealing_key` (machines that share no file); every API and worker process of one installation
must use the same key.

A sealed value is text starting with `sealed:`; anything else is a row written before sealing
existed (clear JSON) and is read as it is, then sealed by `seal_clear_rows` at the next start or
by its next write.
"""

from __future__ import annotations

import contextlib
import logging
import os
import threading
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

KEY_FILENAME = "sealing.key"
PREFIX = "sealed:"


class SealingError(RuntimeError):
    """The key file is missing or unreadable, or a sealed value does not open with it."""


class Sealer:
    """Seals and opens text with the key in `key_path`, creating the key on first use."""

    def __init__(self, key_path: Path, key: str = ""):
        self.key_path = Path(key_path)
        self.key = key  # given (the `sealing_key` setting): no file is read or made
        self._fernet: Any = None
        self._lock = threading.Lock()

    @classmethod
    def from_config(cls, config: Any) -> "Sealer":
        return cls(key_path(config), config.sealing_key)

    def seal(self, text: str) -> str:
        return PREFIX + self._key().encrypt(text.encode("utf-8")).decode("ascii")

    def open(self, stored: str) -> str:
        """The text of a sealed value; a clear value (written before sealing) as it is."""
        if not stored.startswith(PREFIX):
            return stored
        from cryptography.fernet import InvalidToken

        try:
            return self._key().decrypt(stored[len(PREFIX):].encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError) as exc:
            source = "the sealing_key setting" if self.key else str(self.key_path)
            raise SealingError(f"a sealed upload setting does not open with {source}: the key "
                               "was replaced or belongs to another installation") from exc

    def _key(self) -> Any:
        with self._lock:
            if self._fernet is None:
                from cryptography.fernet import Fernet

                self._fernet = Fernet(self.key.encode() if self.key else ensure_key(self.key_path))
            return self._fernet


def key_path(config: Any) -> Path:
    return Path(config.sealing_key_file or Path(config.state_dir) / KEY_FILENAME)


def ensure_key(path: Path) -> bytes:
    """The key in `path`, made (0600, atomically: no process ever reads half a key) when missing."""
    try:
        return _read_key(path)
    except FileNotFoundError:
        pass
    from cryptography.fernet import Fernet

    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(Fernet.generate_key() + b"\n")
            fh.flush()
            os.fsync(fh.fileno())
        try:
            os.link(tmp, path)  # fails if another process made it first: theirs is the key
            log.info("created the upload secrets key %s", path)
        except FileExistsError:
            pass
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
    return _read_key(path)


def _read_key(path: Path) -> bytes:
    try:
        key = path.read_bytes().strip()
    except PermissionError as exc:
        raise SealingError(f"cannot read the upload secrets key {path}: {exc.strerror}") from exc
    if len(key) != 44:
        raise SealingError(f"{path} is not a key file (44 characters of url-safe base64 expected)")
    return key


def sealer_of(db: Any) -> Sealer:
    """The sealer a database's stores use: the one `open_database` gave it, else (a SQLite file
    opened without a configuration) the key beside the file, in its state directory."""
    sealer = db.sealer
    if sealer is None:
        if db.path is None:
            raise SealingError(f"no sealing_key_file for {db.name}: open it with "
                               "core.sealing.open_database(config)")
        sealer = db.sealer = Sealer(Path(db.path).parent / KEY_FILENAME)
    return sealer


def open_database(config: Any) -> Any:
    """The configuration's database with the configuration's sealer attached."""
    from core.db import Database

    db = Database.from_config(config)
    db.sealer = Sealer.from_config(config)
    return db
