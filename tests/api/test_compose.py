"""/compose routes over the real socket.

The build pipeline is not part of these tests: the lifecycle (RUNNING, FINISHED with an image,
FAILED) is driven through `core.store.composes` on the server's own database from the test
process, exactly as the pipeline's workers do from theirs.  Test-mode composes (`?test=1|2`) are
stored FAILED/FINISHED by the request itself, as osbuild-composer stores them.
"""

from __future__ import annotations

import io
import tarfile
import time
import uuid

import pytest

from core.store.composes import ComposeStore
from tests.databases import database_for

V1 = "/api/v1"
V0 = "/api/v0"
BP = 'name = "compose-bp"\ndescription = "for compose tests"\nversion = "0.1.0"\n' \
     '[[packages]]\nname = "tmux"\nversion = "*"\n'


@pytest.fixture(scope="module")
def client(weldr_client):
    r = weldr_client.post_toml(f"{V0}/blueprints/new", BP)
    assert r.status == 200, r
    return weldr_client


@pytest.fixture(scope="module")
def store(weldr_server):
    return ComposeStore(database_for(weldr_server.state_dir),
                        weldr_server.state_dir / "artifacts")


def _err(r, status=400):
    assert r.status == status, r
    body = r.json()
    assert body["status"] is False
    return body["errors"][0]


def _start(client, test: str = "", **extra) -> str:
    """Start a compose; a test-mode one is waited for until its worker ended it."""
    body = {"blueprint_name": "compose-bp", "compose_type": "qcow2", "branch": "master", **extra}
    r = client.post(f"{V1}/compose" + (f"?test={test}" if test else ""), body)
    assert r.status == 200, r
    reply = r.json()
    assert reply["status"] is True and reply["warnings"] == []
    if test:
        _wait_ended(client, [reply["build_id"]])
    return reply["build_id"]


def _wait_ended(client, ids: list[str], timeout: float = 120.0) -> dict[str, str]:
    """Poll compose/status until every compose is FINISHED or FAILED (bounded; fails after)."""
    deadline = time.monotonic() + timeout
    while True:
        got = {e["id"]: e["queue_status"] for i in range(0, len(ids), 50)  # URL length
               for e in client.get(f"{V1}/compose/status/{','.join(ids[i:i + 50])}").json()["uuids"]}
        if all(got.get(i) in ("FINISHED", "FAILED") for i in ids):
            return got
        assert time.monotonic() < deadline, f"not ended in {timeout} s: {got}"
        time.sleep(0.1)


def _tar(r) -> dict[str, bytes]:
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tf:
        return {m.name: tf.extractfile(m).read() for m in tf.getmembers()}


def test_types(client):
    types = client.get(f"{V1}/compose/types").json()["types"]
    names = [t["name"] for t in types]
    assert "qcow2" in names and all(t["enabled"] for t in types) and names == sorted(names)
    # the distro argument is honoured (v0 too): CentOS Stream 9's names, Fedora 41's canonical ones
    c9 = [t["name"] for t in client.get(f"{V0}/compose/types?distro=centos-9").json()["types"]]
    assert {"qcow2", "edge-commit", "image-installer"} <= set(c9) and "generic-qcow2" not in c9
    f41 = [t["name"] for t in client.get(f"{V0}/compose/types?distro=fedora-41").json()["types"]]
    assert "generic-qcow2" in f41 and "qcow2" not in f41 and "edge-commit" not in f41
    e = _err(client.get(f"{V1}/compose/types?distro=plan9-4"))
    assert e == {"id": "DistroError", "msg": "Invalid distro: plan9-4"}


