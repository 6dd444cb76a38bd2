"""The blueprint store on a real SQLite file, without a server: history, workspace, undo, tag,
diff, deletion, damaged records, reopening, concurrent bumps."""

from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from core.blueprint import BlueprintError
from core.store import blueprints as store_mod
from core.store.blueprints import BlueprintStore, DamagedBlueprint, get_committed
from tests.databases import database_for

COMMIT = re.compile(r"^[0-9a-f]{40}$")
TIMESTAMP = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


@pytest.fixture
def db(tmp_path: Path) -> Any:
    return database_for(tmp_path)


@pytest.fixture
def store(db: Any) -> BlueprintStore:
    return BlueprintStore(db)


def bp(name: str = "web", version: str | None = "0.0.1", *packages: str, **extra) -> dict:
    doc = {"name": name, "packages": [{"name": p, "version": "*"} for p in packages], **extra}
    if version is not None:
        doc["version"] = version
    return doc


def test_push_records_changes_newest_first(store):
    first = store.push(bp("web", "0.0.1", "tmux"))
    second = store.push(bp("web", "0.1.0", "tmux", "httpd"))
    changes = store.changes("web")
    assert [c.commit for c in changes] == [second.commit, first.commit]
    for c in changes:
        assert COMMIT.match(c.commit) and TIMESTAMP.match(c.timestamp) and c.revision is None
    assert changes[0].message == "Recipe web, version 0.1.0 saved."
    assert changes[1].message == "Recipe web, version 0.0.1 saved."
    assert changes[0].weldr() == {"commit": second.commit, "message": "Recipe web, version 0.1.0 saved.",
                                  "revision": None, "timestamp": second.timestamp}
    assert store.changes("nothing") is None


def test_version_bumps_as_osbuild_composer(store):
    store.push(bp("web", None))
    assert store.get_committed("web")["version"] == "0.0.0"
    store.push(bp("web", None))
    assert store.get_committed("web")["version"] == "0.0.1"
    store.push(bp("web", "0.0.1"))
    assert store.get_committed("web")["version"] == "0.0.2"
    store.push(bp("web", "2.0.0"))
    assert store.get_committed("web")["version"] == "2.0.0"
    assert store.changes("web")[0].message == "Recipe web, version 2.0.0 saved."


def test_list_is_sorted_and_ignores_workspace_only(store):
    for name in ("zeta", "Alpha", "beta", "alpha"):
        store.push(bp(name))
    store.push_workspace(bp("only-in-workspace"))
    assert store.list_names() == ["Alpha", "alpha", "beta", "zeta"]


def test_workspace_wins_and_changed_flag(store):
    store.push(bp("web", "0.0.1", "tmux"))
    assert store.get("web") == (store.get_committed("web"), False)
    store.push_workspace(bp("web", "0.0.1", "tmux", "vim"))
    current, changed = store.get("web")
    assert changed is True and [p["name"] for p in current["packages"]] == ["tmux", "vim"]
    # a workspace copy equal to the committed one is not a change
    store.push_workspace(bp("web", "0.0.1", "tmux"))
    assert store.get("web")[1] is False
    store.delete_workspace("web")
    assert store.get("web")[1] is False
    with pytest.raises(BlueprintError, match="^Unknown blueprint: web$"):
        store.delete_workspace("web")
    # workspace-only blueprints are visible to info, and changed
    store.push_workspace(bp("draft"))
    assert store.get("draft")[1] is True
    # committing clears the workspace copy
    store.push_workspace(bp("web", "0.0.1", "tmux", "emacs"))
    store.push(bp("web", "0.0.5", "tmux", "emacs"))
    assert store.get_workspace("web") is None


def test_workspace_does_not_bump_or_commit(store):
    store.push(bp("web", "0.0.1"))
    store.push_workspace(bp("web", "0.0.1", "vim"))
    assert store.get_workspace("web")["version"] == "0.0.1"
    assert len(store.changes("web")) == 1


def test_change_and_undo(store):
    first = store.push(bp("web", "0.0.1", "tmux"))
    store.push(bp("web", "0.0.2", "tmux", "vim"))
    change, old = store.change("web", first.commit)
    assert change.commit == first.commit and old["version"] == "0.0.1"
    undone = store.undo("web", first.commit)
    assert undone.message == f"web.toml reverted to commit {first.commit}"
    assert [p["name"] for p in store.get_committed("web")["packages"]] == ["tmux"]
    assert store.get_committed("web")["version"] == "0.0.1"
    assert len(store.changes("web")) == 3
    with pytest.raises(BlueprintError) as info:
        store.change("web", "0" * 40)
    assert (info.value.error_id, info.value.msg) == ("UnknownCommit", "Unknown commit")
    with pytest.raises(BlueprintError) as info:
        store.undo("nothing", first.commit)
    assert (info.value.error_id, info.value.msg) == ("UnknownCommit", "Unknown blueprint")


