"""The artifact store on an S3-compatible server (moto in server mode, a real HTTP S3 peer on
loopback): streaming in and out, byte ranges through the API, uploads reading from it, deletion,
and a store that cannot be reached."""

from __future__ import annotations

import io
import os
import socket
import tarfile
from pathlib import Path
from typing import Any

import boto3
import pytest

from core.artifacts import ArtifactsUnavailable, S3Artifacts
from core.config import load
from core.store.composes import ComposeStore
from tests.databases import database_for, database_url

BUCKET = "composer-artifacts"
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
         "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture
def s3(moto_clean: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    for key, value in CREDS.items():
        monkeypatch.setenv(key, value)
    client = boto3.client("s3", endpoint_url=moto_clean.url, region_name="us-east-1")
    client.create_bucket(Bucket=BUCKET)
    return client


def _image(tmp_path: Path, size: int) -> tuple[Path, bytes]:
    data = os.urandom(size)
    path = tmp_path / "disk.qcow2"
    path.write_bytes(data)
    return path, data


def test_put_read_ranges_fetch_delete(s3, moto_clean, tmp_path):
    store = S3Artifacts(BUCKET, "images/", endpoint_url=moto_clean.url, region="us-east-1")
    cid = "0c6b3e2e-0000-4000-8000-000000000001"
    path, data = _image(tmp_path, 9 * 1024 * 1024 + 17)  # several multipart parts
    assert store.put(cid, "disk.qcow2", path) == len(data)
    assert not path.exists()  # streamed up, the local copy dropped
    keys = [o["Key"] for o in s3.list_objects_v2(Bucket=BUCKET)["Contents"]]
    assert keys == [f"images/{cid}/disk.qcow2"]
    assert store.size(cid, "disk.qcow2") == len(data)
    assert b"".join(store.read(cid, "disk.qcow2")) == data
    assert b"".join(store.read(cid, "disk.qcow2", 5, 9)) == data[5:10]
    fetched = store.fetch(cid, "disk.qcow2", tmp_path / "scratch")
    assert fetched.read_bytes() == data
    with pytest.raises(FileNotFoundError):
        store.size(cid, "other.raw")
    with pytest.raises(ValueError):
        store.size(cid, "..")
    store.delete(cid)
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_unreachable_store_is_a_weldr_error_naming_it(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "testing")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "testing")
    store = S3Artifacts(BUCKET, "", endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1")
    path, _ = _image(tmp_path, 1024)
    with pytest.raises(ArtifactsUnavailable) as info:
        store.put("0c6b3e2e-0000-4000-8000-000000000001", "disk.qcow2", path)
    assert (info.value.id, info.value.http_status) == ("ArtifactsError", 503)
    assert f"s3://{BUCKET}/ at http://127.0.0.1:{port}" in info.value.msg
    assert path.exists()  # nothing lost: the image stays where the build left it


def test_api_serves_image_results_and_ranges_from_the_bucket(s3, moto_clean, start_weldr_server,
                                                             tmp_path):
    """The API has its own, empty artifacts directory: everything it sends comes from S3."""
    server = start_weldr_server(env={**CREDS, "CELERY_COMPOSER_ARTIFACTS_URL": f"s3://{BUCKET}/a",
                                     "CELERY_COMPOSER_ARTIFACTS_ENDPOINT_URL": moto_clean.url})
    worker_dir = tmp_path / "build-worker"  # the build worker's machine: a store of its own
    config = load(environ={}, state_dir=server.state_dir, artifacts_dir=worker_dir / "artifacts",
                  database_url=database_url(server.state_dir), artifacts_url=f"s3://{BUCKET}/a",
                  artifacts_endpoint_url=moto_clean.url)
    store = ComposeStore.from_config(config, database_for(server.state_dir))
    compose = store.create(blueprint={"name": "bp", "version": "0.0.1"}, compose_type="qcow2",
                           distro="centos-9", arch="x86_64", image_filename="disk.qcow2",
                           mime_type="application/x-qemu-disk")
    store.mark_running(compose.id)
    path, data = _image(tmp_path, 3 * 1024 * 1024 + 5)
    size = store.artifacts.put(compose.id, "disk.qcow2", path)
    store.append_log(compose.id, "built on another machine\n")
    store.mark_finished(compose.id, image_size=size)

    client = server.client
    r = client.get(f"/api/v1/compose/image/{compose.id}")
    assert r.status == 200 and r.body == data and r.headers["Accept-Ranges"] == "bytes"
    r = client.get(f"/api/v1/compose/image/{compose.id}", headers={"Range": "bytes=100-199"})
    assert r.status == 206 and r.body == data[100:200]
    assert r.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
    r = client.get(f"/api/v1/compose/image/{compose.id}", headers={"Range": "bytes=-10"})
    assert r.status == 206 and r.body == data[-10:]
    r = client.get(f"/api/v1/compose/image/{compose.id}", headers={"Range": f"bytes={len(data)}-"})
    assert r.status == 416 and r.json()["errors"][0]["id"] == "InvalidRange"
    r = client.get(f"/api/v1/compose/results/{compose.id}")
    with tarfile.open(fileobj=io.BytesIO(r.body)) as tar:
        members = {m.name: tar.extractfile(m).read() for m in tar.getmembers()}  # type: ignore[union-attr]
    assert members[f"{compose.id}-disk.qcow2"] == data
    assert members["logs/osbuild.log"] == b"built on another machine\n"
    assert not (server.state_dir / "artifacts" / compose.id).exists()

    r = client.delete(f"/api/v1/compose/delete/{compose.id}")
    assert r.json()["uuids"] == [{"uuid": compose.id, "status": True}]
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)
