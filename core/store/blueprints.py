"""Blueprints with their history: commits, the workspace, revisions (tags), undo and diff.

osbuild-composer keeps blueprints as a map plus a list of changes per name; lorax-composer kept a
git repository. We keep three tables in the shared database (`core.db`):

* `blueprint_changes`: every commit ever made (40-hex id, UTC timestamp, message, revision, the
  blueprint as committed), in commit order. Deleting a blueprint keeps these, as both servers do,
  so `changes` and `undo` still work on a deleted blueprint.
* `blueprints`: the committed blueprint per name (what `list` shows and composes build).
* `blueprint_workspace`: the uncommitted working copy per name (what `info` prefers).

Every write is one transaction holding the row it reads (`FOR UPDATE`; SQLite's write lock), so a
version bump reads and writes the previous version atomically even with several API processes.
`list` reads names only, never bodies, so one damaged stored record cannot break it; reading that record raises `DamagedBlueprint` for it alone.
"""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from core import blueprint as model
from core.blueprint import Blueprint, BlueprintError
from core.db import Database
from core.tables import blueprint_changes, blueprints

log = logging.getLogger(__name__)

NEWEST = "NEWEST"
WORKSPACE = "WORKSPACE"


class DamagedBlueprint(BlueprintError):
    """A stored record that no longer parses; reported for that blueprint only."""


@dataclass(frozen=True)
class Change:
    commit: str
    message: str
    revision: int | None
    timestamp: str

    def weldr(self) -> dict[str, Any]:
        return {"commit": self.commit, "message": self.message, "revision": self.revision,
                "timestamp": self.timestamp}


def new_commit_id() -> str:
    return secrets.token_hex(20)


def _now() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


def _load(name: str, body: str, what: str) -> Blueprint:
    try:
        return model.from_stored(body)
    except (ValueError, TypeError, RecursionError) as exc:
        log.error("damaged %s record of blueprint %r: %s", what, name, exc)
        raise DamagedBlueprint(f"{name}: the stored {what} copy is damaged and cannot be read "
                               f"({exc})") from exc


def unknown_commit_msg(spec: str) -> str:
    """osbuild-composer's (libgit2-flavoured) message for a revision it cannot find."""
    return f"ggit-error: revspec '{spec}' not found (-3)"