def test_undo_to_same_version_bumps(store):
    first = store.push(bp("web", "0.0.1", "tmux"))
    store.push(bp("web", "0.0.1", "vim"))  # bumped to 0.0.2
    store.undo("web", first.commit)       # 0.0.1 differs from 0.0.2: kept
    assert store.get_committed("web")["version"] == "0.0.1"
    store.undo("web", first.commit)       # same as current: bumped
    assert store.get_committed("web")["version"] == "0.0.2"


def test_tag_revisions(store):
    store.push(bp("web"))
    assert store.tag("web") == 1
    assert store.tag("web") == 1  # newest already tagged: no new revision
    store.push(bp("web"))
    assert store.tag("web") == 2
    assert [c.revision for c in store.changes("web")] == [2, 1]
    with pytest.raises(BlueprintError, match="^Unknown blueprint$"):
        store.tag("nothing")


def test_delete_keeps_history(store):
    first = store.push(bp("web", "0.0.3"))
    store.push_workspace(bp("web", "0.0.3", "vim"))
    store.delete("web")
    assert store.list_names() == [] and store.get("web") is None
    assert len(store.changes("web")) == 1
    with pytest.raises(BlueprintError, match="^Unknown blueprint: web$"):
        store.delete("web")
    # undo brings it back from history; a fresh push starts without a bump
    store.undo("web", first.commit)
    assert store.get_committed("web")["version"] == "0.0.3"
    store.delete("web")
    store.push(bp("web", "0.0.3"))
    assert store.get_committed("web")["version"] == "0.0.3"


def test_diff_specs(store):
    first = store.push(bp("web", "0.0.1", "tmux"))
    second = store.push(bp("web", "0.0.2", "tmux", "vim"))
    assert store.diff("web", "NEWEST", "WORKSPACE") == []  # no workspace: falls back to NEWEST
    store.push_workspace(bp("web", "0.0.2", "vim", "zsh"))
    assert store.diff("web", "NEWEST", "WORKSPACE") == [
        {"old": None, "new": {"Package": {"name": "zsh", "version": "*"}}},
        {"old": {"Package": {"name": "tmux", "version": "*"}}, "new": None}]
    assert store.diff("web", first.commit, second.commit) == [
        {"old": {"Version": "0.0.1"}, "new": {"Version": "0.0.2"}},
        {"old": None, "new": {"Package": {"name": "vim", "version": "*"}}}]
    with pytest.raises(BlueprintError) as info:
        store.diff("web", "NEWEST", "deadbeef")
    assert (info.value.error_id, info.value.msg) == (
        "UnknownCommit", "ggit-error: revspec 'deadbeef' not found (-3)")
    with pytest.raises(BlueprintError) as info:
        store.diff("nothing", "NEWEST", "WORKSPACE")
    assert (info.value.error_id, info.value.http_status) == ("UnknownBlueprint", 404)
    assert info.value.msg == "Unknown blueprint name: nothing"


def test_passwords_never_stored_in_plain_text(store, db):
    store.push(bp("web", customizations={"user": [{"name": "admin", "password": "hunter2"}]}))
    store.push_workspace(bp("web", customizations={"user": [{"name": "admin", "password": "hunter3"}]}))
    rows = db.query("SELECT body FROM blueprint_changes UNION ALL SELECT body FROM blueprints"
                    " UNION ALL SELECT body FROM blueprint_workspace")
    assert rows and all("hunter" not in r["body"] and "$6$" in r["body"] for r in rows)
    if db.path is not None:  # SQLite: not even in the file's free pages or the WAL
        files = [Path(db.path), Path(str(db.path) + "-wal")]
        raw = b"".join(f.read_bytes() for f in files if f.exists())
        assert raw and b"hunter2" not in raw and b"hunter3" not in raw


