"""AWS target against moto in server mode (real HTTP on loopback).

moto implements S3 multipart, the EBS direct APIs, snapshots, register-image, tags and launch
permissions, so all of those are real calls here. moto does not implement `import_snapshot` /
`describe_import_snapshot_tasks`: the import-snapshot test stubs exactly those two calls with
botocore's Stubber (on a separate EC2 client) and nothing else.
"""

from __future__ import annotations

import base64
import hashlib
from typing import Any

import boto3
from botocore.stub import ANY, Stubber

from tests.uploaders.conftest import MiB, aws_settings, cancel_once_sent, write_image
from uploaders import service
from uploaders.aws import EBS_BLOCK, AWSUploader
from uploaders.service import run_upload

KEYS = {"aws_access_key_id": "AKIAEXAMPLEKEY000001", "aws_secret_access_key": "x",
        "region_name": "us-east-1"}


def ec2_of(url: str) -> Any:
    return boto3.client("ec2", endpoint_url=url, **KEYS)


def test_ebs_direct_sends_only_nonzero_blocks(env, moto_clean, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port)
    upload_id, path = env.upload_for("aws", aws_settings(proxy.url(), aws_boot_mode="uefi",
                                                         aws_share_with_accounts="210987654321",
                                                         aws_tags="team=images,env=test"),
                                     "ami", "image.raw", image_name="fedora-ami")
    # data in 3 runs (one straddles a block edge); everything else holes or written zeros
    extents = [(0, 3 * EBS_BLOCK), (10 * MiB + 100, 4096), (300 * MiB, 2 * EBS_BLOCK)]
    write_image(path, 512 * MiB, extents)
    with open(path, "r+b") as fh:
        fh.seek(100 * MiB)
        fh.write(bytes(8 * MiB))  # allocated zeros: skipped too
    expected_blocks = {0, 1, 2, (10 * MiB + 100) // EBS_BLOCK, 600, 601}

    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"

    upload = env.store.upload(upload_id)
    assert upload.progress == 1.0 and upload.error == ""
    result = upload.result
    assert result["method"] == "ebs-direct" and result["region"] == "us-east-1"
    assert proxy.sent <= 1.05 * len(expected_blocks) * EBS_BLOCK + 64 * 1024

    ebs = boto3.client("ebs", endpoint_url=moto_clean.url, **KEYS)
    blocks = ebs.list_snapshot_blocks(SnapshotId=result["snapshot_id"])["Blocks"]
    assert {b["BlockIndex"] for b in blocks} == expected_blocks
    with open(path, "rb") as fh:
        for index in expected_blocks:
            got = ebs.get_snapshot_block(SnapshotId=result["snapshot_id"], BlockIndex=index,
                                         BlockToken="unused")
            fh.seek(index * EBS_BLOCK)
            data = fh.read(EBS_BLOCK)
            assert got["BlockData"].read() == data
            assert got["Checksum"] == base64.b64encode(hashlib.sha256(data).digest()).decode()
            assert got["ChecksumAlgorithm"] == "SHA256"

    ec2 = ec2_of(moto_clean.url)
    ours = ec2.describe_snapshots(Filters=[{"Name": "description",
                                            "Values": ["celery-composer: fedora-ami"]}])["Snapshots"]
    assert [s["SnapshotId"] for s in ours] == [result["snapshot_id"]]
    image = ec2.describe_images(ImageIds=[result["ami"]])["Images"][0]
    assert image["Name"] == "fedora-ami" and image["BootMode"] == "uefi"
    assert {t["Key"]: t["Value"] for t in image["Tags"]} == {"Name": "fedora-ami", "team": "images",
                                                             "env": "test"}
    perms = ec2.describe_image_attribute(ImageId=result["ami"], Attribute="launchPermission")
    assert perms["LaunchPermissions"] == [{"UserId": "210987654321"}]
    snap_perms = ec2.describe_snapshot_attribute(SnapshotId=result["snapshot_id"],
                                                 Attribute="createVolumePermission")
    assert snap_perms["CreateVolumePermissions"] == [{"UserId": "210987654321"}]
    log = service.upload_store.read_log(env.db, upload_id)
    assert "registered " + result["ami"] in log and "progress: 75% of" in log  # 100 % = FINISHED only


def test_import_snapshot_path(env, moto_clean, monkeypatch) -> None:
    """osbuild-composer's road: S3 multipart, import (stubbed: moto lacks it), register, delete object."""
    s3 = boto3.client("s3", endpoint_url=moto_clean.url, **KEYS)
    s3.create_bucket(Bucket="images")
    ec2 = ec2_of(moto_clean.url)
    volume = ec2.create_volume(Size=1, AvailabilityZone="us-east-1a")
    imported = ec2.create_snapshot(VolumeId=volume["VolumeId"])["SnapshotId"]

    importer = ec2_of(moto_clean.url)
    stub = Stubber(importer)
    stub.add_response("import_snapshot", {"ImportTaskId": "import-snap-0123"}, {
        "Description": ANY, "DiskContainer": {"Description": "imported", "Format": "RAW",
                                              "UserBucket": {"S3Bucket": "images", "S3Key": ANY}}})
    stub.add_response("describe_import_snapshot_tasks", {"ImportSnapshotTasks": [{
        "ImportTaskId": "import-snap-0123",
        "SnapshotTaskDetail": {"Status": "active", "Progress": "40", "StatusMessage": "converting"}}]},
        {"ImportTaskIds": ["import-snap-0123"]})
    stub.add_response("describe_import_snapshot_tasks", {"ImportSnapshotTasks": [{
        "ImportTaskId": "import-snap-0123",
        "SnapshotTaskDetail": {"Status": "completed", "SnapshotId": imported}}]},
        {"ImportTaskIds": ["import-snap-0123"]})
    stub.activate()
    monkeypatch.setattr(AWSUploader, "import_client", lambda self, settings: importer)
    monkeypatch.setattr(AWSUploader, "import_poll_seconds", 0.0)

    upload_id, path = env.upload_for("aws", aws_settings(moto_clean.url, aws_bucket="images",
                                                         aws_upload_method="import-snapshot"),
                                     "ami", "image.raw", image_name="imported")
    write_image(path, 40 * MiB, [(0, 40 * MiB)])
    assert run_upload(env.config, upload_id, store=env.store, workers=4) == "FINISHED"
    stub.assert_no_pending_responses()
    result = env.store.upload(upload_id).result
    assert result["snapshot_id"] == imported and result["method"] == "import-snapshot"
    assert ec2.describe_images(ImageIds=[result["ami"]])["Images"][0]["Name"] == "imported"
    assert s3.list_objects_v2(Bucket="images").get("KeyCount") == 0  # the S3 copy is removed
    log = service.upload_store.read_log(env.db, upload_id)
    assert "import import-snap-0123: active 40% converting" in log


def test_missing_bucket_fails_clearly(env, moto_clean) -> None:
    upload_id, path = env.upload_for("aws", aws_settings(moto_clean.url, aws_bucket="no-such-bucket",
                                                         aws_upload_method="import-snapshot"),
                                     "ami", "image.raw")
    write_image(path, MiB, [(0, 1000)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error == "bucket 'no-such-bucket' does not exist"
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


def test_bad_credentials_fail_clearly_and_stay_secret(env, moto_auth, caplog) -> None:
    server, _ = moto_auth
    secret = "wrong-secret-value-1234"
    upload_id, path = env.upload_for("aws", aws_settings(server.url, aws_access_key="AKIANOTAREALKEY00000",
                                                         aws_secret_key=secret), "ami", "image.raw")
    write_image(path, MiB, [(0, 1000)])
    caplog.set_level("DEBUG")
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error.startswith("starting the EBS snapshot: InvalidClientTokenId")
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"
    log = service.upload_store.read_log(env.db, upload_id)
    assert "Credential=********/" in caplog.text  # the SDK's wire log was there, redacted
    for text in (log, upload.error, caplog.text):
        assert secret not in text
        # botocore's DEBUG lines carry the Authorization header with the key id: redacted too
        assert "AKIANOTAREALKEY00000" not in text



def test_cancel_mid_upload_stops_and_cleans_up(env, moto_clean, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port, rate=2 * MiB)
    upload_id, path = env.upload_for("aws", aws_settings(proxy.url()), "ami", "image.raw")
    write_image(path, 128 * MiB, [(0, 96 * MiB)])
    canceller = cancel_once_sent(env.store, upload_id, proxy)
    assert run_upload(env.config, upload_id, store=env.store, workers=4) == "CANCELLED"
    canceller.join()
    upload = env.store.upload(upload_id)
    assert upload.status == "CANCELLED" and upload.error.startswith("cancelled on request after ")
    assert proxy.sent < 48 * MiB  # stopped well before the end
    log = service.upload_store.read_log(env.db, upload_id)
    assert "cancel requested" in log and "deleted incomplete snapshot" in log
    ours = ec2_of(moto_clean.url).describe_snapshots(
        Filters=[{"Name": "description", "Values": ["celery-composer: test-image"]}])["Snapshots"]
    assert ours == []
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


def test_network_failure_mid_upload_fails_clearly(env, moto_clean, proxy_to) -> None:
    proxy = proxy_to(moto_clean.port, rate=8 * MiB)
    upload_id, path = env.upload_for("aws", aws_settings(proxy.url()), "ami", "image.raw")
    write_image(path, 64 * MiB, [(0, 32 * MiB)])
    proxy.cut_after(3 * MiB)
    assert run_upload(env.config, upload_id, store=env.store, workers=4) == "FAILED"
    upload = env.store.upload(upload_id)
    assert upload.error.startswith("writing snapshot snap-")
    assert "network error" in upload.error
    assert env.store.get(upload.compose_id).queue_status == "FINISHED"


def test_xz_image_is_unpacked_sparse_and_sent_by_ebs_direct(env, moto_clean, tmp_path) -> None:
    import lzma

    raw = tmp_path / "image.raw"
    write_image(raw, 16 * MiB, [(2 * EBS_BLOCK, EBS_BLOCK), (12 * MiB, 1000)])
    upload_id, path = env.upload_for("aws", aws_settings(moto_clean.url), "ec2", "image.raw.xz")
    with open(raw, "rb") as src, lzma.open(path, "wb", preset=0) as out:
        out.write(src.read())
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    assert result["method"] == "ebs-direct"
    ebs = boto3.client("ebs", endpoint_url=moto_clean.url, **KEYS)
    blocks = ebs.list_snapshot_blocks(SnapshotId=result["snapshot_id"])["Blocks"]
    assert {b["BlockIndex"] for b in blocks} == {2, 12 * MiB // EBS_BLOCK}
    assert sorted(p.name for p in path.parent.iterdir()) == ["image.raw.xz"]  # unpacked copy removed