@pytest.mark.parametrize("body,headers,status,want", [
    ('{"blueprint_name": "compose-bp", "compose_type": "qcow2"}', {}, 400,
     {"id": "MissingPost", "msg": "blueprint must be json"}),
    ('{"blueprint_name": "compose-bp", "compose_type": "qcow2"}', {"Content-Type": "text/x-toml"},
     400, {"id": "MissingPost", "msg": "blueprint must be json"}),
    ("", {"Content-Type": "application/json"}, 404,
     {"id": "HTTPError", "code": 404, "msg": "Not Found"}),
    ("{nope", {"Content-Type": "application/json"}, 404,
     {"id": "HTTPError", "code": 404, "msg": "Not Found"}),
    ('{"compose_type": "qcow2"}', {"Content-Type": "application/json"}, 400,
     {"id": "InvalidChars", "msg": "Invalid characters in API path"}),
    ('{"blueprint_name": "../x", "compose_type": "qcow2"}', {"Content-Type": "application/json"},
     400, {"id": "InvalidChars", "msg": "Invalid characters in API path"}),
    ('{"blueprint_name": "missing-bp", "compose_type": "qcow2"}',
     {"Content-Type": "application/json"}, 400,
     {"id": "UnknownBlueprint", "msg": "Unknown blueprint name: missing-bp"}),
    ('{"blueprint_name": "compose-bp", "compose_type": "punchcard"}',
     {"Content-Type": "application/json"}, 400,
     {"id": "ComposeError",
      "msg": 'Failed to get compose type "punchcard": invalid image type: punchcard'}),
    ('{"blueprint_name": "compose-bp"}', {"Content-Type": "application/json"}, 400,
     {"id": "ComposeError", "msg": 'Failed to get compose type "": invalid image type: '}),
    ('{"blueprint_name": "compose-bp", "compose_type": "qcow2", "ostree": {"parent": "p"}}',
     {"Content-Type": "application/json"}, 400,
     {"id": "ManifestCreationFailed", "msg": "failed to initialize osbuild manifest: ostree "
      "parent ref specified, but no URL to retrieve it"}),
])
def test_start_errors_change_nothing(client, body, headers, status, want):
    before = client.get(f"{V1}/compose/status/*").json()
    r = client.post(f"{V1}/compose", body, headers=headers)
    assert r.status == status, r
    assert r.json()["errors"] == [want]
    assert client.get(f"{V1}/compose/status/*").json() == before


def test_waiting_compose_listed_logged_cancelled(client):
    cid = _start(client)
    queue = client.get(f"{V1}/compose/queue").json()
    entry = next(e for e in queue["new"] if e["id"] == cid)
    assert entry["blueprint"] == "compose-bp" and entry["version"] == "0.1.0"
    assert entry["queue_status"] == "WAITING" and entry["image_size"] == 0
    assert isinstance(entry["job_created"], float)
    assert "job_started" not in entry and "job_finished" not in entry and "uploads" not in entry
    # log of a WAITING compose: an error body with 200
    r = client.get(f"{V1}/compose/log/{cid}")
    assert r.status == 200 and r.json()["errors"] == [{
        "id": "BuildInWrongState", "msg": f"Build {cid} has not started yet. No logs to view."}]
    for route in ("metadata", "results"):
        assert _err(client.get(f"{V1}/compose/{route}/{cid}")) == {
            "id": "BuildInWrongState", "msg": f"Build {cid} is in wrong state: WAITING"}
    assert _err(client.get(f"{V1}/compose/logs/{cid}")) == {
        "id": "BuildInWrongState", "msg": f"Build {cid} not in FINISHED or FAILED state."}
    e = client.delete(f"{V1}/compose/delete/{cid}").json()
    assert e == {"uuids": [], "errors": [{"id": "BuildInWrongState",
                                          "msg": f"Compose {cid} is not in FINISHED or FAILED."}]}
    r = client.delete(f"{V1}/compose/cancel/{cid}")
    assert r.json() == {"status": True, "uuid": cid}
    status = client.get(f"{V1}/compose/status/{cid}").json()["uuids"][0]
    assert status["queue_status"] == "FAILED" and status["job_finished"] >= status["job_created"]
    assert _err(client.delete(f"{V1}/compose/cancel/{cid}")) == {
        "id": "BuildInWrongState", "msg": f"Build {cid} is not in WAITING or RUNNING."}
    assert client.delete(f"{V1}/compose/delete/{cid}").json() == {
        "uuids": [{"uuid": cid, "status": True}], "errors": []}
    assert client.get(f"{V1}/compose/status/{cid}").json() == {"uuids": []}


