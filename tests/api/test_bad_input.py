"""Hostile numbers, types and nesting in request bodies: a 400 Weldr error, never a 500, and
nothing stored changes.  Over the session server's real socket (gunicorn), as a client sends them.

Python's JSON parser reads `NaN`, `Infinity` and `1e400` (an infinite float), TOML has `nan` and
`inf` literals, and deep nesting exhausts the parser's recursion: each once reached `int()` or
the recursion limit inside a route and came back as an InternalServerError.
"""

from __future__ import annotations

import json
import uuid

import pytest

V1 = "/api/v1"
JSON = {"Content-Type": "application/json"}
TOML = {"Content-Type": "text/x-toml"}

# the eight places a size or a uid/gid-like value is read as an integer from a float
NUMBER_PATHS = {
    "filesystem.minsize": '{"filesystem": [{"mountpoint": "/var", "minsize": %s}]}',
    "filesystem.size": '{"filesystem": [{"mountpoint": "/var", "size": %s}]}',
    "disk.minsize": '{"disk": {"minsize": %s}}',
    "disk.start_offset": '{"disk": {"start_offset": %s}}',
    "partition.minsize": '{"disk": {"partitions": [{"minsize": %s, "mountpoint": "/data"}]}}',
    "logical_volume.minsize": '{"disk": {"partitions": [{"type": "lvm", "minsize": 1073741824,'
                              ' "logical_volumes": [{"minsize": %s, "mountpoint": "/data"}]}]}}',
    "files.user": '{"files": [{"path": "/etc/x", "user": %s}]}',
    "directories.group": '{"directories": [{"path": "/etc/x", "group": %s}]}',
}
TOML_PATHS = {
    "filesystem.minsize": '[[customizations.filesystem]]\nmountpoint = "/var"\nminsize = %s\n',
    "filesystem.size": '[[customizations.filesystem]]\nmountpoint = "/var"\nsize = %s\n',
    "disk.minsize": "[customizations.disk]\nminsize = %s\n",
    "disk.start_offset": "[customizations.disk]\nstart_offset = %s\n",
    "partition.minsize": '[[customizations.disk.partitions]]\nmountpoint = "/data"\nminsize = %s\n',
    "logical_volume.minsize": '[[customizations.disk.partitions]]\ntype = "lvm"\n'
                              "minsize = 1073741824\n[[customizations.disk.partitions."
                              'logical_volumes]]\nmountpoint = "/data"\nminsize = %s\n',
    "files.user": '[[customizations.files]]\npath = "/etc/x"\nuser = %s\n',
    "directories.group": '[[customizations.directories]]\npath = "/etc/x"\ngroup = %s\n',
}


def _error(resp, status: int = 400) -> dict:
    assert resp.status == status, resp
    body = resp.json()
    assert body["status"] is False and len(body["errors"]) == 1, body
    assert body["errors"][0]["id"] != "InternalServerError", body
    return body["errors"][0]


@pytest.fixture(scope="module")
def kept(weldr_client) -> dict:
    """A committed blueprint and a test compose (with an upload) that bad requests must not touch."""
    name = f"bad-input-{uuid.uuid4().hex[:8]}"
    bp = {"name": name, "version": "0.0.1", "packages": [], "modules": [], "groups": []}
    assert weldr_client.post(f"{V1}/blueprints/new", bp).status == 200
    compose = weldr_client.post(f"{V1}/compose?test=2", {
        "blueprint_name": name, "compose_type": "tar", "branch": "master"}).json()["build_id"]
    return {"name": name, "compose": compose}


def _snapshot(client, kept: dict) -> tuple:
    name = kept["name"]
    return (client.get(f"{V1}/blueprints/info/{name}").json(),
            client.get(f"{V1}/blueprints/changes/{name}").json(),
            client.get(f"{V1}/compose/info/{kept['compose']}").json(),
            client.get(f"{V1}/compose/status/*?blueprint={name}").json(),
            client.get(f"{V1}/upload/providers").json())


