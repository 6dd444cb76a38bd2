"""Every /blueprints/* route over the real unix socket of a running `celery-composer serve`.

The session server (`weldr_client`) is shared with other areas, so these tests use names of
their own (prefix `bpt-`); tests that need exact listings or restarts start their own server.
"""

from __future__ import annotations

import re
import tomllib
import uuid

import pytest

from tests.databases import database_for

UNICODE = "I%20%EF%BD%97%F0%9D%92%8Ail%20%F0%9D%9F%89%CE%BF%F0%9D%98%81"
BAD_REQUEST = ("400 Bad Request: The browser (or proxy) sent a request that this server could "
               "not understand: ")
VERSIONS = ("/api/v0", "/api/v1")


def unique(prefix: str = "bpt") -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def toml_bp(name: str, version: str | None = "0.0.1", packages=("tmux",), extra: str = "") -> str:
    lines = [f'name = "{name}"', 'description = "route test"']
    if version is not None:
        lines.append(f'version = "{version}"')
    for p in packages:
        lines += ["[[packages]]", f'name = "{p}"', 'version = "*"']
    return "\n".join(lines) + "\n" + extra


def ok(resp) -> dict:
    assert resp.status == 200, resp
    body = resp.json()
    assert body == {"status": True}, body
    return body


def error(resp, status: int, error_id: str, msg: str | None = None) -> dict:
    assert resp.status == status, resp
    body = resp.json()
    assert body["status"] is False, body
    assert len(body["errors"]) == 1, body
    assert body["errors"][0]["id"] == error_id, body
    if msg is not None:
        assert body["errors"][0]["msg"] == msg, body
    return body["errors"][0]


def push(client, api: str, text: str):
    return client.post_toml(f"{api}/blueprints/new", text)


# --- new, info, list ----------------------------------------------------------------------------


@pytest.mark.parametrize("api", VERSIONS)
def test_new_toml_then_info_json_and_toml(weldr_client, api):
    name = unique()
    ok(push(weldr_client, api, toml_bp(name, packages=("tmux", "bash"),
                                        extra='[customizations]\nhostname = "h"\n')))
    r = weldr_client.get(f"{api}/blueprints/info/{name}")
    assert r.status == 200 and r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.json()
    assert body["changes"] == [{"changed": False, "name": name}] and body["errors"] == []
    assert body["blueprints"] == [{
        "name": name, "description": "route test", "version": "0.0.1",
        "packages": [{"name": "tmux", "version": "*"}, {"name": "bash", "version": "*"}],
        "modules": [], "enabled_modules": [], "groups": [],
        "customizations": {"hostname": "h"}, "distro": ""}]
    r = weldr_client.get(f"{api}/blueprints/info/{name}?format=toml")
    assert r.status == 200
    doc = tomllib.loads(r.text)
    assert doc["name"] == name and doc["packages"][1] == {"name": "bash", "version": "*"}
    assert "[[packages]]" in r.text


@pytest.mark.parametrize("api", VERSIONS)
def test_new_json(weldr_client, api):
    name = unique()
    ok(weldr_client.post(f"{api}/blueprints/new", {
        "name": name, "description": "json", "version": "1.0.0",
        "packages": [{"name": "vim", "version": "*"}], "modules": [], "groups": [],
        "customizations": {"user": [{"name": "admin", "password": "plain"}]}}))
    bp = weldr_client.get(f"{api}/blueprints/info/{name}").json()["blueprints"][0]
    assert bp["version"] == "1.0.0"
    assert bp["customizations"]["user"][0]["password"].startswith("$6$")


def test_overlong_password_is_a_weldr_error_and_nothing_is_stored(weldr_client):
    """A 100 KB plain-text password once made the hashing allocate 9.4 GB in the API worker."""
    name = unique()
    r = weldr_client.post("/api/v1/blueprints/new", {
        "name": name, "version": "0.0.1", "packages": [], "modules": [], "groups": [],
        "customizations": {"user": [{"name": "admin", "password": "x" * 100_000}]}})
    assert r.status == 400, r
    [error] = r.json()["errors"]
    assert error["id"] == "BlueprintsError"
    assert "'admin'" in error["msg"] and "100000 bytes long; at most 511" in error["msg"]
    assert weldr_client.get(f"/api/v1/blueprints/info/{name}").json()["blueprints"] == []