def test_test_mode_composes(client):
    failed, finished = _start(client, "1"), _start(client, "2")
    assert failed in [e["id"] for e in client.get(f"{V1}/compose/failed").json()["failed"]]
    fin = next(e for e in client.get(f"{V1}/compose/finished").json()["finished"]
               if e["id"] == finished)
    assert fin["queue_status"] == "FINISHED" and fin["image_size"] > 0
    assert "job_started" in fin and "job_finished" in fin
    info = client.get(f"{V1}/compose/info/{finished}").json()
    assert info["id"] == finished and info["compose_type"] == "qcow2"
    assert info["queue_status"] == "FINISHED" and info["blueprint"]["name"] == "compose-bp"
    assert info["blueprint"]["packages"] and info["config"] == "" and info["commit"] == ""
    assert info["deps"] == {"packages": []}
    e = _err(client.get(f"{V1}/compose/image/{finished}"))
    assert e["id"] == "InternalServerError"
    assert e["msg"].startswith(f"Error accessing image file for compose {finished}")
    assert _err(client.get(f"{V1}/compose/image/{failed}"))["id"] == "BuildInWrongState"
    r = client.get(f"{V1}/compose/metadata/{finished}")
    assert r.status == 200 and r.headers["Content-Type"] == "application/x-tar"
    assert r.headers["Content-Disposition"] == f"attachment; filename={finished}-metadata.tar"
    r = client.get(f"{V1}/compose/logs/{failed}")
    assert r.headers["Content-Disposition"] == f"attachment; filename={failed}-logs.tar"
    assert list(_tar(r)) == ["logs/osbuild.log"]
    assert client.delete(f"{V1}/compose/delete/{failed},{finished}").json()["uuids"] == [
        {"uuid": failed, "status": True}, {"uuid": finished, "status": True}]


def test_lifecycle_driven_by_store(client, store, weldr_server):
    cid = _start(client)
    assert store.mark_running(cid)
    store.append_log(cid, "stage 1 of 2\n")
    run = client.get(f"{V1}/compose/queue").json()["run"]
    assert [e["queue_status"] for e in run if e["id"] == cid] == ["RUNNING"]
    assert "stage 1 of 2" in client.get(f"{V1}/compose/log/{cid}").text
    store.record_packages(cid, {"build": [{"name": "rpm", "epoch": 0, "version": "4", "release": "1",
                                           "arch": "x86_64"}],
                                "os": [{"name": "tmux", "epoch": 0, "version": "3.2a",
                                        "release": "4.el9", "arch": "x86_64",
                                        "checksum": "sha256:00"}]})
    store.record_manifest(cid, {"version": "2", "pipelines": []})
    compose = store.get(cid)
    image = store.compose_dir(cid) / compose.image_filename
    image.parent.mkdir(parents=True, exist_ok=True)
    image.write_bytes(b"QCOW" * 1000)
    assert store.mark_finished(cid, image_size=4000)
    info = client.get(f"{V1}/compose/info/{cid}").json()
    assert info["deps"]["packages"] == [{"name": "tmux", "epoch": 0, "version": "3.2a",
                                         "release": "4.el9", "arch": "x86_64"}]
    assert info["image_size"] == 4000
    r = client.get(f"{V1}/compose/image/{cid}")
    assert r.status == 200 and r.body == b"QCOW" * 1000
    assert r.headers["Content-Length"] == "4000"
    assert r.headers["Content-Disposition"] == \
        f"attachment; filename={cid}-{compose.image_filename}"
    r = client.get(f"{V1}/compose/results/{cid}")
    assert r.headers["Content-Disposition"] == f"attachment; filename={cid}.tar"
    members = _tar(r)
    assert members[f"{cid}-{compose.image_filename}"] == b"QCOW" * 1000
    assert b"stage 1 of 2" in members["logs/osbuild.log"]
    assert b'"version": "2"' in members[f"{cid}.json"]
    assert list(_tar(client.get(f"{V1}/compose/metadata/{cid}"))) == [f"{cid}.json"]
    assert "stage 1 of 2" in client.get(f"{V1}/compose/log/{cid}?size=1").text
    assert _err(client.get(f"{V1}/compose/log/{cid}?size=big"))["id"] == "ComposeError"
    assert client.delete(f"{V1}/compose/delete/{cid}").status == 200
    assert not store.compose_dir(cid).exists()


