"""Upload logs and provider profiles: the parts of uploads the compose store does not hold.

Upload entries themselves (status, settings, result) are rows of `compose_uploads`, owned by
`core.store.composes`; this module adds what only the upload routes and workers need:

- `upload_logs`: the text `upload/log` shows, appended as the upload runs. A separate row per
  upload so a chatty upload never rewrites the compose's upload row, and it goes away with the
  upload (foreign key, ON DELETE CASCADE).
- `upload_profiles`: named settings per provider (`upload/providers/save`), lorax's "profiles".
  They hold credentials: stored sealed (`core.sealing`), only ever read back through
  `uploaders.base.strip_secrets` by the routes, in a database (a file in the state directory, or a
  server) only the service reads (`core.statedir`).
"""

from __future__ import annotations

import json
import time
from typing import Any

from core import sealing
from core.db import Database

LOG_LIMIT = 256 * 1024  # the newest bytes of an upload's log are kept; a log is for people


# --- logs --------------------------------------------------------------------------------------

def append_log(db: Database, upload_id: str, line: str) -> None:
    """Add a line (already free of secrets: callers redact) with a UTC timestamp."""
    stamp = time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime())
    text = f"{stamp} {line.rstrip()}\n"
    with db.transaction() as conn:
        if conn.execute("SELECT 1 FROM compose_uploads WHERE id = ?", (upload_id,)).fetchone() is None:
            return  # the upload was deleted while it ran; nothing to log to
        conn.execute("INSERT INTO upload_logs (upload_id, text) VALUES (?, ?)"
                     " ON CONFLICT(upload_id) DO UPDATE SET text = CASE"
                     " WHEN length(upload_logs.text || excluded.text) > ?"
                     " THEN substr(upload_logs.text || excluded.text,"
                     " length(upload_logs.text || excluded.text) - ? + 1)"
                     " ELSE upload_logs.text || excluded.text END",
                     (upload_id, text, LOG_LIMIT, LOG_LIMIT))


def read_log(db: Database, upload_id: str) -> str:
    row = db.query_one("SELECT text FROM upload_logs WHERE upload_id = ?", (upload_id,))
    return row["text"] if row else ""


def clear_log(db: Database, upload_id: str) -> None:
    with db.transaction() as conn:
        conn.execute("DELETE FROM upload_logs WHERE upload_id = ?", (upload_id,))


# --- profiles ----------------------------------------------------------------------------------

def save_profile(db: Database, provider: str, name: str, settings: dict[str, Any]) -> None:
    """Create or overwrite a profile (lorax overwrites too)."""
    with db.transaction() as conn:
        conn.execute("INSERT INTO upload_profiles (provider, name, settings, saved) VALUES (?, ?, ?, ?)"
                     " ON CONFLICT(provider, name) DO UPDATE SET settings = excluded.settings,"
                     " saved = excluded.saved",
                     (provider, name, sealing.sealer_of(db).seal(json.dumps(settings)), time.time()))


def load_profile(db: Database, provider: str, name: str) -> dict[str, Any] | None:
    row = db.query_one("SELECT settings FROM upload_profiles WHERE provider = ? AND name = ?",
                       (provider, name))
    return json.loads(sealing.sealer_of(db).open(row["settings"])) if row else None


def list_profiles(db: Database, provider: str) -> dict[str, dict[str, Any]]:
    rows = db.query("SELECT name, settings FROM upload_profiles WHERE provider = ? ORDER BY name",
                    (provider,))
    sealer = sealing.sealer_of(db)
    return {r["name"]: json.loads(sealer.open(r["settings"])) for r in rows}


def delete_profile(db: Database, provider: str, name: str) -> bool:
    with db.transaction() as conn:
        cur = conn.execute("DELETE FROM upload_profiles WHERE provider = ? AND name = ?",
                           (provider, name))
    return cur.rowcount > 0


def seal_clear_profiles(db: Database) -> int:
    """Seal profiles saved in clear before sealing existed; the number changed (API start)."""
    sealer = sealing.sealer_of(db)
    with db.transaction() as conn:
        rows = conn.execute("SELECT provider, name, settings FROM upload_profiles"
                            " WHERE settings NOT LIKE ?", (sealing.PREFIX + "%",)).fetchall()
        for r in rows:
            conn.execute("UPDATE upload_profiles SET settings = ? WHERE provider = ? AND name = ?",
                         (sealer.seal(r["settings"]), r["provider"], r["name"]))
    return len(rows)