class BlueprintStore:
    """The blueprint part of the store; all methods take and return plain blueprint dicts."""

    def __init__(self, db: Database):
        self.db = db

    # --- reading ------------------------------------------------------------------------------

    def list_names(self) -> list[str]:
        """Committed blueprint names, byte-sorted (Go's sort.Strings order)."""
        # byte order: the column's collation on both databases (migration 0003)
        return [r["name"] for r in self.db.query("SELECT name FROM blueprints ORDER BY name")]

    def list_page(self, limit: int, offset: int) -> tuple[int, int, list[str]]:
        """(total, clamped offset, names) of one page of `list_names`, without reading them all."""
        row = self.db.query_one("SELECT COUNT(*) AS n FROM blueprints")
        total = row["n"] if row is not None else 0
        offset = min(offset, total)
        limit = min(limit, total - offset)
        rows = self.db.query("SELECT name FROM blueprints ORDER BY name LIMIT ? OFFSET ?",
                             (limit, offset))
        return total, offset, [r["name"] for r in rows]

    def get_committed(self, name: str) -> Blueprint | None:
        row = self.db.query_one("SELECT body FROM blueprints WHERE name = ?", (name,))
        return None if row is None else _load(name, row["body"], "committed")

    def get_workspace(self, name: str) -> Blueprint | None:
        row = self.db.query_one("SELECT body FROM blueprint_workspace WHERE name = ?", (name,))
        return None if row is None else _load(name, row["body"], "workspace")

    def get(self, name: str) -> tuple[Blueprint, bool] | None:
        """The blueprint `info` shows: the workspace copy if any, else the committed one.

        `changed` is true when a workspace copy exists and differs from the committed one (or
        there is no committed one).
        """
        committed = self.get_committed(name)
        workspace = self.get_workspace(name)
        if workspace is not None:
            return workspace, workspace != committed
        if committed is not None:
            return committed, False
        return None

    def changes(self, name: str) -> list[Change] | None:
        """Commits of `name`, newest first; None when it never had one."""
        rows = self.db.query("SELECT commit_id, message, revision, timestamp FROM blueprint_changes"
                             " WHERE name = ? ORDER BY seq DESC", (name,))
        if not rows:
            return None
        return [Change(r["commit_id"], r["message"], r["revision"], r["timestamp"]) for r in rows]

    def change(self, name: str, commit: str) -> tuple[Change, Blueprint]:
        """One commit and the blueprint as it was committed then."""
        if self.db.query_one("SELECT 1 FROM blueprint_changes WHERE name = ? LIMIT 1",
                             (name,)) is None:
            raise BlueprintError("Unknown blueprint", "UnknownCommit")
        row = self.db.query_one("SELECT commit_id, message, revision, timestamp, body FROM"
                                " blueprint_changes WHERE name = ? AND commit_id = ?",
                                (name, commit))
        if row is None:
            raise BlueprintError("Unknown commit", "UnknownCommit")
        try:
            bp = _load(name, row["body"], f"commit {commit}")
        except DamagedBlueprint as exc:
            raise BlueprintError(f"no blueprint found for commit {commit}: {exc.msg}") from exc
        return Change(row["commit_id"], row["message"], row["revision"], row["timestamp"]), bp

    # --- writing ------------------------------------------------------------------------------

    def push(self, bp: Blueprint, message: str | None = None) -> Change:
        """Commit `bp` (after `model.initialize`): bump its version as osbuild-composer does,
        record a change, make it the committed copy and drop the workspace copy."""
        given = bp.get("version") or None
        bp = model.initialize(bp)
        name = bp["name"]
        with self.db.transaction() as conn:
            # the row lock makes concurrent pushes of one blueprint bump its version in turn
            row = conn.execute(blueprints.select().where(blueprints.c.name == name)
                               .with_for_update()).fetchone()
            previous = None
            if row is not None:
                try:
                    previous = model.from_stored(row["body"]).get("version")
                except (ValueError, TypeError):
                    previous = None  # a damaged committed copy is replaced, not bumped
            if previous is not None:
                bp["version"] = model.next_version(given, previous)
            change = Change(new_commit_id(), message or
                            f"Recipe {name}, version {bp['version']} saved.", None, _now())
            body = model.to_json_text(bp)
            conn.execute("INSERT INTO blueprint_changes (name, commit_id, message, timestamp, body)"
                         " VALUES (?, ?, ?, ?, ?)",
                         (name, change.commit, change.message, change.timestamp, body))
            conn.execute("INSERT INTO blueprints (name, commit_id, body) VALUES (?, ?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET commit_id = excluded.commit_id,"
                         " body = excluded.body", (name, change.commit, body))
            conn.execute("DELETE FROM blueprint_workspace WHERE name = ?", (name,))
        return change

    def push_workspace(self, bp: Blueprint) -> None:
        """Save the working copy (no commit, no version bump)."""
        bp = model.initialize(bp)
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO blueprint_workspace (name, body, saved) VALUES (?, ?, ?)"
                         " ON CONFLICT(name) DO UPDATE SET body = excluded.body,"
                         " saved = excluded.saved", (bp["name"], model.to_json_text(bp), time.time()))

    def delete(self, name: str) -> None:
        """Remove the committed and workspace copies; the history stays."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM blueprints WHERE name = ?", (name,)).fetchone() is None:
                raise BlueprintError(f"Unknown blueprint: {name}")
            conn.execute("DELETE FROM blueprints WHERE name = ?", (name,))
            conn.execute("DELETE FROM blueprint_workspace WHERE name = ?", (name,))

    def delete_workspace(self, name: str) -> None:
        with self.db.transaction() as conn:
            cur = conn.execute("DELETE FROM blueprint_workspace WHERE name = ?", (name,))
            if cur.rowcount == 0:
                raise BlueprintError(f"Unknown blueprint: {name}")

    def undo(self, name: str, commit: str) -> Change:
        """Commit the blueprint as it was at `commit` again, as a new change."""
        _, bp = self.change(name, commit)
        return self.push(bp, f"{name}.toml reverted to commit {commit}")

    def tag(self, name: str) -> int:
        """Give the newest commit the next revision number; a tagged newest commit stays as is."""
        with self.db.transaction() as conn:
            if conn.execute("SELECT 1 FROM blueprints WHERE name = ?", (name,)).fetchone() is None:
                raise BlueprintError("Unknown blueprint")
            newest = conn.execute(
                blueprint_changes.select().where(blueprint_changes.c.name == name)
                .order_by(blueprint_changes.c.seq.desc()).limit(1).with_for_update()).fetchone()
            if newest is None:
                raise BlueprintError("No commits for blueprint")
            if newest["revision"] is not None:
                return int(newest["revision"])
            top = conn.execute("SELECT MAX(revision) AS r FROM blueprint_changes WHERE name = ?",
                               (name,)).fetchone()
            revision = int((top and top["r"]) or 0) + 1
            conn.execute("UPDATE blueprint_changes SET revision = ? WHERE seq = ?",
                         (revision, newest["seq"]))
        return revision

    # --- diff ---------------------------------------------------------------------------------

    def _resolve(self, name: str, spec: str) -> Blueprint:
        if spec == NEWEST:
            bp = self.get_committed(name)
        elif spec == WORKSPACE:
            bp = self.get_workspace(name) or self.get_committed(name)
        else:
            row = self.db.query_one("SELECT body FROM blueprint_changes WHERE name = ? AND"
                                    " commit_id = ?", (name, spec))
            if row is None:
                raise BlueprintError(unknown_commit_msg(spec), "UnknownCommit")
            return _load(name, row["body"], f"commit {spec}")
        if bp is None:
            raise BlueprintError(f"Unknown blueprint name: {name}", "UnknownBlueprint", 404)
        return bp

    def diff(self, name: str, from_spec: str, to_spec: str) -> list[dict]:
        """Differences between two states: NEWEST (committed), WORKSPACE (falls back to NEWEST)
        or a commit id of this blueprint."""
        if self.get_committed(name) is None and self.get_workspace(name) is None \
                and self.changes(name) is None:
            raise BlueprintError(f"Unknown blueprint name: {name}", "UnknownBlueprint", 404)
        return model.diff(self._resolve(name, from_spec), self._resolve(name, to_spec))


# --- depsolve and freeze ----------------------------------------------------------------------

# solve(package set (model.package_set), distro or "", architecture or "") -> depsolved packages
Solver = Callable[[dict[str, Any], str, str], list[dict[str, Any]]]


def depsolve(bp: Blueprint, solve: Solver) -> list[dict[str, Any]]:
    """The blueprint's whole transaction as Weldr NEVRAs, sorted by name."""
    deps = solve(model.package_set(bp), bp.get("distro") or "", bp.get("architecture") or "")
    return sorted((model.nevra_entry(d) for d in deps), key=lambda d: (d["name"], d["arch"]))


def freeze(bp: Blueprint, solve: Solver) -> Blueprint:
    deps = solve(model.package_set(bp), bp.get("distro") or "", bp.get("architecture") or "")
    return model.freeze(bp, sorted(deps, key=lambda d: d["name"]))



def get_committed(db: Database, name: str) -> Blueprint | None:
    """The committed blueprint `name` (what POST /compose builds), or None; api-core's entry point.

    Raises DamagedBlueprint (a BlueprintError, id BlueprintsError) for an unreadable record.
    """
    return BlueprintStore(db).get_committed(name)
