"""The `gcp` target: storage on a real GCS emulator (gcp-storage-emulator from PyPI, resumable
uploads over real HTTP), the Compute Engine image calls and the OAuth2 token exchange against
`GCPComputeDouble`, a local HTTP double of the documented REST endpoints (no Compute Engine
emulator exists), reached through the same google-auth session the worker uses."""

from __future__ import annotations

import base64
import gzip
import io
import json
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent
from tests.uploaders.doubles import GCPComputeDouble
from tests.uploaders.emulators import GCSEmulator
from uploaders import service
from uploaders.base import SettingsError, get_uploader
from uploaders.gcp import guest_os_features
from uploaders.service import run_upload


def _key_pair() -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption()).decode()
    public = key.public_key().public_bytes(serialization.Encoding.PEM,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)
    return private, public


@pytest.fixture(scope="module")
def gcs() -> Iterator[GCSEmulator]:
    server = GCSEmulator()
    yield server
    server.stop()


@pytest.fixture(scope="module")
def key() -> tuple[str, bytes]:
    return _key_pair()


@pytest.fixture
def compute(gcs: GCSEmulator, key: tuple[str, bytes]) -> Iterator[GCPComputeDouble]:
    double = GCPComputeDouble(gcs.url)
    double.public_keys["composer@images-project.iam.gserviceaccount.com"] = key[1]
    yield double
    double.stop()


@pytest.fixture
def bucket(gcs: GCSEmulator) -> Iterator[Any]:
    client = gcs.client()
    bucket = client.create_bucket(f"images-{os.urandom(4).hex()}")
    yield bucket


def credentials(double: GCPComputeDouble, private_key: str) -> str:
    info = {"type": "service_account", "project_id": "images-project",
            "private_key_id": "0123456789abcdef0123456789abcdef01234567", "private_key": private_key,
            "client_email": "composer@images-project.iam.gserviceaccount.com",
            "client_id": "1234567890", "token_uri": f"{double.url}/token"}
    return base64.b64encode(json.dumps(info).encode()).decode()


def settings(gcs: GCSEmulator, double: GCPComputeDouble, bucket: str, private_key: str,
             **extra: Any) -> dict[str, Any]:
    return {"bucket": bucket, "region": "us-east1", "credentials": credentials(double, private_key),
            "storage_endpoint": gcs.url, "compute_endpoint": double.url, **extra}