def test_info_several_names_unknown_and_order(weldr_client):
    a, b = unique(), unique()
    ok(push(weldr_client, "/api/v1", toml_bp(a)))
    ok(push(weldr_client, "/api/v1", toml_bp(b)))
    body = weldr_client.get(f"/api/v1/blueprints/info/{b},unknown-cli-bp,{a}").json()
    assert [x["name"] for x in body["blueprints"]] == [b, a]  # request order, as osbuild-composer
    assert body["errors"] == [{"id": "UnknownBlueprint", "msg": "unknown-cli-bp: "}]
    error(weldr_client.get(f"/api/v1/blueprints/info/{a},{b}?format=toml"), 400, "HTTPError",
          "toml format only supported when requesting one blueprint")
    error(weldr_client.get("/api/v1/blueprints/info/unknown-cli-bp?format=toml"), 400,
          "UnknownBlueprint", "unknown-cli-bp: ")
    error(weldr_client.get(f"/api/v1/blueprints/info/{a}?format=yaml"), 400, "InvalidChars",
          "invalid format parameter: yaml")


def test_list_contains_committed_only(weldr_client):
    committed, draft = unique(), unique()
    ok(push(weldr_client, "/api/v0", toml_bp(committed)))
    ok(weldr_client.post_toml("/api/v0/blueprints/workspace", toml_bp(draft)))
    total = weldr_client.get("/api/v0/blueprints/list?limit=0").json()["total"]
    names = weldr_client.get(f"/api/v0/blueprints/list?limit={total}").json()["blueprints"]
    assert committed in names and draft not in names
    assert names == sorted(names)


def test_list_paging_on_own_server(start_weldr_server):
    client = start_weldr_server().client
    assert client.get("/api/v1/blueprints/list").json() == {
        "total": 0, "offset": 0, "limit": 0, "blueprints": []}
    for name in ("c", "a", "e", "b", "d"):
        ok(push(client, "/api/v1", toml_bp(name)))
    get = lambda q: client.get(f"/api/v1/blueprints/list{q}").json()  # noqa: E731
    assert get("") == {"total": 5, "offset": 0, "limit": 5, "blueprints": ["a", "b", "c", "d", "e"]}
    assert get("?limit=0") == {"total": 5, "offset": 0, "limit": 0, "blueprints": []}
    assert get("?limit=2&offset=1") == {"total": 5, "offset": 1, "limit": 2, "blueprints": ["b", "c"]}
    assert get("?offset=4&limit=10") == {"total": 5, "offset": 4, "limit": 1, "blueprints": ["e"]}
    assert get("?offset=99") == {"total": 5, "offset": 5, "limit": 0, "blueprints": []}
    assert get("?branch=master") == get("")  # lorax's branch is accepted and ignored
    error(client.get("/api/v1/blueprints/list?limit=ten"), 400, "BadLimitOrOffset",
          "BadRequest: invalid value for 'limit': ten")
    error(client.get("/api/v1/blueprints/list?offset=-1"), 400, "BadLimitOrOffset")


# --- bad input on new/workspace -----------------------------------------------------------------


