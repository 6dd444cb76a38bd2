"""The `oci` target against `OCIDouble`, a local HTTP double of the Object Storage and Compute
endpoints it calls (no OCI emulator exists to run here). The `oci` SDK's real clients and request
signer run against it; the double verifies every request's signature with the registered key."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent
from uploaders import service
from uploaders.base import SettingsError, get_uploader
from uploaders.service import run_upload

oci = pytest.importorskip("oci", reason="the oci extra is installed by `make test-deps`")

USER = "ocid1.user.oc1..aaaaaaaadoubleuser"
TENANCY = "ocid1.tenancy.oc1..aaaaaaaadoubletenancy"
COMPARTMENT = "ocid1.compartment.oc1..aaaaaaaadoublecompartment"
FINGERPRINT = "12:34:56:78:9a:bc:de:f0:12:34:56:78:9a:bc:de:f0"


def _key_pair() -> tuple[str, bytes]:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                              serialization.NoEncryption()).decode(),
            key.public_key().public_bytes(serialization.Encoding.PEM,
                                          serialization.PublicFormat.SubjectPublicKeyInfo))


@pytest.fixture(scope="module")
def key() -> tuple[str, bytes]:
    return _key_pair()


@pytest.fixture
def double(key: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from tests.uploaders.doubles import OCIDouble
    from uploaders.oci import OCIUploader

    monkeypatch.setattr(OCIUploader, "poll_seconds", 0.05)
    server = OCIDouble(f"{TENANCY}/{USER}/{FINGERPRINT}", key[1], "images-ns", {"images"})
    yield server
    server.stop()


def settings(double: Any, private_key: str, **extra: Any) -> dict[str, Any]:
    return {"user": USER, "tenancy": TENANCY, "region": "us-ashburn-1", "compartment": COMPARTMENT,
            "bucket": "images", "namespace": "images-ns", "private_key": private_key,
            "fingerprint": FINGERPRINT, "object_storage_endpoint": double.url,
            "compute_endpoint": double.url, **extra}


def write_qcow2(path: Any, size: int) -> bytes:
    data = b"QFI\xfb" + os.urandom(size - 4)
    path.write_bytes(data)
    return data


def test_image_imported_and_object_removed(env, double, key) -> None:
    upload_id, path = env.upload_for("oci", settings(double, key[0]), "oci", "disk.qcow2",
                                     image_name="rhel-oci")
    data = write_qcow2(path, 40 * MiB)  # three 16 MiB parts
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    image = double.images[result["image_id"]]
    assert image["displayName"] == "rhel-oci" and image["compartmentId"] == COMPARTMENT
    assert image["lifecycleState"] == "AVAILABLE" and image["launchMode"] == "PARAVIRTUALIZED"
    assert image["source"]["sourceImageType"] == "QCOW2" and image["source"]["namespaceName"] == "images-ns"
    (upload,) = double.multipart.values()
    assert upload["state"] == "committed" and len(upload["parts"]) == 3
    assert b"".join(p[1] for _, p in sorted(upload["parts"].items())) == data
    assert double.objects == {}  # deleted once the image is AVAILABLE
    assert double.polls[result["image_id"]] >= 2
    log = service.upload_store.read_log(env.db, upload_id)
    assert key[0].splitlines()[1] not in log


def test_missing_bucket_and_bad_key_named(env, double, key) -> None:
    upload_id, path = env.upload_for("oci", settings(double, key[0], bucket="absent"), "oci", "disk.qcow2")
    write_qcow2(path, 4096)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith("bucket 'absent' in namespace 'images-ns': 404 BucketNotFound"), error

    stranger, _ = _key_pair()
    upload_id, path = env.upload_for("oci", settings(double, stranger), "oci", "disk.qcow2")
    write_qcow2(path, 4096)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert "401 NotAuthenticated: authentication failed" in error, error
    assert stranger.splitlines()[1] not in error


def test_refused_import_names_the_image_and_removes_the_object(env, double, key) -> None:
    upload_id, path = env.upload_for("oci", settings(double, key[0]), "oci", "disk.qcow2", image_name="bad")
    path.write_bytes(os.urandom(4096))  # not a QCOW2
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith(f"importing image 'bad' in compartment {COMPARTMENT}: 400 InvalidParameter"), error
    assert double.objects == {}


def test_cancel_aborts_the_multipart_upload(env, double, key, proxy_to, monkeypatch) -> None:
    """Cancelled mid-transfer through a slow relay: the multipart upload is aborted between
    parts (2 MiB here, so the parts in flight are a small share), nothing is committed and no
    image is imported."""
    monkeypatch.setattr("uploaders.oci.PART_SIZE", 2 * MiB)
    proxy = proxy_to(double.port, rate=4 * MiB)
    upload_id, path = env.upload_for("oci", settings(double, key[0], object_storage_endpoint=proxy.url()),
                                     "oci", "disk.qcow2")
    write_qcow2(path, 64 * MiB)
    canceller = cancel_once_sent(env.store, upload_id, proxy, sent=2 * MiB)
    assert run_upload(env.config, upload_id, store=env.store, workers=2) == "CANCELLED"
    canceller.join()
    (upload,) = double.multipart.values()
    assert upload["state"] == "aborted" and proxy.sent < 32 * MiB
    assert double.objects == {} and double.images == {}


def test_settings_checked_first() -> None:
    with pytest.raises(SettingsError, match="'private_key' must be the PEM"):
        get_uploader("oci").validate({"user": USER, "tenancy": TENANCY, "region": "us-ashburn-1",
                                      "compartment": COMPARTMENT, "bucket": "b", "namespace": "n",
                                      "private_key": "not a key", "fingerprint": FINGERPRINT}, "img")
    with pytest.raises(SettingsError, match='invalid for setting "user"'):
        get_uploader("oci").validate({"user": "alice"}, "img")
