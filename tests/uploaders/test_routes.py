"""Weldr v1 upload routes (catalogue §6.38–6.46) on the real Flask app over a real store.

The upload itself runs through `run_compose_uploads`, the function the pipeline's
`compose.upload.<target>` task calls, with the local target (no emulator needed here).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from core.errors import WeldrError
from core.store import uploads as upload_store
from tests.uploaders.conftest import MiB, write_image
from uploaders.service import run_compose_uploads, validate_upload_request

SECRET = "very-secret-key-value-42"


@pytest.fixture
def client(env) -> Any:
    from app import create_app

    app = create_app(env.config, None, db=env.db)  # no pipeline: the tests run the uploads
    return app.test_client()


def ok(resp: Any) -> dict:
    assert resp.status_code == 200, resp.data
    body = resp.get_json()
    assert body["status"] is True, body
    return body


def error(resp: Any, status: int, id: str) -> str:
    assert resp.status_code == status, resp.data
    body = resp.get_json()
    assert body["status"] is False and body["errors"][0]["id"] == id, body
    return body["errors"][0]["msg"]


def test_providers_describe_targets_without_secrets(client, env) -> None:
    ok(client.post("/api/v1/upload/providers/save", json={
        "provider": "aws", "profile": "prod",
        "settings": {"aws_region": "eu-west-1", "aws_access_key": "AKIAPROFILE", "aws_secret_key": SECRET}}))
    resp = client.get("/api/v1/upload/providers")
    providers = ok(resp)["providers"]
    assert set(providers) == {"aws", "aws.s3", "azure", "container", "gcp", "local", "oci", "vmware"}
    aws = providers["aws"]
    assert aws["display"] == "AWS" and aws["supported_types"][0] == "ami"
    assert aws["settings-info"]["region"]["display"] == "AWS Region"
    assert aws["profiles"] == {"prod": {"region": "eu-west-1"}}
    assert providers["container"]["supported_types"] == ["container", "iot-container", "edge-container"]
    assert providers["container"]["settings-info"]["tls_verify"]["type"] == "boolean"
    assert set(providers["gcp"]["settings-info"]) >= {"region", "bucket", "object", "credentials"}
    assert set(providers["vmware"]["settings-info"]) >= {"host", "username", "password", "datacenter",
                                                          "cluster", "datastore"}
    assert set(providers["oci"]["settings-info"]) >= {"tenancy", "region", "user", "bucket", "namespace",
                                                       "private_key", "fingerprint", "compartment"}
    assert set(providers["aws.s3"]["settings-info"]) >= {"endpoint", "ca_bundle", "skip_ssl_verification"}
    assert SECRET.encode() not in resp.data and b"AKIAPROFILE" not in resp.data
    # stored for use, with the secret
    assert upload_store.load_profile(env.db, "aws", "prod")["secretAccessKey"] == SECRET
    assert client.get("/api/v0/upload/providers").status_code == 404


def test_save_profile_errors(client) -> None:
    assert error(client.post("/api/v1/upload/providers/save", data=""), 400, "MissingPost") == "Missing POST body"
    msg = error(client.post("/api/v1/upload/providers/save", json={"provider": "aws", "profile": "p"}),
                400, "UploadError")
    assert msg == "Missing parameter 'settings'!"
    msg = error(client.post("/api/v1/upload/providers/save", json={
        "provider": "aws", "profile": "p", "settings": {"region": "mars"}}), 200, "UploadError")
    assert msg == 'Value "mars" is invalid for setting "region"!'
    msg = error(client.post("/api/v1/upload/providers/save", json={
        "provider": "gopher", "profile": "p", "settings": {}}), 200, "UploadError")
    assert msg == 'Couldn\'t find provider "gopher"!'


def test_delete_profile(client, env, tmp_path: Path) -> None:
    # a profile the local target could never use (outside local_upload_dirs) is refused on save
    msg = error(client.post("/api/v1/upload/providers/save", json={
        "provider": "local", "profile": "nfs", "settings": {"directory": "/srv/images"}}), 200,
        "UploadError")
    assert "is not in local_upload_dirs" in msg
    ok(client.post("/api/v1/upload/providers/save", json={
        "provider": "local", "profile": "nfs", "settings": {"directory": str(tmp_path)}}))
    ok(client.delete("/api/v1/upload/providers/delete/local/nfs"))
    assert upload_store.load_profile(env.db, "local", "nfs") is None
    msg = error(client.delete("/api/v1/upload/providers/delete/local/nfs"), 200, "UploadError")
    assert msg == 'Profile "nfs" for provider "local" does not exist!'


def test_schedule_run_info_log(client, env, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    compose, image = env.finished_compose("qcow2", "disk.qcow2")
    write_image(image, 16 * MiB, [(0, MiB)])
    ok(client.post("/api/v1/upload/providers/save", json={
        "provider": "local", "profile": "here", "settings": {"directory": str(out)}}))
    body = ok(client.post(f"/api/v1/compose/uploads/schedule/{compose.id}",
                          json={"image_name": "nightly", "provider": "local", "profile": "here"}))
    upload_id = body["upload_id"]
    info = ok(client.get(f"/api/v1/upload/info/{upload_id}"))["upload"]
    assert info["uuid"] == upload_id and info["status"] == "WAITING"
    assert info["provider_name"] == "local" and info["image_name"] == "nightly"
    assert info["settings"] == {"directory": str(out)} and info["image_path"] == str(image)

    assert run_compose_uploads(env.config, compose.id, "local", store=env.store) == ["FINISHED"]
    info = ok(client.get(f"/api/v1/upload/info/{upload_id}"))["upload"]
    assert info["status"] == "FINISHED" and info["result"] == {"path": str(out / "nightly.qcow2")}
    log = ok(client.get(f"/api/v1/upload/log/{upload_id}"))
    assert log["upload_id"] == upload_id and "copied disk.qcow2" in log["log"]
    assert (out / "nightly.qcow2").read_bytes() == image.read_bytes()


def test_schedule_errors(client, env) -> None:
    compose, _ = env.finished_compose("qcow2", "disk.qcow2")
    url = f"/api/v1/compose/uploads/schedule/{compose.id}"
    assert error(client.post(url, data=""), 400, "MissingPost") == "Missing POST body"
    msg = error(client.post(url, json={"provider": "aws", "settings": {}}), 400, "UploadError")
    assert msg == "Missing parameter 'image_name'!"
    msg = error(client.post(url, json={"image_name": "x", "provider": "aws",
                                       "settings": {"aws_region": "us-east-1"}}), 400, "UploadError")
    assert msg == 'Type "qcow2" is not supported by provider "aws"!'
    msg = error(client.post(url, json={"image_name": "x", "provider": "local", "profile": "none"}),
                400, "UploadError")
    assert msg == 'Profile "none" for provider "local" does not exist!'
    missing = "11111111-2222-3333-4444-555555555555"
    msg = error(client.post(f"/api/v1/compose/uploads/schedule/{missing}",
                            json={"image_name": "x", "provider": "local", "settings": {"directory": "/"}}),
                400, "UnknownUUID")
    assert msg == f"{missing} is not a valid build uuid"


def test_secrets_never_in_info_or_log(client, env) -> None:
    compose, image = env.finished_compose("ami", "image.raw")
    write_image(image, MiB, [(0, 100)])
    body = ok(client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", json={
        "image_name": "x", "provider": "aws",
        "settings": {"aws_region": "us-east-1", "aws_access_key": "AKIAX", "aws_secret_key": SECRET,
                     # nothing listens there: the upload fails at once, on loopback
                     "aws_endpoint_url": "http://127.0.0.1:9"}}))
    run_compose_uploads(env.config, compose.id, "aws", store=env.store)
    for url in (f"/api/v1/upload/info/{body['upload_id']}", f"/api/v1/upload/log/{body['upload_id']}"):
        resp = client.get(url)
        assert resp.status_code == 200 and SECRET.encode() not in resp.data, url
    for url in (f"/api/v1/compose/info/{compose.id}", "/api/v1/compose/finished"):
        resp = client.get(url)  # api-core's routes, rendering uploads with render_upload
        assert resp.status_code == 404 or SECRET.encode() not in resp.data, url
    info = ok(client.get(f"/api/v1/upload/info/{body['upload_id']}"))["upload"]
    assert info["status"] == "FAILED" and "network error" in info["error"]
    assert env.store.get(compose.id).queue_status == "FINISHED"


def test_cancel_reset_delete(client, env, tmp_path: Path) -> None:
    compose, image = env.finished_compose("qcow2", "disk.qcow2")
    write_image(image, MiB, [(0, 100)])
    upload_id = ok(client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", json={
        "image_name": "x", "provider": "local", "settings": {"directory": str(tmp_path)}}))["upload_id"]
    assert ok(client.delete(f"/api/v1/upload/cancel/{upload_id}"))["upload_id"] == upload_id
    assert env.store.upload(upload_id).status == "CANCELLED"
    msg = error(client.delete(f"/api/v1/upload/cancel/{upload_id}"), 200, "UploadError")
    assert msg == "Can't cancel, status is already CANCELLED!"
    # a cancelled upload is not run by the worker
    assert run_compose_uploads(env.config, compose.id, "local", store=env.store) == []

    ok(client.post(f"/api/v1/upload/reset/{upload_id}", json={"image_name": "renamed"}))
    upload = env.store.upload(upload_id)
    assert upload.status == "WAITING" and upload.image_name == "renamed"
    msg = error(client.post(f"/api/v1/upload/reset/{upload_id}"), 200, "UploadError")
    assert msg == "Can't reset, status is WAITING!"
    assert run_compose_uploads(env.config, compose.id, "local", store=env.store) == ["FINISHED"]
    assert (tmp_path / "renamed.qcow2").exists()

    ok(client.delete(f"/api/v1/upload/delete/{upload_id}"))
    msg = error(client.get(f"/api/v1/upload/info/{upload_id}"), 200, "UploadError")
    assert msg == f"Could not find upload {upload_id}!"
    assert upload_store.read_log(env.db, upload_id) == ""


def test_validate_upload_request_for_post_compose(env) -> None:
    upload_store.save_profile(env.db, "azure", "dev", {"storage_account_name": "acct",
                                                       "storage_container": "images", "sas_token": "sv=x"})
    request = validate_upload_request({"image_name": "img", "provider": "azure", "profile": "dev"},
                                      "vhd", env.config, env.db)
    assert request == {"provider": "azure", "image_name": "img",
                       "settings": {"storageAccount": "acct", "container": "images",
                                    "sas_token": "sv=x"}}
    # the earlier names are accepted and stored under osbuild-composer's
    request = validate_upload_request({"image_name": "img", "provider": "aws", "settings": {
        "aws_region": "us-east-1", "aws_access_key": "A", "aws_secret_key": "S"}}, "ami", env.config,
        env.db)
    assert request["settings"] == {"region": "us-east-1", "accessKeyID": "A", "secretAccessKey": "S"}
    with pytest.raises(WeldrError) as err:
        validate_upload_request({"image_name": "img", "provider": "azure", "settings": {
            "storage_account_name": "acct"}}, "vhd", env.config, env.db)
    assert err.value.id == "UploadError" and "'container'" in err.value.msg
    with pytest.raises(WeldrError) as err:
        validate_upload_request({"provider": "azure", "settings": {}}, "vhd", env.config, env.db)
    assert err.value.msg == "Missing parameter 'image_name'!"
    # operator defaults fill required settings
    env.config.upload_defaults = {"aws": {"aws_region": "eu-north-1"}}
    assert validate_upload_request({"image_name": "i", "provider": "aws", "settings": {}}, "ami",
                                   env.config, env.db)["settings"] == {}


def test_upload_left_running_by_a_lost_worker_is_restarted(env, tmp_path: Path) -> None:
    compose, image = env.finished_compose("qcow2", "disk.qcow2")
    write_image(image, MiB, [(0, 100)])
    upload_id = env.store.add_upload(compose.id, "local", "again", {"directory": str(tmp_path)})
    env.store.update_upload(upload_id, status="RUNNING", progress=0.4)  # its worker was killed
    assert run_compose_uploads(env.config, compose.id, "local", store=env.store) == ["FINISHED"]
    assert "worker lost" in upload_store.read_log(env.db, upload_id)
    assert (tmp_path / "again.qcow2").exists()


def test_osbuild_composer_provider_names_through_the_routes(client, env) -> None:
    """`generic.s3` is handled as `aws.s3` (as osbuild-composer does), unknown keys are dropped,
    and what comes back carries neither secrets nor the dropped keys."""
    compose, _ = env.finished_compose("qcow2", "disk.qcow2")
    upload_id = ok(client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", json={
        "image_name": "img", "provider": "generic.s3", "settings": {
            "region": "us-east-1", "accessKeyID": "AKIAGENERIC", "secretAccessKey": SECRET,
            "bucket": "images", "key": "disk.qcow2", "endpoint": "https://minio.example.com",
            "skip_ssl_verification": True, "public": True}}))["upload_id"]
    upload = env.store.upload(upload_id)
    assert upload.target == "aws.s3" and "public" not in upload.settings
    assert upload.settings["secretAccessKey"] == SECRET  # stored for the worker
    resp = client.get(f"/api/v1/upload/info/{upload_id}")
    info = ok(resp)["upload"]
    assert info["provider_name"] == "aws.s3"
    assert info["settings"] == {"region": "us-east-1", "bucket": "images", "key": "disk.qcow2",
                                "endpoint": "https://minio.example.com", "skip_ssl_verification": True}
    assert SECRET.encode() not in resp.data and b"AKIAGENERIC" not in resp.data


def test_profiles_under_aliases(client, env) -> None:
    """A profile saved under an earlier name (`s3`) is the `aws.s3` target's; one saved under
    `generic.s3` is stored under `aws.s3`; either name finds and deletes it."""
    upload_store.save_profile(env.db, "s3", "old", {"bucket": "legacy", "access_key_id": "A",
                                                    "secret_access_key": SECRET})
    ok(client.post("/api/v1/upload/providers/save", json={
        "provider": "generic.s3", "profile": "new", "settings": {"bucket": "fresh"}}))
    assert upload_store.load_profile(env.db, "aws.s3", "new") == {"bucket": "fresh"}
    resp = client.get("/api/v1/upload/providers")
    profiles = ok(resp)["providers"]["aws.s3"]["profiles"]
    assert profiles == {"old": {"bucket": "legacy"}, "new": {"bucket": "fresh"}}
    assert SECRET.encode() not in resp.data
    compose, _ = env.finished_compose("qcow2", "disk.qcow2")
    upload_id = ok(client.post(f"/api/v1/compose/uploads/schedule/{compose.id}", json={
        "image_name": "img", "provider": "aws.s3", "profile": "old"}))["upload_id"]
    assert env.store.upload(upload_id).settings == {"bucket": "legacy", "accessKeyID": "A",
                                                    "secretAccessKey": SECRET}
    ok(client.delete("/api/v1/upload/providers/delete/generic.s3/old"))
    assert upload_store.load_profile(env.db, "s3", "old") is None


def test_entry_stored_under_an_earlier_name_runs_on_its_target(env, tmp_path: Path) -> None:
    """An upload stored as `s3` before the rename is run by the `aws.s3` task, and shown as such."""
    from uploaders.service import render_upload

    compose, image = env.finished_compose("qcow2", "disk.qcow2")
    write_image(image, MiB, [(0, 100)])
    upload_id = env.store.add_upload(compose.id, "s3", "img", {
        "bucket": "b", "endpoint_url": "http://127.0.0.1:9"})  # nothing listens: fails at once
    assert render_upload(env.store.upload(upload_id))["provider_name"] == "aws.s3"
    assert run_compose_uploads(env.config, compose.id, "aws.s3", store=env.store) == ["FAILED"]
    assert "bucket 'b'" in env.store.upload(upload_id).error
