"""The `aws.s3` target (osbuild-composer's `aws.s3` and `generic.s3`) against moto's S3 in server
mode (MinIO is not installable from the registries this project uses, so moto's S3 stands in for
any S3-compatible endpoint; a TLS-terminating relay with our own CA in front of it for the
endpoint-with-custom-CA cases)."""

from __future__ import annotations

import urllib.request
from typing import Any

import boto3
import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent, wait_until, write_image
from uploaders import service
from uploaders.service import run_upload

KEYS = {"aws_access_key_id": "AKIAEXAMPLEKEY000001", "aws_secret_access_key": "x",
        "region_name": "us-east-1"}


def s3_settings(url: str, bucket: str = "images", **extra: Any) -> dict[str, Any]:
    """osbuild-composer's names for the settings of `aws.s3`."""
    return {"endpoint": url, "bucket": bucket, "region": "us-east-1",
            "accessKeyID": "AKIAEXAMPLEKEY000001", "secretAccessKey": "s3-secret-for-tests", **extra}


@pytest.fixture
def bucket(moto_clean) -> Any:
    s3 = boto3.client("s3", endpoint_url=moto_clean.url, **KEYS)
    s3.create_bucket(Bucket="images")
    return s3


def test_multipart_upload_and_presigned_url(env, moto_clean, bucket, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port)
    upload_id, path = env.upload_for("aws.s3", s3_settings(proxy.url(), presigned_url_expiry="600"),
                                     "qcow2", "disk.qcow2", image_name="nightly.qcow2")
    write_image(path, 40 * MiB, [(0, 40 * MiB)])
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    assert result["url"] == "s3://images/nightly.qcow2"
    head = bucket.head_object(Bucket="images", Key="nightly.qcow2")
    assert head["ContentLength"] == 40 * MiB
    assert head["ETag"].strip('"').endswith("-5")  # five 8 MiB parts
    with urllib.request.urlopen(result["presigned_url"], timeout=30) as resp:
        assert resp.read() == path.read_bytes()
    assert 40 * MiB <= proxy.sent <= 1.02 * 40 * MiB


def test_missing_bucket(env, moto_clean) -> None:
    upload_id, path = env.upload_for("aws.s3", s3_settings(moto_clean.url, bucket="absent"), "qcow2", "d.qcow2")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error == "bucket 'absent' does not exist"
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


def test_bad_and_good_credentials(env, moto_auth) -> None:
    server, good = moto_auth
    boto3.client("s3", endpoint_url=server.url, aws_access_key_id=good["aws_access_key"],
                 aws_secret_access_key=good["aws_secret_key"], region_name="us-east-1"
                 ).create_bucket(Bucket="secured")
    upload_id, path = env.upload_for("aws.s3", s3_settings(server.url, bucket="secured"), "qcow2", "d.qcow2")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith("bucket 'secured': access denied"), error
    assert "s3-secret-for-tests" not in service.upload_store.read_log(env.db, upload_id)

    upload_id, path = env.upload_for("aws.s3", s3_settings(server.url, bucket="secured",
                                                       accessKeyID=good["aws_access_key"],
                                                       secretAccessKey=good["aws_secret_key"]),
                                     "qcow2", "d.qcow2")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"


def test_cancel_aborts_multipart(env, moto_clean, bucket, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port, rate=4 * MiB)
    upload_id, path = env.upload_for("aws.s3", s3_settings(proxy.url()), "qcow2", "d.qcow2")
    write_image(path, 96 * MiB, [(0, 96 * MiB)])
    canceller = cancel_once_sent(env.store, upload_id, proxy)
    assert run_upload(env.config, upload_id, store=env.store, workers=2) == "CANCELLED"
    canceller.join()
    assert proxy.sent < 64 * MiB
    assert bucket.list_objects_v2(Bucket="images").get("KeyCount") == 0
    wait_until(lambda: not bucket.list_multipart_uploads(Bucket="images").get("Uploads"), timeout=10)


def test_network_failure(env, moto_clean, bucket, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port, rate=8 * MiB)
    upload_id, path = env.upload_for("aws.s3", s3_settings(proxy.url()), "qcow2", "d.qcow2")
    write_image(path, 64 * MiB, [(0, 64 * MiB)])
    proxy.cut_after(8 * MiB)
    assert run_upload(env.config, upload_id, store=env.store, workers=2) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error.startswith("uploading to s3://images/test-image: network error"), upload.error
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


def test_custom_ca_bundle_endpoint(env, moto_clean, bucket, proxy_to, tls_cert) -> None:
    """An HTTPS endpoint whose certificate only `ca_bundle` vouches for: refused without it (the
    bucket named), accepted with it as a path or as PEM text, or with verification skipped."""
    proxy = proxy_to(moto_clean.port, tls=tls_cert)
    runs = {"none": {}, "path": {"ca_bundle": str(tls_cert.cert)},
            "pem": {"ca_bundle": tls_cert.cert.read_text()}, "skip": {"skip_ssl_verification": True}}
    outcome = {}
    for name, extra in runs.items():
        upload_id, path = env.upload_for("generic.s3", s3_settings(proxy.url(), key=f"{name}.qcow2",
                                                                   **extra), "qcow2", "d.qcow2")
        write_image(path, 2 * MiB, [(0, 2 * MiB)])
        outcome[name] = run_upload(env.config, upload_id, store=env.store)
        if name == "none":
            error = env.store.upload(upload_id).error
            assert error.startswith("bucket 'images'") and "SSL" in error, error
    assert outcome == {"none": "FAILED", "path": "FINISHED", "pem": "FINISHED", "skip": "FINISHED"}
    keys = sorted(o["Key"] for o in bucket.list_objects_v2(Bucket="images")["Contents"])
    assert keys == ["path.qcow2", "pem.qcow2", "skip.qcow2"]


def test_missing_ca_bundle_file_is_named(env, moto_clean, bucket) -> None:
    upload_id, path = env.upload_for("aws.s3", s3_settings(moto_clean.url, ca_bundle="/nonexistent/ca.pem"),
                                     "qcow2", "d.qcow2")
    write_image(path, MiB, [(0, 100)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    assert env.store.upload(upload_id).error == "ca_bundle: /nonexistent/ca.pem is not a file on the upload worker"
