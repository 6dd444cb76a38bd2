"""Composes: their lifecycle, logs, depsolved packages, manifests, artifacts and upload entries.

The API records a compose WAITING; the pipeline drives it RUNNING → FINISHED or FAILED through
this module and nothing else, so there is exactly one place that knows what a state change means.

Durability: every change is one database transaction (SQLite: WAL, synchronous=FULL; see `core.db`), so an
answered request survives a `kill -9`.  Robustness: listings read only plain columns and skip a
row whose columns are damaged (logging it), so one bad record never breaks `compose/status/*`;
reading that one compose raises `DamagedCompose`, which the API reports for it alone.

Files: each compose has a directory `<artifacts_path>/<id>/` holding the image file.  The compose
log is in the database (`compose_logs`), appended by whichever machine runs a step; the build
worker keeps osbuild's output in a local file and ships it in as it grows (`ship_log`).
"""

from __future__ import annotations

import json
import logging
import shutil
import time
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core import sealing
from core.artifacts import Artifacts, ArtifactsUnavailable, DirectoryArtifacts
from core.artifacts import from_config as artifacts_from_config
from core.db import Database, Row
from core.tables import composes

log = logging.getLogger(__name__)

WAITING, RUNNING, FINISHED, FAILED = "WAITING", "RUNNING", "FINISHED", "FAILED"
STATES = (WAITING, RUNNING, FINISHED, FAILED)
UPLOAD_STATES = ("WAITING", "RUNNING", "FINISHED", "FAILED", "CANCELLED")
LOG_NAME = "osbuild.log"

class ComposeStoreError(Exception):
    """Base of this module's errors."""


class UnknownCompose(ComposeStoreError, KeyError):
    def __init__(self, compose_id: str):
        super().__init__(compose_id)
        self.compose_id = compose_id


class DamagedCompose(ComposeStoreError, ValueError):
    """The stored record cannot be read; only this compose is affected."""

    def __init__(self, compose_id: str, reason: str):
        super().__init__(f"compose {compose_id} has a damaged record: {reason}")
        self.compose_id = compose_id
        self.reason = reason


class WrongState(ComposeStoreError, ValueError):
    def __init__(self, compose_id: str, state: str):
        super().__init__(f"compose {compose_id} is {state}")
        self.compose_id = compose_id
        self.state = state


@dataclass(frozen=True)
class ComposeSummary:
    """What listings show; built from plain columns only (cheap, and immune to a damaged record)."""

    id: str
    blueprint_name: str
    blueprint_version: str
    compose_type: str
    queue_status: str
    job_created: float
    job_started: float | None
    job_finished: float | None
    image_size: int


@dataclass(frozen=True)
class Compose(ComposeSummary):
    """A whole compose record.

    `blueprint` is the blueprint as composed (a dict); `uploads` are the upload requests given at
    POST time; `test_mode` is 0, 1 (fake FAILED) or 2 (fake FINISHED).
    """

    blueprint: dict[str, Any] = field(default_factory=dict)
    distro: str = ""
    arch: str = ""
    size: int = 0
    ostree: dict[str, Any] = field(default_factory=dict)
    upload_requests: list[dict[str, Any]] = field(default_factory=list)
    test_mode: int = 0
    image_filename: str = ""
    mime_type: str = "application/octet-stream"
    error: str = ""
    cancel_requested: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    # why it failed, as a Weldr error ({"id": "DepsolveError", "msg": ...}) when the failing step
    # knew one; POST /compose answers with it when the failure comes while it still waits
    failure: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Upload:
    id: str
    compose_id: str
    target: str
    image_name: str
    settings: dict[str, Any]
    status: str
    progress: float
    created: float
    started: float | None
    finished: float | None
    error: str
    result: dict[str, Any]