@pytest.mark.parametrize("value", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_non_finite_numbers_in_json_blueprints(weldr_client, kept, value):
    before = _snapshot(weldr_client, kept)
    for where, template in NUMBER_PATHS.items():
        body = '{"name": "%s", "customizations": %s}' % (kept["name"], template % value)
        for route in ("blueprints/new", "blueprints/workspace"):
            err = _error(weldr_client.post(f"{V1}/{route}", body, headers=JSON))
            assert err["id"] == "BlueprintsError", (where, route, err)
    assert _snapshot(weldr_client, kept) == before


@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "1e400", "1.5"])
def test_non_finite_numbers_in_toml_blueprints(weldr_client, kept, value):
    before = _snapshot(weldr_client, kept)
    for where, template in TOML_PATHS.items():
        body = f'name = "{kept["name"]}"\n' + template % value
        err = _error(weldr_client.post(f"{V1}/blueprints/new", body, headers=TOML))
        assert err["id"] == "BlueprintsError", (where, err)
        assert where.split(".")[-1] in err["msg"] or "customizations" in err["msg"], err
    # a size too large for 64 bits, and an integer too long for Python's int(), are refused too
    for huge in ("18446744073709551616", "9" * 5000):
        body = f'name = "{kept["name"]}"\n' + TOML_PATHS["filesystem.minsize"] % huge
        _error(weldr_client.post(f"{V1}/blueprints/new", body, headers=TOML))
    assert _snapshot(weldr_client, kept) == before


def test_non_finite_compose_size(weldr_client, kept):
    before = _snapshot(weldr_client, kept)
    for value in ("NaN", "Infinity", "1e400"):
        body = '{"blueprint_name": "%s", "compose_type": "tar", "size": %s}' % (kept["name"], value)
        r = weldr_client.post(f"{V1}/compose?test=2", body, headers=JSON)
        assert r.status in (400, 404) and r.json()["status"] is False, r  # 404: unparsable, as OC
    assert _snapshot(weldr_client, kept) == before


DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("route", [
    "blueprints/new", "blueprints/workspace", "compose", "projects/source/new",
    "upload/providers/save", "compose/uploads/schedule/{compose}", "upload/reset/{upload}"])
def test_deeply_nested_json(weldr_client, kept, route):
    before = _snapshot(weldr_client, kept)
    uploads = weldr_client.get(f"{V1}/compose/info/{kept['compose']}").json().get("uploads") or []
    path = route.format(compose=kept["compose"],
                        upload=uploads[0]["uuid"] if uploads else str(uuid.uuid4()))
    for body in (DEEP, '{"settings": ' + DEEP + "}"):
        r = weldr_client.post(f"{V1}/{path}", body, headers=JSON)
        assert 400 <= r.status < 500 or (r.status == 200 and r.json()["status"] is False), r
        assert r.json()["status"] is False
        assert r.json()["errors"][0]["id"] != "InternalServerError", r
    assert _snapshot(weldr_client, kept) == before


@pytest.mark.parametrize("bad", [1, [], {}, True, None])
def test_non_string_provider_and_profile(weldr_client, kept, bad):
    before = _snapshot(weldr_client, kept)
    name, compose = kept["name"], kept["compose"]
    requests = [
        ("upload/providers/save", {"provider": bad, "profile": "p", "settings": {}}),
        ("upload/providers/save", {"provider": "aws", "profile": bad, "settings": {}}),
        ("compose/uploads/schedule/" + compose, {"provider": bad, "image_name": "i", "settings": {}}),
        ("compose/uploads/schedule/" + compose, {"provider": "aws", "image_name": "i", "profile": bad}),
        ("compose?test=2", {"blueprint_name": name, "compose_type": "tar",
                            "upload": {"provider": bad, "image_name": "i", "settings": {}}}),
        ("compose?test=2", {"blueprint_name": name, "compose_type": "tar",
                            "upload": {"provider": "aws", "image_name": "i", "profile": bad}}),
        ("compose", {"blueprint_name": name, "compose_type": "tar",
                     "upload": {"provider": "aws", "image_name": "i", "profile": bad}}),
    ]
    for route, body in requests:
        r = weldr_client.post(f"{V1}/{route}", json.dumps(body), headers=JSON)
        err = _error(r, r.status if r.status in (200, 400) else 400)
        assert err["id"] in ("UploadError", "MissingPost"), (route, body, err)
    assert _snapshot(weldr_client, kept) == before