@pytest.mark.parametrize("route", ["/api/v1/blueprints/new", "/api/v0/blueprints/workspace"])
def test_push_bad_bodies_change_nothing(start_weldr_server, route):
    server = start_weldr_server(env={"CELERY_COMPOSER_BODY_LIMIT": "65536"})
    client = server.client
    ok(push(client, "/api/v1", toml_bp("kept")))
    before = client.get("/api/v1/blueprints/info/kept").json()

    err = error(client.post(route, 'name = "x\n[[packages]', headers={"Content-Type": "text/x-toml"}),
                400, "BlueprintsError")
    assert err["msg"].startswith(BAD_REQUEST)
    error(client.post(route, b'name = "x"'), 400, "BlueprintsError", "missing Content-Type header")
    error(client.post(route, b"", headers={"Content-Type": "text/x-toml"}), 400, "BlueprintsError",
          "Missing blueprint")
    error(client.post(route, 'name = "x"', headers={"Content-Type": "text/plain"}), 400,
          "BlueprintsError", BAD_REQUEST + "blueprint must be in json or toml format")
    error(client.post(route, 'name = "x"', headers={"Content-Type": "text/x-toml; charset=utf-8"}),
          400, "BlueprintsError", BAD_REQUEST + "blueprint must be in json or toml format")
    error(client.post(route, '{"name": "x",', headers={"Content-Type": "application/json"}), 400,
          "BlueprintsError")
    error(client.post(route, b'name = "\xff\xfe"', headers={"Content-Type": "text/x-toml"}), 400,
          "BlueprintsError")
    error(client.post_toml(route, 'description = "nameless"'), 400, "BlueprintsError",
          "empty blueprint name not allowed")
    for bad_name in ("bad name", "../etc", "ünï", "a/b", ".."):
        error(client.post(route, {"name": bad_name}), 400, "InvalidChars",
              "Invalid characters in API path")
    err = error(client.post_toml(route, toml_bp("kept", version="1.0")), 400, "BlueprintsError")
    assert err["msg"].startswith("Invalid 'version', must use Semantic Versioning: ")
    err = error(client.post_toml(route, 'name = "kept"\n[[customizations.user]]\nname = "a"\nuid = "x"\n'),
                400, "BlueprintsError")
    assert "customizations.user.0.uid" in err["msg"]
    # a body over the configured limit is refused before any parsing
    r = client.post(route, toml_bp("kept") + "#" * 70000, headers={"Content-Type": "text/x-toml"})
    assert r.status == 413 and r.json()["errors"][0]["id"] == "HTTPError"

    assert client.get("/api/v1/blueprints/info/kept").json() == before
    assert client.get("/api/v1/blueprints/list").json()["blueprints"] == ["kept"]
    assert len(client.get("/api/v1/blueprints/changes/kept").json()["blueprints"][0]["changes"]) == 1


def test_odd_paths(weldr_client):
    for path in (f"/api/v1/blueprints/info/{UNICODE}", f"/api/v0/blueprints/changes/{UNICODE}",
                 f"/api/v1/blueprints/info/x?format={UNICODE}", "/api/v1/blueprints/info/..",
                 "/api/v1/blueprints/info/a%2F..%2Fb", f"/api/v1/blueprints/freeze/{UNICODE}",
                 f"/api/v1/blueprints/depsolve/{UNICODE}", f"/api/v1/blueprints/diff/{UNICODE}/NEWEST/WORKSPACE"):
        err = error(weldr_client.get(path), 400, "InvalidChars")
        assert "nvalid" in err["msg"], path
    for path in (f"/api/v1/blueprints/delete/{UNICODE}", "/api/v1/blueprints/workspace/..",
                 f"/api/v1/blueprints/undo/x/{UNICODE}"):
        method = "POST" if "/undo/" in path else "DELETE"
        error(weldr_client.request(method, path), 400, "InvalidChars")
    for path in ("/api/v1/blueprints/info/", "/api/v1/blueprints/info", "/api/v0/blueprints/changes/",
                 "/api/v1/blueprints/freeze/", "/api/v1/blueprints/depsolve/"):
        assert weldr_client.get(path).json() == {
            "status": False, "errors": [{"id": "HTTPError", "code": 404, "msg": "Not Found"}]}, path
    r = weldr_client.get("/api/v1/blueprints/new")
    assert r.status == 405 and r.json()["errors"][0]["id"] == "HTTPError"
    assert weldr_client.request("PUT", "/api/v0/blueprints/delete/x").status == 405


# --- history: changes, change, undo, tag, diff ---------------------------------------------------