def _summary(row: Any) -> ComposeSummary:
    """A listing entry, or ValueError when a column holds something no writer of ours writes."""
    status = row["queue_status"]
    if status not in STATES:
        raise ValueError(f"unknown queue_status {status!r}")
    values = []
    for key in ("job_created", "job_started", "job_finished"):
        v = row[key]
        if v is not None and not isinstance(v, (int, float)):
            raise ValueError(f"{key} is not a number")
        values.append(None if v is None else float(v))
    if values[0] is None:
        raise ValueError("job_created is missing")
    if not isinstance(row["image_size"], int):
        raise ValueError("image_size is not an integer")
    return ComposeSummary(row["id"], str(row["blueprint_name"]), str(row["blueprint_version"]),
                          str(row["compose_type"]), status, values[0], values[1], values[2],
                          row["image_size"])


def _locked(conn: Any, compose_id: str) -> Row | None:
    """The compose's row, locked until the transaction ends (`FOR UPDATE` on PostgreSQL; SQLite's
    write transaction locks the whole file): a state change reads and writes it without another
    process changing it in between."""
    return conn.execute(composes.select().where(composes.c.id == compose_id)
                        .with_for_update()).fetchone()


class ComposeStore:
    """Composes over one database and one artifacts directory.

    Cheap to construct; hold one per process or build one per request, as convenient.
    """

    def __init__(self, db: Database, artifacts_dir: Path, artifacts: Artifacts | None = None):
        self.db = db
        self.artifacts_dir = Path(artifacts_dir)
        # where images are kept for good; `artifacts_dir` stays this machine's working directory
        self.artifacts: Artifacts = artifacts or DirectoryArtifacts(self.artifacts_dir)

    @property
    def sealer(self) -> sealing.Sealer:
        """How upload settings are stored sealed; looked up when first needed, so a store that
        never touches uploads needs no key."""
        return sealing.sealer_of(self.db)

    @classmethod
    def from_config(cls, config: Any, db: Database | None = None) -> "ComposeStore":
        return cls(db or sealing.open_database(config), config.artifacts_path,
                   artifacts_from_config(config))

    def seal_clear_settings(self) -> int:
        """Seal upload settings written in clear before sealing existed, and drop the copy of
        them older records kept; the number of rows changed. Run once at the API's start."""
        changed = 0
        with self.db.transaction() as conn:
            for row in conn.execute("SELECT id, settings FROM compose_uploads"
                                    " WHERE settings NOT LIKE ?", (sealing.PREFIX + "%",)).fetchall():
                conn.execute("UPDATE compose_uploads SET settings = ? WHERE id = ?",
                             (self.sealer.seal(row["settings"]), row["id"]))
                changed += 1
            for row in conn.execute("SELECT id, record FROM composes WHERE record LIKE ?",
                                    ('%"settings"%',)).fetchall():
                try:
                    record = json.loads(row["record"])
                except ValueError:
                    continue  # a damaged record fails its own requests; leave it as it is
                requests = record.get("upload_requests") if isinstance(record, dict) else None
                if not isinstance(requests, list) or not any(
                        isinstance(u, dict) and "settings" in u for u in requests):
                    continue
                record["upload_requests"] = [{k: v for k, v in u.items() if k != "settings"}
                                             if isinstance(u, dict) else u for u in requests]
                conn.execute("UPDATE composes SET record = ? WHERE id = ?",
                             (json.dumps(record), row["id"]))
                changed += 1
        return changed

    # --- paths ------------------------------------------------------------------------------

    def compose_dir(self, compose_id: str) -> Path:
        """`<artifacts>/<id>/`; the id is canonicalised so no caller can escape the directory."""
        return self.artifacts_dir / str(uuid.UUID(compose_id))

    def log_path(self, compose_id: str) -> Path:
        """The build worker's own copy of osbuild's output, shipped into the log as it grows."""
        return self.compose_dir(compose_id) / "logs" / LOG_NAME

    def image_path(self, compose: Compose) -> Path | None:
        if not compose.image_filename:
            return None
        return self.compose_dir(compose.id) / Path(compose.image_filename).name

    # --- creating ---------------------------------------------------------------------------

    def create(self, *, blueprint: dict[str, Any], compose_type: str, distro: str, arch: str,
               size: int = 0, image_filename: str = "",
               mime_type: str = "application/octet-stream", ostree: dict[str, Any] | None = None,
               upload_requests: Iterable[dict[str, Any]] = (), test_mode: int = 0,
               queued: bool = False, options: dict[str, Any] | None = None,
               now: float | None = None) -> Compose:
        """Record a new compose, WAITING; in test mode 1/2 it is stored FAILED/FINISHED at once
        (osbuild-composer's way), unless `queued`: then it waits, like any compose, for the
        pipeline's test step to end it (what the queue benchmark submits).

        Each upload request (`{"provider"/"target", "image_name", "settings"}`) becomes an upload
        entry WAITING; a compose stored over at once has nothing to upload, so its uploads are
        stored in its final state (osbuild-composer shows them so), never left WAITING.
        """
        compose_id = str(uuid.uuid4())
        now = time.time() if now is None else now
        status = WAITING if queued else {1: FAILED, 2: FINISHED}.get(test_mode, WAITING)
        started = finished = now if status != WAITING else None
        uploads = [dict(u) for u in upload_requests]
        record = {
            "blueprint": blueprint, "distro": distro, "arch": arch, "size": int(size),
            "ostree": ostree or {}, "test_mode": test_mode,
            # which targets, for the pipeline; their settings (credentials) only in compose_uploads
            "upload_requests": [{k: v for k, v in u.items() if k != "settings"} for u in uploads],
            "image_filename": image_filename, "mime_type": mime_type, "error": "",
            "options": options or {},
        }
        image_size = int(size) if status == FINISHED else 0
        insert = ("INSERT INTO composes (id, blueprint_name, blueprint_version, compose_type,"
                  " queue_status, job_created, job_started, job_finished, image_size, record)"
                  " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING *")
        values = (compose_id, blueprint.get("name", ""), blueprint.get("version", ""),
                  compose_type, status, now, started, finished, image_size, json.dumps(record))
        if not uploads:
            row = self._write_bumping(insert, values)
        else:
            with self.db.transaction() as conn:
                row = conn.execute(insert, values).fetchone()
                for req in uploads:
                    self._insert_upload(conn, compose_id, req, now, status=status)
                self._bump(conn)
        assert row is not None
        return self._compose(compose_id, row)

    def _insert_upload(self, conn: Any, compose_id: str, req: dict[str, Any], now: float,
                       status: str = WAITING) -> str:
        upload_id = str(uuid.uuid4())
        conn.execute(
            "INSERT INTO compose_uploads (id, compose_id, target, image_name, settings, status,"
            " created, finished, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (upload_id, compose_id, req.get("provider") or req.get("target") or "",
             req.get("image_name", ""), self.sealer.seal(json.dumps(req.get("settings") or {})),
             status, now, None if status == WAITING else now,
             "the compose failed (test mode): nothing was uploaded" if status == FAILED else None))
        return upload_id

    @staticmethod
    def _bump(conn: Any) -> None:
        conn.execute("UPDATE compose_generation SET value = value + 1 WHERE one = 1")

    def _write_bumping(self, write: str, params: tuple[Any, ...]) -> Row | None:
        """Run `write` (an INSERT or UPDATE of one compose ending in `RETURNING`) and, when it
        wrote a row, bump the generation; the row as written, or None when nothing matched.

        On PostgreSQL the two writes are one statement (a `WITH` whose first part is the write
        and whose second bumps only if the first returned a row), committed by itself when no
        transaction is open: 1 round trip instead of 4 (BEGIN, write, bump, COMMIT), and the
        generation row is locked only for that statement.  SQLite has no writing `WITH`: the two
        statements share a transaction there (no round trips to save).
        """
        if self.db.dialect == "postgresql":
            rows = self.db.execute_returning(
                f"WITH changed AS ({write}), bumped AS (UPDATE compose_generation"
                " SET value = value + 1 WHERE one = 1 AND EXISTS (SELECT 1 FROM changed))"
                " SELECT * FROM changed", params)
            return rows[0] if rows else None
        with self.db.transaction() as conn:
            row = conn.execute(write, params).fetchone()
            if row is not None:
                self._bump(conn)
        return row

    def generation(self) -> int:
        """Grows with every change to any compose or upload; listings cache on it."""
        row = self.db.query_one("SELECT value FROM compose_generation WHERE one = 1")
        return int(row["value"]) if row else 0

    # --- reading ----------------------------------------------------------------------------

    def get(self, compose_id: str) -> Compose:
        row = self.db.query_one("SELECT * FROM composes WHERE id = ?", (compose_id,))
        if row is None:
            raise UnknownCompose(compose_id)
        return self._compose(compose_id, row)

    @staticmethod
    def _compose(compose_id: str, row: Row) -> Compose:
        try:
            summary = _summary(row)
            record = json.loads(row["record"])
            if not isinstance(record, dict) or not isinstance(record.get("blueprint"), dict):
                raise ValueError("record is not an object with a blueprint")
            return Compose(
                **summary.__dict__,
                blueprint=record["blueprint"], distro=str(record.get("distro", "")),
                arch=str(record.get("arch", "")), size=int(record.get("size") or 0),
                ostree=dict(record.get("ostree") or {}),
                upload_requests=list(record.get("upload_requests") or []),
                test_mode=int(record.get("test_mode") or 0),
                image_filename=str(record.get("image_filename") or ""),
                mime_type=str(record.get("mime_type") or "application/octet-stream"),
                error=str(record.get("error") or ""),
                cancel_requested=bool(row["cancel_requested"]),
                options=dict(record.get("options") or {}),
                failure=dict(record.get("failure") or {}))
        except (ValueError, TypeError, KeyError) as exc:
            raise DamagedCompose(compose_id, str(exc)) from exc

    def exists(self, compose_id: str) -> bool:
        return self.db.query_one("SELECT 1 FROM composes WHERE id = ?", (compose_id,)) is not None

    def summaries(self, *, ids: Iterable[str] | None = None,
                  statuses: Iterable[str] | None = None, blueprint: str | None = None,
                  compose_type: str | None = None) -> list[ComposeSummary]:
        """Listing entries sorted by id (osbuild-composer's order); damaged rows are skipped."""
        sql = ("SELECT id, blueprint_name, blueprint_version, compose_type, queue_status,"
               " job_created, job_started, job_finished, image_size FROM composes")
        where, params = [], []
        if ids is not None:
            ids = list(ids)
            where.append(f"id IN ({','.join('?' * len(ids))})" if ids else "1 = 0")
            params += ids
        if statuses is not None:
            statuses = list(statuses)
            where.append(f"queue_status IN ({','.join('?' * len(statuses))})" if statuses else "1 = 0")
            params += statuses
        if blueprint is not None:
            where.append("blueprint_name = ?")
            params.append(blueprint)
        if compose_type is not None:
            where.append("compose_type = ?")
            params.append(compose_type)
        if where:
            sql += " WHERE " + " AND ".join(where)
        sql += " ORDER BY id"
        out = []
        for row in self.db.query(sql, tuple(params)):
            try:
                out.append(_summary(row))
            except (ValueError, TypeError) as exc:
                log.warning("skipping compose %s in a listing: damaged record: %s", row["id"], exc)
        return out

    def ids_by_status(self, status: str) -> list[str]:
        return [r["id"] for r in self.db.query(
            "SELECT id FROM composes WHERE queue_status = ? ORDER BY job_created", (status,))]

    # --- lifecycle (the pipeline's side) ----------------------------------------------------

    def _set_state(self, compose_id: str, allowed_from: tuple[str, ...], status: str,
                   columns: dict[str, Any], record_changes: dict[str, Any] | None = None) -> bool:
        sets = ["queue_status = ?"] + [f"{k} = ?" for k in columns]
        params: list[Any] = [status, *columns.values()]
        if not record_changes:
            # one conditional UPDATE instead of read-lock-then-write: on PostgreSQL it waits for
            # a concurrent writer of the row and then checks the state again
            if self._write_bumping(
                    f"UPDATE composes SET {', '.join(sets)} WHERE id = ?"
                    f" AND queue_status IN ({', '.join('?' * len(allowed_from))}) RETURNING id",
                    (*params, compose_id, *allowed_from)) is not None:
                return True
            if not self.exists(compose_id):
                raise UnknownCompose(compose_id)
            return False
        with self.db.transaction() as conn:
            row = _locked(conn, compose_id)
            if row is None:
                raise UnknownCompose(compose_id)
            if row["queue_status"] not in allowed_from:
                return False
            if record_changes:
                try:
                    record = json.loads(row["record"])
                except ValueError as exc:
                    raise DamagedCompose(compose_id, str(exc)) from exc
                record.update(record_changes)
                sets.append("record = ?")
                params.append(json.dumps(record))
            conn.execute(f"UPDATE composes SET {', '.join(sets)} WHERE id = ?",
                         (*params, compose_id))
            self._bump(conn)
        return True

    def mark_running(self, compose_id: str, *, now: float | None = None) -> bool:
        """WAITING → RUNNING. False when the compose is no longer WAITING (e.g. cancelled):
        the caller must then not build it."""
        return self._set_state(compose_id, (WAITING,), RUNNING,
                               {"job_started": time.time() if now is None else now})

    def start(self, compose_id: str, *, now: float | None = None) -> Compose | None:
        """WAITING → RUNNING unless a cancel was requested, and the compose as it is then; None
        (nothing changed) for any other case, which the caller sorts out with `get`.

        `mark_running` and `get` in one statement: starting a step is on every compose's path.
        """
        row = self._write_bumping(
            "UPDATE composes SET queue_status = ?, job_started = ?"
            " WHERE id = ? AND queue_status = ? AND cancel_requested = 0 RETURNING *",
            (RUNNING, time.time() if now is None else now, compose_id, WAITING))
        return None if row is None else self._compose(compose_id, row)

    def mark_finished(self, compose_id: str, *, image_size: int | None = None,
                      now: float | None = None) -> bool:
        """RUNNING → FINISHED. `image_size` defaults to the requested size (what OC shows)."""
        now = time.time() if now is None else now
        columns: dict[str, Any] = {"job_finished": now}
        if image_size is None:
            compose = self.get(compose_id)
            image_size = compose.size
        columns["image_size"] = int(image_size)
        return self._set_state(compose_id, (RUNNING,), FINISHED, columns)

    def mark_failed(self, compose_id: str, message: str, *, failure: dict[str, str] | None = None,
                    now: float | None = None) -> bool:
        """WAITING or RUNNING → FAILED; the message is kept and appended to the compose log.

        `failure` is the Weldr error behind it (`{"id", "msg"}`) when the caller knows one.
        """
        now = time.time() if now is None else now
        with self.db.transaction() as conn:
            row = _locked(conn, compose_id)
            if row is None:
                raise UnknownCompose(compose_id)
            columns = {"job_finished": now, "job_started": row["job_started"] or now}
            changed = self._set_state(compose_id, (WAITING, RUNNING), FAILED, columns,
                                      {"error": message, **({"failure": failure} if failure else {})})
            if changed and message:  # before the commit: whoever sees FAILED finds the reason
                self._log_reason(compose_id, message)
        return changed

    def _log_reason(self, compose_id: str, message: str) -> None:
        """End the log with the failure's reason, once: the step that failed may have written
        this very sentence last already (osbuild's runner does)."""
        line = message if message.endswith("\n") else message + "\n"
        try:
            if not self._ends_with_line(compose_id, line):
                self.append_log(compose_id, line)
        except OSError as exc:  # a full disk must not keep the compose from failing
            log.warning("compose %s: could not log its failure: %s", compose_id, exc)

    def _ends_with_line(self, compose_id: str, line: str) -> bool:
        """The log's last line is exactly `line` (not merely a line ending with the same words)."""
        tail = self.read_log(compose_id, tail_bytes=len(line.encode()) + 1)
        return tail == line or tail.endswith("\n" + line)

    def request_cancel(self, compose_id: str) -> str:
        """Cancel: a WAITING or RUNNING compose becomes FAILED now, for good.

        As osbuild-composer's job queue does: the cancel is decided here, in one transaction
        with the state, and whatever a worker finds afterwards (osbuild still running, or done
        a moment later) cannot turn the compose FINISHED again (`mark_finished` only moves
        RUNNING).  A compose that finished first is not WAITING or RUNNING any more: the
        cancel is refused (WrongState → BuildInWrongState).  The worker stops osbuild when its
        heartbeat sees the flag.  Returns the state found.
        """
        with self.db.transaction() as conn:
            row = _locked(conn, compose_id)
            if row is None:
                raise UnknownCompose(compose_id)
            state = row["queue_status"]
            if state not in (WAITING, RUNNING):
                raise WrongState(compose_id, state)
            conn.execute("UPDATE composes SET cancel_requested = 1 WHERE id = ?", (compose_id,))
            self.mark_failed(compose_id, "")
            self._bump(conn)
        self.append_log(compose_id, "compose cancelled before it started\n" if state == WAITING
                        else "compose cancelled\n")
        return state

    def cancel_requested(self, compose_id: str) -> bool:
        row = self.db.query_one("SELECT cancel_requested FROM composes WHERE id = ?", (compose_id,))
        if row is None:
            raise UnknownCompose(compose_id)
        return bool(row["cancel_requested"])

    def set_progress(self, compose_id: str, progress: dict[str, Any] | None) -> None:
        """Progress is advisory and changes often: no generation bump, listings do not show it."""
        self.db.execute("UPDATE composes SET progress = ? WHERE id = ?",
                        (json.dumps(progress) if progress is not None else None, compose_id))

    def progress(self, compose_id: str) -> dict[str, Any] | None:
        row = self.db.query_one("SELECT progress FROM composes WHERE id = ?", (compose_id,))
        try:
            return json.loads(row["progress"]) if row and row["progress"] else None
        except ValueError:
            return None

    def append_log(self, compose_id: str, text: str) -> None:
        """Add to the compose log, in the database: an API on any machine shows it at once."""
        text = text.replace("\x00", "\ufffd")  # PostgreSQL text holds no NUL
        if not text:
            return
        with self.db.transaction() as conn:
            if _locked(conn, compose_id) is None:  # appends of one compose take turns
                return  # deleted while something still reported on it: nothing to log to
            last = conn.execute("SELECT start, size FROM compose_logs WHERE compose_id = ?"
                                " ORDER BY start DESC LIMIT 1", (compose_id,)).fetchone()
            start = last["start"] + last["size"] if last else 0
            conn.execute("INSERT INTO compose_logs (compose_id, start, size, data)"
                         " VALUES (?, ?, ?, ?)", (compose_id, start, len(text.encode()), text))

    def read_log(self, compose_id: str, tail_bytes: int | None = None) -> str:
        """The log, or its last `tail_bytes` bytes (reading only the chunks that hold them)."""
        if tail_bytes is None:
            rows = self.db.query("SELECT data FROM compose_logs WHERE compose_id = ? ORDER BY start",
                                 (compose_id,))
            return "".join(r["data"] for r in rows)
        if tail_bytes <= 0:
            return ""
        rows = self.db.query(
            "SELECT data FROM compose_logs WHERE compose_id = ? AND start + size > (SELECT"
            " COALESCE(MAX(start + size), 0) FROM compose_logs WHERE compose_id = ?) - ?"
            " ORDER BY start", (compose_id, compose_id, tail_bytes))
        data = "".join(r["data"] for r in rows).encode()
        return data[-tail_bytes:].decode("utf-8", errors="replace")

    def ship_log(self, compose_id: str, path: Path, offset: int, final: bool = False) -> int:
        """Append what a worker's own log file (osbuild's output) gained since `offset`; returns
        the new offset.  Whole lines only until `final`, so no character is split between chunks."""
        try:
            with open(path, "rb") as fh:
                fh.seek(offset)
                data = fh.read()
        except FileNotFoundError:
            return offset
        if not final:
            data = data[:data.rfind(b"\n") + 1]
        if data:
            self.append_log(compose_id, data.decode("utf-8", errors="replace"))
        return offset + len(data)

    def record_plan(self, compose_id: str, plan: dict[str, Any]) -> None:
        """What the build needs besides the manifest (exports, checkpoints, image file name)."""
        self._set_payload(compose_id, "plan", plan)

    def plan(self, compose_id: str) -> dict[str, Any] | None:
        return self._payload(compose_id, "plan")

    def record_packages(self, compose_id: str, packages: dict[str, list[dict[str, Any]]]) -> None:
        """Depsolved packages per pipeline name (e.g. {"build": [...], "os": [...]})."""
        self._set_payload(compose_id, "packages", packages)

    def record_manifest(self, compose_id: str, manifest: dict[str, Any]) -> None:
        self._set_payload(compose_id, "manifest", manifest)

    def _set_payload(self, compose_id: str, column: str, value: Any) -> None:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM composes WHERE id = ?", (compose_id,)).fetchone() is None:
                raise UnknownCompose(compose_id)
            conn.execute(f"INSERT INTO compose_payloads (compose_id, {column}) VALUES (?, ?)"
                         f" ON CONFLICT (compose_id) DO UPDATE SET {column} = excluded.{column}",
                         (compose_id, json.dumps(value)))

    def packages(self, compose_id: str) -> dict[str, list[dict[str, Any]]]:
        return self._payload(compose_id, "packages") or {}

    def manifest(self, compose_id: str) -> dict[str, Any] | None:
        return self._payload(compose_id, "manifest")

    def _payload(self, compose_id: str, column: str) -> Any:
        row = self.db.query_one(f"SELECT {column} FROM compose_payloads WHERE compose_id = ?",
                                (compose_id,))
        if row is None or row[column] is None:
            return None
        try:
            return json.loads(row[column])
        except ValueError as exc:
            raise DamagedCompose(compose_id, f"{column}: {exc}") from exc

    def delete(self, compose_id: str) -> None:
        """Only FINISHED or FAILED composes are deleted (WrongState otherwise); files go too."""
        with self.db.transaction() as conn:
            row = _locked(conn, compose_id)
            if row is None:
                raise UnknownCompose(compose_id)
            if row["queue_status"] not in (FINISHED, FAILED):
                raise WrongState(compose_id, row["queue_status"])
            conn.execute("DELETE FROM composes WHERE id = ?", (compose_id,))
            self._bump(conn)
        try:
            self.artifacts.delete(compose_id)
        except ArtifactsUnavailable as exc:  # the compose is gone; its objects wait for a retry
            log.warning("compose %s deleted, but its files stay in %s: %s", compose_id,
                        self.artifacts.name, exc.msg)
        shutil.rmtree(self.compose_dir(compose_id), ignore_errors=True)

    # --- uploads ----------------------------------------------------------------------------

    def add_upload(self, compose_id: str, target: str, image_name: str,
                   settings: dict[str, Any]) -> str:
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM composes WHERE id = ?", (compose_id,)).fetchone() is None:
                raise UnknownCompose(compose_id)
            upload_id = self._insert_upload(conn, compose_id, {
                "provider": target, "image_name": image_name, "settings": settings}, time.time())
            self._bump(conn)
        return upload_id

    def update_upload(self, upload_id: str, *, status: str | None = None,
                      progress: float | None = None, error: str | None = None,
                      result: dict[str, Any] | None = None, image_name: str | None = None,
                      settings: dict[str, Any] | None = None) -> None:
        """Set what changed; RUNNING stamps `started`, a final state stamps `finished`.

        `progress` is a fraction 0.0–1.0; `image_name`/`settings` serve upload/reset.
        """
        if status is not None and status not in UPLOAD_STATES:
            raise ValueError(f"unknown upload status {status}")
        sets: dict[str, Any] = {}
        now = time.time()
        if image_name is not None:
            sets["image_name"] = image_name
        if settings is not None:
            sets["settings"] = self.sealer.seal(json.dumps(settings))
        if status is not None:
            sets["status"] = status
            if status == "RUNNING":
                sets["started"] = now
            elif status in ("FINISHED", "FAILED", "CANCELLED"):
                sets["finished"] = now
        if progress is not None:
            sets["progress"] = float(progress)
        if error is not None:
            sets["error"] = error
        if result is not None:
            sets["result"] = json.dumps(result)
        if not sets:
            return
        with self.db.transaction() as conn:
            cur = conn.execute(f"UPDATE compose_uploads SET {', '.join(f'{k} = ?' for k in sets)}"
                               " WHERE id = ?", (*sets.values(), upload_id))
            if cur.rowcount == 0:
                raise KeyError(upload_id)
            self._bump(conn)

    def delete_upload(self, upload_id: str) -> bool:
        with self.db.transaction() as conn:
            gone = conn.execute("DELETE FROM compose_uploads WHERE id = ?",
                                (upload_id,)).rowcount > 0
            if gone:
                self._bump(conn)
        return gone

    def uploads(self, compose_id: str) -> list[Upload]:
        return self._uploads("WHERE compose_id = ?", (compose_id,))

    UPLOADS_BY_ID = 100  # `uploads_of` more compose ids than this: all uploads, filtered here

    def uploads_of(self, compose_ids: Iterable[str] | None = None) -> dict[str, list[Upload]]:
        """Uploads grouped by compose, in one query (listings of thousands of composes)."""
        if compose_ids is None:
            rows = self._uploads("", ())
        else:
            ids = list(compose_ids)
            if len(ids) > self.UPLOADS_BY_ID:
                # a listing of thousands: reading every upload once is cheaper than thousands of
                # parameters (SQLite bounds their number; psycopg parses each statement anew)
                rows = self._uploads("", (), of=set(ids))
            else:
                rows = self._uploads(f"WHERE compose_id IN ({','.join('?' * len(ids))})",
                                     tuple(ids)) if ids else []
        grouped: dict[str, list[Upload]] = {}
        for u in rows:
            grouped.setdefault(u.compose_id, []).append(u)
        return grouped

    def upload(self, upload_id: str) -> Upload:
        rows = self._uploads("WHERE id = ?", (upload_id,))
        if not rows:
            raise KeyError(upload_id)
        return rows[0]

    def _uploads(self, where: str, params: tuple, of: set[str] | None = None) -> list[Upload]:
        """The uploads `where` selects (only those of the composes `of`, when given)."""
        out = []
        for r in self.db.query(f"SELECT * FROM compose_uploads {where} ORDER BY created, id",
                               params):
            if of is not None and r["compose_id"] not in of:
                continue
            try:
                out.append(Upload(r["id"], r["compose_id"], r["target"], r["image_name"],
                                  json.loads(self.sealer.open(r["settings"])), r["status"],
                                  float(r["progress"]),
                                  float(r["created"]), r["started"], r["finished"],
                                  r["error"] or "", json.loads(r["result"] or "{}")))
            except (ValueError, TypeError) as exc:
                log.warning("skipping damaged upload %s: %s", r["id"], exc)
        return out