def test_damaged_record_fails_alone(store, db):
    store.push(bp("good"))
    store.push(bp("bad"))
    store.push_workspace(bp("worse"))
    with db.transaction() as conn:
        conn.execute("UPDATE blueprints SET body = '{not json' WHERE name = 'bad'")
        conn.execute("UPDATE blueprint_workspace SET body = '[1, 2]' WHERE name = 'worse'")
    assert store.list_names() == ["bad", "good"]
    assert store.get("good")[0]["name"] == "good"
    with pytest.raises(DamagedBlueprint) as info:
        store.get("bad")
    assert info.value.error_id == "BlueprintsError" and info.value.msg.startswith("bad: ")
    with pytest.raises(DamagedBlueprint):
        store.get("worse")
    with pytest.raises(DamagedBlueprint):
        get_committed(db, "bad")
    # pushing again repairs it (a damaged committed copy is replaced, not bumped)
    store.push(bp("bad", "0.0.7"))
    assert store.get("bad")[0]["version"] == "0.0.7"


def test_damaged_history_record_fails_alone(store, db):
    first = store.push(bp("web", "0.0.1", "tmux"))
    second = store.push(bp("web", "0.0.2", "vim"))
    with db.transaction() as conn:
        conn.execute("UPDATE blueprint_changes SET body = ? WHERE commit_id = ?",
                     ('{"name": "web", "packages": "tmux"}', first.commit))
    assert [c.commit for c in store.changes("web")] == [second.commit, first.commit]
    with pytest.raises(BlueprintError) as info:
        store.undo("web", first.commit)
    assert info.value.error_id == "BlueprintsError"
    assert info.value.msg.startswith(f"no blueprint found for commit {first.commit}")
    with pytest.raises(DamagedBlueprint):
        store.diff("web", first.commit, "NEWEST")
    assert store.change("web", second.commit)[1]["version"] == "0.0.2"
    assert store.get_committed("web")["version"] == "0.0.2"


def test_state_survives_reopening(tmp_path):
    first = BlueprintStore(database_for(tmp_path))
    change = first.push(bp("web", "0.0.1", "tmux"))
    first.tag("web")
    first.push_workspace(bp("web", "0.0.1", "vim"))
    first.db.close()
    again = BlueprintStore(database_for(tmp_path))
    assert again.list_names() == ["web"]
    assert again.changes("web")[0].commit == change.commit and again.changes("web")[0].revision == 1
    assert again.get("web")[1] is True
    assert get_committed(again.db, "web")["packages"] == [{"name": "tmux", "version": "*"}]
    assert get_committed(again.db, "nothing") is None


def test_concurrent_pushes_bump_without_losing_any(tmp_path):
    """Eight threads (own connections) push the same version: each commit gets its own bump."""
    BlueprintStore(database_for(tmp_path)).push(bp("web", "0.0.0"))
    errors: list[BaseException] = []

    def pusher() -> None:
        try:
            store = BlueprintStore(database_for(tmp_path))
            for _ in range(5):
                store.push(bp("web", None))
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=pusher) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    store = BlueprintStore(database_for(tmp_path))
    assert store.get_committed("web")["version"] == "0.0.40"
    assert len({c.commit for c in store.changes("web")}) == 41


def test_depsolve_and_freeze_through_a_solver(store):
    """The store's depsolve/freeze glue, with a solver that answers from a fixed transaction
    (the real resolver is exercised by the depsolve area's tests)."""
    calls = []
    deps = [{"name": "tmux", "epoch": 0, "version": "3.2a", "release": "5.el9", "arch": "x86_64",
             "checksum": "sha256:00"},
            {"name": "bash", "epoch": "0", "version": "5.1.8", "release": "6.el9", "arch": "x86_64"}]

    def solve(package_set, distro, arch):
        calls.append((package_set, distro, arch))
        return deps

    blueprint = bp("web", "0.0.1", "tmux", distro="centos-9")
    assert store_mod.depsolve(blueprint, solve) == [
        {"name": "bash", "epoch": 0, "version": "5.1.8", "release": "6.el9", "arch": "x86_64"},
        {"name": "tmux", "epoch": 0, "version": "3.2a", "release": "5.el9", "arch": "x86_64"}]
    assert calls[0] == ({"include": ["tmux", "kernel"]}, "centos-9", "")
    blueprint["enabled_modules"] = [{"name": "nginx", "stream": "1.22"}]
    store_mod.depsolve(blueprint, solve)
    assert calls[-1][0] == {"include": ["tmux", "kernel"], "enable_modules": ["nginx:1.22"]}
    frozen = store_mod.freeze(blueprint, solve)
    assert frozen["packages"] == [{"name": "tmux", "version": "3.2a-5.el9.x86_64"}]