@pytest.mark.parametrize("api", VERSIONS)
def test_changes_undo_tag(weldr_client, api):
    name = unique()
    ok(push(weldr_client, api, toml_bp(name, "0.0.1", ("tmux",))))
    ok(push(weldr_client, api, toml_bp(name, "0.0.1", ("tmux", "vim"))))  # bumped to 0.0.2
    r = weldr_client.get(f"{api}/blueprints/changes/{name},unknown-cli-bp?limit=1")
    body = r.json()
    assert body["errors"] == [{"id": "UnknownBlueprint", "msg": "unknown-cli-bp"}]
    assert body["limit"] == 1 and body["offset"] == 0
    [entry] = body["blueprints"]
    assert entry["name"] == name and entry["total"] == 2 and len(entry["changes"]) == 2
    newest, oldest = entry["changes"]
    assert re.match(r"^[0-9a-f]{40}$", newest["commit"]) and newest["commit"] != oldest["commit"]
    assert newest["message"] == f"Recipe {name}, version 0.0.2 saved."
    assert oldest["message"] == f"Recipe {name}, version 0.0.1 saved."
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$", newest["timestamp"])
    assert newest["revision"] is None

    ok(weldr_client.post(f"{api}/blueprints/tag/{name}"))
    ok(weldr_client.post(f"{api}/blueprints/tag/{name}"))
    assert weldr_client.get(f"{api}/blueprints/changes/{name}").json()["blueprints"][0]["changes"][0]["revision"] == 1
    error(weldr_client.post(f"{api}/blueprints/tag/unknown-cli-bp"), 400, "BlueprintsError",
          "Unknown blueprint")

    ok(weldr_client.post(f"{api}/blueprints/undo/{name}/{oldest['commit']}"))
    info = weldr_client.get(f"{api}/blueprints/info/{name}").json()["blueprints"][0]
    assert [p["name"] for p in info["packages"]] == ["tmux"] and info["version"] == "0.0.1"
    changes = weldr_client.get(f"{api}/blueprints/changes/{name}").json()["blueprints"][0]["changes"]
    assert changes[0]["message"] == f"{name}.toml reverted to commit {oldest['commit']}"
    error(weldr_client.post(f"{api}/blueprints/undo/unknown-cli-bp/{oldest['commit']}"), 400,
          "UnknownCommit", "Unknown blueprint")
    error(weldr_client.post(f"{api}/blueprints/undo/{name}/{'0' * 40}"), 400, "UnknownCommit",
          "Unknown commit")


def test_change_v1_only(weldr_client):
    name = unique()
    ok(push(weldr_client, "/api/v1", toml_bp(name, "0.0.1")))
    ok(push(weldr_client, "/api/v1", toml_bp(name, "0.0.2", ("tmux", "zsh"))))
    changes = weldr_client.get(f"/api/v1/blueprints/changes/{name}").json()["blueprints"][0]["changes"]
    oldest = changes[-1]["commit"]
    r = weldr_client.get(f"/api/v1/blueprints/change/{name}/{oldest}")
    assert r.status == 200 and r.json()["version"] == "0.0.1" and r.json()["name"] == name
    r = weldr_client.get(f"/api/v1/blueprints/change/{name}/{oldest}?format=toml")
    assert r.status == 200 and 'version = "0.0.1"' in r.text
    assert weldr_client.get(f"/api/v0/blueprints/change/{name}/{oldest}").status == 404
    error(weldr_client.get(f"/api/v1/blueprints/change/unknown-cli-bp/{oldest}"), 400,
          "UnknownCommit", "Unknown blueprint")
    error(weldr_client.get(f"/api/v1/blueprints/change/{name}/{'f' * 40}"), 400, "UnknownCommit",
          "Unknown commit")
    error(weldr_client.get(f"/api/v1/blueprints/change/{name}/{oldest}?format=xml"), 400,
          "InvalidChars", "invalid format parameter: xml")


@pytest.mark.parametrize("api", VERSIONS)
def test_workspace_and_diff(weldr_client, api):
    name = unique()
    ok(push(weldr_client, api, toml_bp(name, "0.0.1", ("tmux", "vim"))))
    assert weldr_client.get(f"{api}/blueprints/diff/{name}/NEWEST/WORKSPACE").json() == {"diff": []}
    ok(weldr_client.post(f"{api}/blueprints/workspace",
                         {"name": name, "description": "route test", "version": "0.0.1",
                          "packages": [{"name": "vim", "version": "9.*"}, {"name": "ping", "version": "*"}]}))
    info = weldr_client.get(f"{api}/blueprints/info/{name}").json()
    assert info["changes"] == [{"changed": True, "name": name}]
    assert [p["name"] for p in info["blueprints"][0]["packages"]] == ["vim", "ping"]
    assert weldr_client.get(f"{api}/blueprints/diff/{name}/NEWEST/WORKSPACE").json() == {"diff": [
        {"old": None, "new": {"Package": {"name": "ping", "version": "*"}}},
        {"old": {"Package": {"name": "tmux", "version": "*"}}, "new": None},
        {"old": {"Package": {"name": "vim", "version": "*"}}, "new": {"Package": {"name": "vim", "version": "9.*"}}},
    ]}
    commit = weldr_client.get(f"{api}/blueprints/changes/{name}").json()["blueprints"][0]["changes"][0]["commit"]
    assert weldr_client.get(f"{api}/blueprints/diff/{name}/{commit}/NEWEST").json() == {"diff": []}
    error(weldr_client.get(f"{api}/blueprints/diff/{name}/NEWEST/nosuchcommit"), 400, "UnknownCommit",
          "ggit-error: revspec 'nosuchcommit' not found (-3)")
    error(weldr_client.get(f"{api}/blueprints/diff/unknown-cli-bp/NEWEST/WORKSPACE"), 404,
          "UnknownBlueprint", "Unknown blueprint name: unknown-cli-bp")

    ok(weldr_client.delete(f"{api}/blueprints/workspace/{name}"))
    assert weldr_client.get(f"{api}/blueprints/info/{name}").json()["changes"][0]["changed"] is False
    error(weldr_client.delete(f"{api}/blueprints/workspace/{name}"), 400, "BlueprintsError",
          f"Unknown blueprint: {name}")