def test_status_filters_and_uploads_v1_only(client, store):
    a, b = _start(client), _start(client, "2")
    upload_id = store.add_upload(a, "aws", "img", {"region": "eu-west-1"})
    got = client.get(f"{V1}/compose/status/*?status=WAITING&blueprint=compose-bp&type=qcow2").json()
    assert a in [e["id"] for e in got["uuids"]] and b not in [e["id"] for e in got["uuids"]]
    assert all(e["compose_type"] == "ami"
               for e in client.get(f"{V1}/compose/status/*?type=ami").json()["uuids"])
    assert a not in client.get(f"{V1}/compose/status/*?type=ami").text
    assert client.get(f"{V1}/compose/status/{a}?blueprint=other").json() == {"uuids": []}
    v1 = client.get(f"{V1}/compose/status/{a},{b}").json()["uuids"]
    assert [e["id"] for e in v1] == sorted([a, b])
    entry = next(e for e in v1 if e["id"] == a)
    assert [u["uuid"] for u in entry["uploads"]] == [upload_id]
    assert entry["uploads"][0]["provider_name"] == "aws"
    v0 = client.get(f"{V0}/compose/status/{a}").json()["uuids"][0]
    assert "uploads" not in v0
    assert "uploads" in client.get(f"{V1}/compose/info/{a}").json()
    assert "uploads" not in client.get(f"{V0}/compose/info/{a}").json()
    e = _err(client.get(f"{V1}/compose/status/*?blueprint=a%2Fb"))
    assert e["id"] == "InvalidChars"
    client.delete(f"{V1}/compose/cancel/{a}")
    client.delete(f"{V1}/compose/delete/{a},{b}")


def test_bad_and_unknown_uuids(client):
    unknown = str(uuid.uuid4())
    assert _err(client.get(f"{V1}/compose/status/not-a-uuid")) == {
        "id": "UnknownUUID", "msg": "not-a-uuid is not a valid build uuid"}
    assert client.get(f"{V1}/compose/status/{unknown}").json() == {"uuids": []}
    for route in ("info",):
        assert _err(client.get(f"{V1}/compose/{route}/{unknown}")) == {
            "id": "UnknownUUID", "msg": f"{unknown} is not a valid build uuid"}
        assert _err(client.get(f"{V1}/compose/{route}/nope")) == {
            "id": "UnknownUUID", "msg": "nope is not a valid build uuid"}
    for route in ("log", "logs", "metadata", "results", "image"):
        assert _err(client.get(f"{V1}/compose/{route}/{unknown}")) == {
            "id": "UnknownUUID", "msg": f"Compose {unknown} doesn't exist"}, route
    assert _err(client.delete(f"{V1}/compose/cancel/{unknown}")) == {
        "id": "UnknownUUID", "msg": f"Compose {unknown} doesn't exist"}
    assert client.delete(f"{V1}/compose/delete/{unknown},junk").json() == {"uuids": [], "errors": [
        {"id": "UnknownUUID", "msg": f"compose {unknown} doesn't exist"},
        {"id": "UnknownUUID", "msg": "junk is not a valid uuid"}]}
    assert client.get(f"{V1}/compose/info/").status == 404


def test_damaged_record_fails_alone(client, store):
    good, bad = _start(client, "2"), _start(client, "2")
    store.db.execute("UPDATE composes SET record = '{broken', queue_status = 'EXPLODED'"
                          " WHERE id = ?", (bad,))
    store.db.execute("UPDATE compose_generation SET value = value + 1")
    for path in (f"{V1}/compose/status/*", f"{V1}/compose/finished", f"{V0}/compose/queue",
                 f"{V1}/compose/failed"):
        r = client.get(path)
        assert r.status == 200, (path, r)
        assert bad not in r.text
    assert good in client.get(f"{V1}/compose/status/*").text
    e = _err(client.get(f"{V1}/compose/info/{bad}"), 500)
    assert e["id"] == "ComposeStatusError" and bad in e["msg"]
    store.db.execute("DELETE FROM composes WHERE id = ?", (bad,))
    client.delete(f"{V1}/compose/delete/{good}")


def test_start_with_upload_v1(client, store):
    e = _err(client.post(f"{V1}/compose", {"blueprint_name": "compose-bp", "compose_type": "qcow2",
                                           "upload": {"provider": "aws", "settings": {}}}))
    assert e == {"id": "UploadError", "msg": "Missing parameter 'image_name'!"}
    e = _err(client.post(f"{V1}/compose", {"blueprint_name": "compose-bp", "compose_type": "qcow2",
                                           "upload": {"image_name": "img", "provider": "local",
                                                      "settings": {}}}))
    assert e["id"] == "UploadError" and "directory" in e["msg"]
    r = client.post(f"{V1}/compose", {"blueprint_name": "compose-bp", "compose_type": "qcow2",
                                      "upload": {"image_name": "img", "provider": "local",
                                                 "settings": {"directory": "/tmp"}}})
    assert r.status == 200, r
    reply = r.json()
    cid = reply["build_id"]
    uploads = store.uploads(cid)
    assert [u.id for u in uploads] == [reply["upload_id"]] and uploads[0].target == "local"
    entry = client.get(f"{V1}/compose/status/{cid}").json()["uuids"][0]
    assert entry["uploads"][0]["uuid"] == reply["upload_id"]
    assert entry["uploads"][0]["status"] == "WAITING"
    client.delete(f"{V1}/compose/cancel/{cid}")
    client.delete(f"{V1}/compose/delete/{cid}")