def write_gce_tarball(path: Path, disk_bytes: int) -> None:
    """image.tar.gz as the gce types make it: a gzip'd tar holding disk.raw."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as tar:
        info = tarfile.TarInfo("disk.raw")
        info.size = disk_bytes
        tar.addfile(info, io.BytesIO(os.urandom(disk_bytes)))
    path.write_bytes(gzip.compress(payload.getvalue(), compresslevel=1))


def test_image_created_shared_and_object_removed(env, gcs, compute, bucket, key) -> None:
    upload_id, path = env.upload_for(
        "gcp", settings(gcs, compute, bucket.name, key[0],
                        share_with_accounts="user:alice@example.com,group:admins@example.com"),
        "gce", "image.tar.gz", image_name="rhel-96-nightly", distro="rhel-9.6")
    write_gce_tarball(path, 20 * MiB)
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    image = compute.images["rhel-96-nightly"]
    assert image["rawDisk"] == {"source": f"https://storage.googleapis.com/{bucket.name}/rhel-96-nightly.tar.gz",
                                "containerType": "TAR"}
    assert [f["type"] for f in image["guestOsFeatures"]] == list(guest_os_features("rhel-9.6"))
    assert "TDX_CAPABLE" in guest_os_features("rhel-9.6") and image["storageLocations"] == ["us-east1"]
    assert compute.policies["rhel-96-nightly"]["bindings"] == [
        {"role": "roles/compute.imageUser",
         "members": ["group:admins@example.com", "user:alice@example.com"]}]
    assert len(compute.called("POST", r".*/operations/operation-1/wait")) == 2  # polled until DONE
    result = env.store.upload(upload_id).result
    assert result["project_id"] == "images-project" and result["image_name"] == "rhel-96-nightly"
    assert result["self_link"].endswith("/projects/images-project/global/images/rhel-96-nightly")
    assert list(bucket.list_blobs()) == []  # the object is deleted once the image exists
    log = service.upload_store.read_log(env.db, upload_id)
    assert "PRIVATE KEY" not in log and key[0].splitlines()[1] not in log
    assert env.store.upload(upload_id).progress == 1.0


def test_guest_os_features_follow_the_distribution() -> None:
    assert guest_os_features("fedora-42") == ()
    assert "SEV_SNP_CAPABLE" not in guest_os_features("rhel-9.0")
    assert "SEV_LIVE_MIGRATABLE_V2" not in guest_os_features("rhel-9.1")
    assert "TDX_CAPABLE" not in guest_os_features("rhel-9.4")
    assert guest_os_features("centos-10") == guest_os_features("rhel-9.6")
    assert "TDX_CAPABLE" not in guest_os_features("rhel-8.10")


def test_missing_bucket_named(env, gcs, compute, key) -> None:
    upload_id, path = env.upload_for("gcp", settings(gcs, compute, "no-such-bucket", key[0]), "gce",
                                     "image.tar.gz", image_name="img")
    write_gce_tarball(path, 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert env.store.upload(upload_id).error == "bucket 'no-such-bucket' does not exist"


def test_unknown_key_refused_by_token_endpoint(env, gcs, compute, bucket) -> None:
    stranger, _ = _key_pair()  # a key the token endpoint doesn't know
    upload_id, path = env.upload_for("gcp", settings(gcs, compute, bucket.name, stranger), "gce",
                                     "image.tar.gz", image_name="img")
    write_gce_tarball(path, 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith(f"bucket '{bucket.name}': authentication failed"), error
    assert "PRIVATE KEY" not in error and stranger.splitlines()[1] not in error


def test_compute_refusal_names_image_and_project_and_object_is_removed(env, gcs, compute, bucket, key) -> None:
    compute.fail_insert = (403, "Required 'compute.images.create' permission for 'projects/images-project'")
    upload_id, path = env.upload_for("gcp", settings(gcs, compute, bucket.name, key[0]), "gce",
                                     "image.tar.gz", image_name="img")
    write_gce_tarball(path, 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith("creating image 'img' in project 'images-project': 403: permission denied"), error
    assert list(bucket.list_blobs()) == []


def test_cancel_mid_upload_leaves_no_object(env, gcs, compute, bucket, key, proxy_to, monkeypatch) -> None:
    """Cancel is seen between chunks (1 MiB here, so it lands early in the transfer)."""
    monkeypatch.setattr("uploaders.gcp.CHUNK", MiB)
    proxy = proxy_to(gcs.port, rate=4 * MiB)
    upload_id, path = env.upload_for("gcp", settings(gcs, compute, bucket.name, key[0],
                                                     storage_endpoint=proxy.url()),
                                     "gce", "image.tar.gz", image_name="img")
    path.write_bytes(os.urandom(48 * MiB))  # the bytes only: the upload never reaches Compute
    canceller = cancel_once_sent(env.store, upload_id, proxy, sent=2 * MiB)
    assert run_upload(env.config, upload_id, store=env.store) == "CANCELLED"
    canceller.join()
    assert proxy.sent < 24 * MiB
    assert list(bucket.list_blobs()) == [] and compute.images == {}


def test_settings_checked_before_upload() -> None:
    gcp = get_uploader("gcp")
    with pytest.raises(SettingsError, match="not a Compute Engine image name"):
        gcp.validate({"bucket": "images"}, "Not_An_Image")
    with pytest.raises(SettingsError, match="'credentials'"):
        gcp.validate({"bucket": "images", "credentials": "!!"}, "img")
    assert gcp.object_name({"object": "disk"}, "img") == "disk.tar.gz"
    assert gcp.object_name({}, "img") == "img.tar.gz"