@pytest.mark.parametrize("api", VERSIONS)
def test_delete_keeps_history(weldr_client, api):
    name = unique()
    ok(push(weldr_client, api, toml_bp(name)))
    ok(weldr_client.delete(f"{api}/blueprints/delete/{name}"))
    assert weldr_client.get(f"{api}/blueprints/info/{name}").json()["errors"] == [
        {"id": "UnknownBlueprint", "msg": f"{name}: "}]
    assert weldr_client.get(f"{api}/blueprints/changes/{name}").json()["blueprints"][0]["total"] == 1
    error(weldr_client.delete(f"{api}/blueprints/delete/{name}"), 400, "BlueprintsError",
          f"Unknown blueprint: {name}")


# --- depsolve, freeze ---------------------------------------------------------------------------


@pytest.mark.parametrize("api", VERSIONS)
def test_depsolve_and_freeze_answers(weldr_client, api):
    """Unknown blueprints are per-item errors; a known one is depsolved, or, when this server
    has no resolver or repositories for it, reported as a BlueprintsError naming it (never a
    made-up answer)."""
    name = unique()
    ok(push(weldr_client, api, toml_bp(name, packages=("bash",))))
    body = weldr_client.get(f"{api}/blueprints/depsolve/{name},unknown-cli-bp").json()
    assert {"id": "UnknownBlueprint", "msg": "unknown-cli-bp: blueprint not found"} in body["errors"]
    [entry] = body["blueprints"]
    assert entry["blueprint"]["name"] == name
    others = [e for e in body["errors"] if e["id"] != "UnknownBlueprint"]
    if others:
        assert entry["dependencies"] == []
        assert others[0]["id"] == "BlueprintsError" and others[0]["msg"].startswith(f"{name}: ")
    else:
        assert "bash" in {d["name"] for d in entry["dependencies"]}
        assert all(isinstance(d["epoch"], int) for d in entry["dependencies"])

    body = weldr_client.get(f"{api}/blueprints/freeze/unknown-cli-bp,{name}").json()
    assert body == {"blueprints": [], "errors": [
        {"id": "UnknownBlueprint", "msg": "unknown-cli-bp: blueprint not found"}]}
    r = weldr_client.get(f"{api}/blueprints/freeze/unknown-cli-bp?format=toml")
    assert r.status == 200 and r.text == ""
    body = weldr_client.get(f"{api}/blueprints/freeze/{name}").json()
    if body["errors"]:
        assert body["blueprints"] == []
        assert body["errors"][0]["id"] == "BlueprintsError"
        assert body["errors"][0]["msg"].startswith(f"{name}: ")
    else:
        [frozen] = body["blueprints"]
        assert frozen["blueprint"]["version"] == "0.0.1"
        assert re.match(r"^\S+-\S+\.\S+$", frozen["blueprint"]["packages"][0]["version"])


# --- durability ---------------------------------------------------------------------------------