def test_start_with_composer_cli_profile_toml(client, store):
    """composer-cli's `compose start BP TYPE IMAGE PROFILE.toml` reads the profile's `provider` and
    `[settings]` and sends them as `upload`: osbuild-composer's names (`generic.s3` handled as
    `aws.s3`), unknown keys ignored, secrets kept for the worker and never shown."""
    import tomllib

    profile = tomllib.loads('provider = "generic.s3"\n[settings]\nregion = "us-east-1"\n'
                           'accessKeyID = "AKIAPROFILE"\nsecretAccessKey = "profile-secret-value"\n'
                           'bucket = "images"\nskip_ssl_verification = true\nfuture_key = "x"\n')
    r = client.post(f"{V1}/compose", {"blueprint_name": "compose-bp", "compose_type": "qcow2",
                                      "branch": "master", "upload": {"image_name": "nightly", **profile}})
    assert r.status == 200, r
    cid = r.json()["build_id"]
    upload = store.uploads(cid)[0]
    assert upload.target == "aws.s3" and upload.settings["secretAccessKey"] == "profile-secret-value"
    assert "future_key" not in upload.settings
    shown = client.get(f"{V1}/compose/info/{cid}")
    assert shown.json()["uploads"][0]["provider_name"] == "aws.s3"
    assert shown.json()["uploads"][0]["settings"] == {"region": "us-east-1", "bucket": "images",
                                                       "skip_ssl_verification": True}
    assert b"profile-secret-value" not in shown.body and b"AKIAPROFILE" not in shown.body
    client.delete(f"{V1}/compose/cancel/{cid}")
    client.delete(f"{V1}/compose/delete/{cid}")


def test_types_unknown_arch(client):
    e = _err(client.get(f"{V1}/compose/types?distro=centos-9&arch=pdp11"))
    assert e == {"id": "DistroError", "msg": "Unknown distribution: centos-9 for arch pdp11"}


def test_big_listing_gzip_for_clients_that_ask(client, store):
    import gzip
    import json

    # ~90 kB of status JSON; recorded FINISHED straight in the store (the listing is the point
    # here, not 400 trips through the queue, which tests/api/test_compose_queue.py makes)
    blueprint = {"name": "compose-bp", "version": "0.1.0", "packages": []}
    ids = [store.create(blueprint=blueprint, compose_type="qcow2", distro="centos-9",
                        arch="x86_64", size=4 << 30, test_mode=2).id for _ in range(400)]
    plain = client.get(f"{V1}/compose/status/*")
    assert "Content-Encoding" not in plain.headers and plain.headers["Vary"] == "Accept-Encoding"
    packed = client.get(f"{V1}/compose/status/*", headers={"Accept-Encoding": "gzip"})
    assert packed.headers["Content-Encoding"] == "gzip" and len(packed.body) < len(plain.body)
    assert json.loads(gzip.decompress(packed.body)) == plain.json()
    for i in range(0, len(ids), 100):
        assert client.delete(f"{V1}/compose/delete/{','.join(ids[i:i + 100])}").status == 200


def test_start_refused_by_image_type_changes_nothing(client):
    """A blueprint the store accepts but the image type refuses: 400, as osbuild-composer answers."""
    bp = ('name = "compose-etc"\nversion = "0.0.1"\n'
          '[[customizations.filesystem]]\nmountpoint = "/etc"\nminsize = 1073741824\n')
    assert client.post_toml(f"{V0}/blueprints/new", bp).status == 200
    before = client.get(f"{V1}/compose/status/*").json()
    r = client.post(f"{V1}/compose", {"blueprint_name": "compose-etc", "compose_type": "qcow2"})
    assert _err(r) == {"id": "ManifestCreationFailed",
                       "msg": "failed to initialize osbuild manifest: The following custom "
                              "mountpoints are not supported ['/etc']"}
    assert client.get(f"{V1}/compose/status/*").json() == before