# --- symlinks in the artifacts directory -----------------------------------------------------


def test_symlinks_in_the_artifacts_directory_are_not_followed(weldr_client, weldr_server, kept,
                                                              tmp_path):
    """A link planted where a compose's image belongs (or in place of the compose's directory)
    must not make compose/image or results serve the file it points to."""
    from core.store.composes import ComposeStore
    from tests.databases import database_for

    store = ComposeStore(database_for(weldr_server.state_dir), weldr_server.state_dir / "artifacts")
    secret = tmp_path / "secret"
    secret.write_text("TOP-SECRET-CONTENT\n")
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "disk.qcow2").write_text("TOP-SECRET-CONTENT via a directory\n")
    ids = []
    for how in ("file link", "directory link"):
        compose = store.create(blueprint={"name": kept["name"], "version": "0.0.1"},
                               compose_type="qcow2", distro="centos-9", arch="x86_64",
                               image_filename="disk.qcow2")
        assert store.mark_running(compose.id) and store.mark_finished(compose.id, image_size=10)
        image = store.artifacts.path(compose.id, "disk.qcow2")
        if how == "file link":
            image.parent.mkdir(parents=True, exist_ok=True)
            image.symlink_to(secret)
        else:
            image.parent.parent.mkdir(parents=True, exist_ok=True)
            image.parent.symlink_to(tmp_path / "elsewhere")
        ids.append(compose.id)
    for compose_id in ids:
        for route in ("image", "results", "logs", "log"):
            r = weldr_client.get(f"{V1}/compose/{route}/{compose_id}")
            assert b"TOP-SECRET" not in r.body, (route, r)
            assert r.status >= 400 if route == "image" else r.status == 200, (route, r)
    assert secret.read_text() == "TOP-SECRET-CONTENT\n"


# --- requests gunicorn refuses before Flask sees them ------------------------------------------


def _raw(weldr_server, data: bytes) -> tuple[int, dict, bytes]:
    """Send bytes on the socket as they are; the reply's status, headers and body."""
    import socket

    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(30)
        sock.connect(str(weldr_server.socket))
        sock.sendall(data)
        reply = b""
        while chunk := sock.recv(65536):
            reply += chunk
    head, _, body = reply.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(": ", 1) for line in lines[1:])
    return int(lines[0].split()[1]), headers, body


@pytest.mark.parametrize("request_bytes,status", [
    (b"GET /api/v1/blueprints/info/" + b"a" * 9000 + b" HTTP/1.1\r\nHost: x\r\n\r\n", 414),
    (b"GET /api/status HTTP/1.1\r\nHost: x\r\nX-Big: " + b"b" * 9000 + b"\r\n\r\n", 431),
    (b"GARBAGE\r\n\r\n", 400),
])
def test_requests_gunicorn_refuses_get_a_json_weldr_error(weldr_server, request_bytes, status):
    got, headers, body = _raw(weldr_server, request_bytes)
    assert got == status, body
    assert headers["Content-Type"].startswith("application/json")
    reply = json.loads(body)
    assert reply["status"] is False and reply["errors"][0]["id"] == "HTTPError", reply
    assert reply["errors"][0]["code"] == status


def test_request_line_over_4_kb_is_answered_by_the_api(weldr_client):
    """Go's server (osbuild-composer) takes long request lines; gunicorn's default stops at 4 KB.
    A 5 KB line reaches the routes and gets their answer, in JSON."""
    ids = ",".join(str(uuid.uuid4()) for _ in range(140))  # ~5.2 KB: compose/status of many ids
    r = weldr_client.get(f"{V1}/compose/status/{ids}")
    assert r.status == 200 and r.json() == {"uuids": []}, r
    r = weldr_client.get(f"{V1}/blueprints/info/" + "a" * 5000)
    assert r.status == 200 and r.json()["blueprints"] == [], r  # unknown: listed in "errors"