def test_restart_keeps_state_and_damaged_record_fails_alone(start_weldr_server):
    server = start_weldr_server()
    client = server.client
    ok(push(client, "/api/v1", toml_bp("alpha", "0.1.0")))
    ok(push(client, "/api/v1", toml_bp("beta")))
    ok(client.post("/api/v1/blueprints/tag/alpha"))
    ok(client.post_toml("/api/v1/blueprints/workspace", toml_bp("alpha", "0.1.0", ("vim",))))
    before = {path: client.get(path).json() for path in (
        "/api/v1/blueprints/list", "/api/v1/blueprints/info/alpha,beta",
        "/api/v1/blueprints/changes/alpha,beta")}

    server.stop()
    server.start()
    for path, body in before.items():
        assert client.get(path).json() == body, path

    server.kill()  # kill -9: every answered write must still be there
    server.start()
    for path, body in before.items():
        assert client.get(path).json() == body, path

    database_for(server.state_dir).execute("UPDATE blueprints SET body = 'garbage{' WHERE name = 'beta'")
    assert client.get("/api/v1/blueprints/list").json()["blueprints"] == ["alpha", "beta"]
    body = client.get("/api/v1/blueprints/info/alpha,beta").json()
    assert [b["name"] for b in body["blueprints"]] == ["alpha"]
    assert body["errors"][0]["id"] == "BlueprintsError"
    assert body["errors"][0]["msg"].startswith("beta: ")
    assert client.get("/api/v1/blueprints/changes/beta").json()["blueprints"][0]["total"] == 1
    ok(push(client, "/api/v1", toml_bp("beta", "0.0.9")))  # a new commit repairs it
    assert client.get("/api/v1/blueprints/info/beta").json()["blueprints"][0]["version"] == "0.0.9"


# --- composer-cli's own expectations --------------------------------------------------------------


def test_composer_cli_integration_flow(start_weldr_server):
    """The sequence weldr-client's integration tests run (indented TOML, two pushes, undo to the
    second newest, the oldest commit as TOML), with the answers they check."""
    client = start_weldr_server().client
    first = '''
        name="cli-test-bp-1"
        description="composer-cli blueprint test 1"
        version="0.0.1"
        [[packages]]
        name="bash"
        version="*"

        [[modules]]
        name="util-linux"
        version="*"

        [[customizations.user]]
        name="root"
        password="qweqweqwe"
        '''
    second = first.replace('version="0.0.1"', 'version="0.1.0"').replace(
        '[[modules]]', '[[packages]]\n        name="tmux"\n        version="*"\n\n        [[modules]]')
    ok(client.post_toml("/api/v1/blueprints/new", first))
    ok(client.post_toml("/api/v1/blueprints/new", second))
    info = client.get("/api/v1/blueprints/info/cli-test-bp-1,unknown-cli-bp").json()
    assert info["blueprints"][0]["version"] == "0.1.0"
    assert info["errors"] == [{"id": "UnknownBlueprint", "msg": "unknown-cli-bp: "}]
    assert info["blueprints"][0]["customizations"]["user"][0]["password"].startswith("$6$")

    total = client.get("/api/v1/blueprints/changes/cli-test-bp-1?limit=0").json()["blueprints"][0]["total"]
    changes = client.get(f"/api/v1/blueprints/changes/cli-test-bp-1?limit={total}").json()
    commits = [c["commit"] for c in changes["blueprints"][0]["changes"]]
    assert len(commits) == 2
    r = client.get(f"/api/v1/blueprints/change/cli-test-bp-1/{commits[-1]}?format=toml")
    assert "0.0.1" in r.text
    ok(client.post(f"/api/v1/blueprints/undo/cli-test-bp-1/{commits[1]}", ""))
    assert client.get("/api/v1/blueprints/info/cli-test-bp-1").json()["blueprints"][0]["version"] == "0.0.1"
    ok(client.post("/api/v1/blueprints/tag/cli-test-bp-1", ""))
    error(client.post("/api/v1/blueprints/tag/unknown-cli-bp", ""), 400, "BlueprintsError",
          "Unknown blueprint")
    error(client.delete("/api/v1/blueprints/delete/unknown-blueprint-test"), 400, "BlueprintsError",
          "Unknown blueprint: unknown-blueprint-test")
    error(client.post("/api/v1/blueprints/undo/not-a-blueprint/46ba3d541d623062794c44857ac65f3e575ef863", ""),
          400, "UnknownCommit", "Unknown blueprint")
    err = error(client.post_toml("/api/v1/blueprints/new", 'name="bad-bp"\n[[packages]\nname="x"\n'),
                400, "BlueprintsError")
    assert err["msg"].startswith(BAD_REQUEST)


def _random_value(rng, depth: int = 0):
    kinds = ["str", "int", "bool", "float", "none", "list", "dict"] if depth < 3 else ["str", "int", "bool"]
    kind = rng.choice(kinds)
    if kind == "str":
        return rng.choice(["", "x", "/var", "2 GiB", "0755", "root", "ünï☃", "..", "$6$x$y", "a" * 300])
    if kind == "int":
        return rng.choice([0, 1, -1, 2**40, 2**70])
    if kind == "bool":
        return rng.choice([True, False])
    if kind == "float":
        return rng.choice([1.5, 2.0, -0.0])
    if kind == "none":
        return None
    if kind == "list":
        return [_random_value(rng, depth + 1) for _ in range(rng.randint(0, 3))]
    keys = ["name", "version", "mountpoint", "minsize", "size", "path", "mode", "user", "group",
            "type", "id", "baseurls", "partitions", "scripts", "contents", "password", "uid"]
    return {rng.choice(keys): _random_value(rng, depth + 1) for _ in range(rng.randint(0, 4))}


def test_random_bodies_never_break_the_server(weldr_client):
    """Random shapes in every customization: each push is accepted or refused with a Weldr error
    (never a 500), and whatever was accepted reads back and renders as TOML."""
    import json
    import random

    rng = random.Random(2026)
    sections = ["hostname", "kernel", "sshkey", "user", "group", "timezone", "locale", "firewall",
                "services", "filesystem", "disk", "installation_device", "partitioning_mode", "fdo",
                "openscap", "ignition", "directories", "files", "repositories", "fips", "installer",
                "rpm", "rhsm", "cacerts", "containers-storage", "firstboot", "dnf", "iso", "sshd"]
    valid = {
        "hostname": "h", "kernel": {"append": "quiet"}, "sshkey": [{"user": "root", "key": "k"}],
        "user": [{"name": "u", "password": "pw", "groups": ["wheel"], "uid": 1000}],
        "group": [{"name": "g", "gid": 1001}], "timezone": {"timezone": "UTC"},
        "locale": {"languages": ["en_US.UTF-8"]}, "firewall": {"ports": ["22:tcp"]},
        "services": {"enabled": ["sshd"]}, "filesystem": [{"mountpoint": "/var", "minsize": "1 GiB"}],
        "disk": {"partitions": [{"minsize": 1 << 30, "mountpoint": "/data", "fs_type": "xfs"}]},
        "installation_device": "/dev/vda", "partitioning_mode": "raw", "fdo": {"diun_pub_key_hash": "h"},
        "openscap": {"profile_id": "p"}, "ignition": {"firstboot": {"url": "http://127.0.0.1/"}},
        "directories": [{"path": "/etc/d", "mode": "0700"}], "files": [{"path": "/etc/f", "data": "x"}],
        "repositories": [{"id": "r", "baseurls": ["http://127.0.0.1/"]}], "fips": True,
        "installer": {"unattended": True}, "rpm": {"import_keys": {"files": ["/k"]}},
        "rhsm": {"config": {"dnf_plugins": {"product_id": {"enabled": False}}}},
        "cacerts": {"pem_certs": ["c"]}, "containers-storage": {"destination-path": "/s"},
        "firstboot": {"scripts": [{"type": "custom", "contents": "echo"}]},
        "dnf": {"config": {"set_releasever": True}}, "iso": {"volume_id": "V"},
        "sshd": {"password_authentication": False},
    }
    accepted = 0
    for i in range(150):
        name = f"bpt-fuzz-{i}"
        picked = rng.sample(sections, rng.randint(1, 5))
        doc = {"name": name, "version": rng.choice(["0.0.1", None, "1.0", 5]),
               "packages": rng.choice([[{"name": "tmux", "version": "*"}], _random_value(rng, 1)]),
               "customizations": {s: valid[s] if rng.random() < 0.7 else _random_value(rng, 1)
                                  for s in picked}}
        r = weldr_client.post("/api/v1/blueprints/new", json.dumps(doc),
                              headers={"Content-Type": "application/json"})
        assert r.status in (200, 400), (doc, r)
        if r.status == 400:
            assert r.json()["errors"][0]["id"] in ("BlueprintsError", "InvalidChars"), (doc, r)
            continue
        accepted += 1
        info = weldr_client.get(f"/api/v1/blueprints/info/{name}")
        assert info.status == 200 and info.json()["blueprints"][0]["name"] == name
        toml = weldr_client.get(f"/api/v1/blueprints/info/{name}?format=toml")
        assert toml.status == 200 and tomllib.loads(toml.text)["name"] == name
    assert 10 <= accepted <= 140, accepted  # both paths were exercised
