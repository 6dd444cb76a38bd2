"""AWS target: an image becomes an AMI, by one of two roads to its EBS snapshot.

- `ebs-direct` (default for raw images): the EBS direct APIs write the snapshot block by block,
  512 KiB at a time and in parallel, skipping blocks that are all zeros. No bucket, no `vmimport`
  service role, and no import service queue (minutes instead of tens of minutes). A disk image is
  mostly empty, so most of it is never sent. This is how AWS's coldsnap tool uploads.
- `import-snapshot` (osbuild-composer's road; the one for vhd/vmdk/qcow2-shaped images): multipart
  upload to S3, `import_snapshot`, wait for the import task, then delete the S3 object.

Both end in `register_image` (architecture, boot mode, ENA, root device), tags and optional sharing.
"""

from __future__ import annotations

import base64
import hashlib
import math
import threading
import time
import uuid
from pathlib import Path
from typing import Any

import boto3
import botocore.exceptions

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadContext,
    Uploader,
    UploadError,
    allocated_bytes,
    nonzero_chunks,
    register,
    run_parallel,
    unpack_xz,
)
from uploaders.s3 import check_bucket, client_config, describe_client_error, multipart_upload

EBS_BLOCK = 512 * 1024
SNAPSHOT_TIMEOUT_MINUTES = 24 * 60
GiB = 1024 ** 3
ACCOUNT_RE = r"[0-9]{12}(,[0-9]{12})*"
RAW_SUFFIXES = (".raw", ".img")
ARCH_TO_AWS = {"x86_64": "x86_64", "aarch64": "arm64"}
IMPORT_FORMATS = {".vhd": "VHD", ".vmdk": "VMDK", ".raw": "RAW", ".img": "RAW"}


@register
class AWSUploader(Uploader):
    name = "aws"
    display = "AWS"
    # July-2023 names, and today's (Fedora 40+: generic-ami, cloud-ec2; EL 9.6+: ec2-cvm)
    supported_types = ("ami", "ec2", "ec2-ha", "ec2-sap", "ec2-cvm", "generic-ami", "cloud-ec2")
    settings_info = (
        SettingInfo("region", "AWS Region", required=True, placeholder="us-east-1",
                    regex=r"[a-z]{2}(-[a-z]+)+-[0-9]+", aliases=("aws_region",)),
        SettingInfo("accessKeyID", "AWS Access Key", secret=True, aliases=("aws_access_key",)),
        SettingInfo("secretAccessKey", "AWS Secret Key", secret=True, aliases=("aws_secret_key",)),
        SettingInfo("sessionToken", "AWS Session Token", secret=True, aliases=("aws_session_token",)),
        SettingInfo("bucket", "AWS Bucket (import-snapshot only)", aliases=("aws_bucket",)),
        SettingInfo("key", "S3 object key (import-snapshot only)", aliases=("aws_object_key",)),
        SettingInfo("upload_method", "Upload method", placeholder="auto",
                    regex=r"auto|ebs-direct|import-snapshot", aliases=("aws_upload_method",)),
        SettingInfo("architecture", "Architecture (default: the compose's)", placeholder="x86_64",
                    regex=r"x86_64|arm64", aliases=("aws_architecture",)),
        SettingInfo("boot_mode", "Boot mode", placeholder="uefi-preferred",
                    regex=r"legacy-bios|uefi|uefi-preferred", aliases=("aws_boot_mode",)),
        SettingInfo("ena", "ENA support", type="boolean", aliases=("aws_ena",)),
        SettingInfo("root_device", "Root device name", placeholder="/dev/xvda",
                    regex=r"/dev/[a-z0-9]+", aliases=("aws_root_device",)),
        SettingInfo("share_with_accounts", "Share with accounts (comma-separated ids)",
                    regex=ACCOUNT_RE, aliases=("aws_share_with_accounts", "shareWithAccounts")),
        SettingInfo("tags", "Tags (key=value,…)", regex=r"[^=,]+=[^,]*(,[^=,]+=[^,]*)*",
                    aliases=("aws_tags",)),
        SettingInfo("endpoint", "Endpoint URL (testing, private endpoints)", regex=r"https?://.+",
                    aliases=("aws_endpoint_url",)),
    )
    import_poll_seconds = 10.0
    snapshot_poll_seconds = 2.0

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if bool(settings.get("accessKeyID")) != bool(settings.get("secretAccessKey")):
            raise SettingsError("Settings 'accessKeyID' and 'secretAccessKey' go together; "
                                "leave both out to use the host's credentials")
        if settings.get("upload_method") == "import-snapshot" and not settings.get("bucket"):
            raise SettingsError("Missing setting 'bucket': the import-snapshot method needs a bucket")

    # --- clients --------------------------------------------------------------------------
    def session(self, settings: dict[str, Any]) -> boto3.session.Session:
        """Explicit keys when given, else boto3's chain (environment, profile, instance role)."""
        return boto3.session.Session(
            aws_access_key_id=settings.get("accessKeyID") or None,
            aws_secret_access_key=settings.get("secretAccessKey") or None,
            aws_session_token=settings.get("sessionToken") or None,
            region_name=settings["region"])

    def client(self, settings: dict[str, Any], service: str, workers: int = 4) -> Any:
        return self.session(settings).client(service, endpoint_url=settings.get("endpoint") or None,
                                             config=client_config(workers))

    def import_client(self, settings: dict[str, Any]) -> Any:
        """The EC2 client for the import-snapshot calls; separate so tests can stub only those."""
        return self.client(settings, "ec2")

    @staticmethod
    def method_for(image_path: Path, settings: dict[str, Any]) -> str:
        method = settings.get("upload_method") or "auto"
        if method != "auto":
            return method
        return "ebs-direct" if image_path.suffix in RAW_SUFFIXES else "import-snapshot"

    # --- the upload -----------------------------------------------------------------------
    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        if image_path.suffix == ".xz":  # ec2, ec2-ha, ec2-sap: neither road takes xz
            raw = unpack_xz(image_path, ctx)
            try:
                return self.upload(raw, image_name, settings, ctx)
            finally:
                raw.unlink(missing_ok=True)
        ec2 = self.client(settings, "ec2")
        method = self.method_for(image_path, settings)
        ctx.log(f"uploading {image_path.name} to region {settings['region']} by {method}")
        if method == "ebs-direct":
            snapshot_id = self.ebs_direct(image_path, image_name, settings, ctx)
        else:
            snapshot_id = self.import_snapshot(image_path, image_name, settings, ctx)
        try:
            ctx.check_cancelled()
            self.wait_snapshot(ec2, snapshot_id, ctx)
            ami = self.register(ec2, snapshot_id, image_name, settings, ctx)
        except (UploadError, botocore.exceptions.BotoCoreError, botocore.exceptions.ClientError) as exc:
            self._delete_snapshot(ec2, snapshot_id, ctx)
            if isinstance(exc, UploadError):
                raise
            raise UploadError(describe_client_error(exc, "registering the image")) from exc
        return {"ami": ami, "region": settings["region"], "snapshot_id": snapshot_id,
                "method": method}

    def ebs_direct(self, image_path: Path, image_name: str, settings: dict[str, Any],
                   ctx: UploadContext) -> str:
        ebs = self.client(settings, "ebs", ctx.workers)
        size = image_path.stat().st_size
        total = allocated_bytes(image_path)
        try:
            # Timeout: minutes AWS keeps a pending snapshot open for blocks (default 60); a big
            # image over a slow link needs longer, and AWS errors the snapshot when it runs out.
            snap = ebs.start_snapshot(VolumeSize=max(1, math.ceil(size / GiB)),
                                      Description=f"celery-composer: {image_name}",
                                      Tags=[{"Key": "Name", "Value": image_name}],
                                      Timeout=SNAPSHOT_TIMEOUT_MINUTES,
                                      ClientToken=str(uuid.uuid4()))
        except Exception as exc:
            raise UploadError(describe_client_error(exc, "starting the EBS snapshot")) from exc
        snapshot_id = snap["SnapshotId"]
        ctx.log(f"snapshot {snapshot_id} started ({math.ceil(size / GiB)} GiB volume)")
        digests: dict[int, bytes] = {}
        lock = threading.Lock()
        done = {"skipped": 0}

        def skipped(nbytes: int) -> None:
            with lock:
                done["skipped"] += nbytes

        def put(job: tuple[int, bytes]) -> int:
            index, data = job
            if len(data) < EBS_BLOCK:
                data = data + bytes(EBS_BLOCK - len(data))
            digest = hashlib.sha256(data).digest()
            ebs.put_snapshot_block(SnapshotId=snapshot_id, BlockIndex=index, BlockData=data,
                                   DataLength=EBS_BLOCK, Checksum=base64.b64encode(digest).decode(),
                                   ChecksumAlgorithm="SHA256")
            ctx.add_sent(EBS_BLOCK)
            with lock:
                digests[index] = digest
                extra = done["skipped"]
                done["skipped"] = 0
            return EBS_BLOCK + extra

        try:
            run_parallel(nonzero_chunks(image_path, EBS_BLOCK, on_skip=skipped), put, ctx,
                         total=max(total, 1))
            ctx.check_cancelled()
            aggregate = hashlib.sha256(b"".join(digests[i] for i in sorted(digests))).digest()
            ebs.complete_snapshot(SnapshotId=snapshot_id, ChangedBlocksCount=len(digests),
                                  Checksum=base64.b64encode(aggregate).decode(),
                                  ChecksumAlgorithm="SHA256", ChecksumAggregationMethod="LINEAR")
        except BaseException as exc:
            self._delete_snapshot(self.client(settings, "ec2"), snapshot_id, ctx)
            if isinstance(exc, (UploadError, KeyboardInterrupt, SystemExit)):
                raise
            assert isinstance(exc, Exception)
            raise UploadError(describe_client_error(exc, f"writing snapshot {snapshot_id}")) from exc
        ctx.progress(total, total)
        ctx.log(f"snapshot {snapshot_id}: {len(digests)} blocks of 512 KiB written, "
                f"{len(digests) * EBS_BLOCK} of {size} bytes")
        return snapshot_id

    def import_snapshot(self, image_path: Path, image_name: str, settings: dict[str, Any],
                        ctx: UploadContext) -> str:
        bucket = settings.get("bucket")
        if not bucket:
            raise SettingsError("Missing setting 'bucket': the import-snapshot method needs a bucket")
        s3 = self.client(settings, "s3", ctx.workers)
        key = settings.get("key") or f"{image_name}-{uuid.uuid4()}{image_path.suffix}"
        check_bucket(s3, bucket)
        fmt = IMPORT_FORMATS.get(image_path.suffix, "RAW")
        try:
            multipart_upload(s3, image_path, bucket, key, ctx)
            ctx.log(f"uploaded s3://{bucket}/{key}; importing as a {fmt} snapshot")
            importer = self.import_client(settings)
            try:
                task = importer.import_snapshot(
                    Description=f"celery-composer: {image_name}",
                    DiskContainer={"Description": image_name, "Format": fmt,
                                   "UserBucket": {"S3Bucket": bucket, "S3Key": key}})
            except Exception as exc:
                raise UploadError(describe_client_error(exc, "starting the snapshot import")) from exc
            return self._wait_import(importer, task["ImportTaskId"], ctx)
        finally:
            try:
                s3.delete_object(Bucket=bucket, Key=key)
            except Exception as exc:  # the image is imported or failed; a leftover object is a warning
                ctx.log(f"warning: could not delete s3://{bucket}/{key}: {describe_client_error(exc, 'delete')}")

    def _wait_import(self, importer: Any, task_id: str, ctx: UploadContext) -> str:
        last = None
        while True:
            ctx.check_cancelled()
            try:
                tasks = importer.describe_import_snapshot_tasks(ImportTaskIds=[task_id])
            except Exception as exc:
                raise UploadError(describe_client_error(exc, f"import task {task_id}")) from exc
            detail = tasks["ImportSnapshotTasks"][0]["SnapshotTaskDetail"]
            status = detail.get("Status", "")
            note = f"import {task_id}: {status} {detail.get('Progress', '')}% {detail.get('StatusMessage', '')}".strip()
            if note != last:
                ctx.log(note)
                last = note
            if status == "completed":
                return detail["SnapshotId"]
            if status in ("deleted", "deleting", "error"):
                raise UploadError(f"snapshot import {task_id} failed: "
                                  f"{detail.get('StatusMessage') or status}")
            time.sleep(self.import_poll_seconds)

    def wait_snapshot(self, ec2: Any, snapshot_id: str, ctx: UploadContext) -> None:
        while True:
            ctx.check_cancelled()
            snap = ec2.describe_snapshots(SnapshotIds=[snapshot_id])["Snapshots"][0]
            if snap["State"] == "completed":
                return
            if snap["State"] == "error":
                raise UploadError(f"snapshot {snapshot_id} failed: {snap.get('StateMessage', '')}")
            time.sleep(self.snapshot_poll_seconds)

    def register(self, ec2: Any, snapshot_id: str, image_name: str, settings: dict[str, Any],
                 ctx: UploadContext) -> str:
        root = settings.get("root_device") or "/dev/xvda"
        ami = ec2.register_image(
            Name=image_name, Description=f"celery-composer: {image_name}",
            Architecture=settings.get("architecture") or ARCH_TO_AWS.get(ctx.arch, "x86_64"),
            BootMode=settings.get("boot_mode") or "uefi-preferred",
            EnaSupport=settings.get("ena", True), VirtualizationType="hvm",
            RootDeviceName=root,
            BlockDeviceMappings=[{"DeviceName": root, "Ebs": {"SnapshotId": snapshot_id,
                                                              "DeleteOnTermination": True,
                                                              "VolumeType": "gp3"}}])["ImageId"]
        tags = [{"Key": "Name", "Value": image_name}]
        for pair in filter(None, (settings.get("tags") or "").split(",")):
            key, _, value = pair.partition("=")
            tags.append({"Key": key.strip(), "Value": value.strip()})
        ec2.create_tags(Resources=[ami, snapshot_id], Tags=tags)
        accounts = [a for a in (settings.get("share_with_accounts") or "").split(",") if a]
        if accounts:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={
                "Add": [{"UserId": account} for account in accounts]})
            ec2.modify_snapshot_attribute(SnapshotId=snapshot_id, Attribute="createVolumePermission",
                                          OperationType="add", UserIds=accounts)
            ctx.log(f"shared {ami} with {', '.join(accounts)}")
        ctx.log(f"registered {ami} in {settings['region']}")
        return ami

    @staticmethod
    def _delete_snapshot(ec2: Any, snapshot_id: str, ctx: UploadContext) -> None:
        """Don't leave a half-written snapshot behind (it costs the user money)."""
        try:
            ec2.delete_snapshot(SnapshotId=snapshot_id)
            ctx.log(f"deleted incomplete snapshot {snapshot_id}")
        except Exception as exc:
            ctx.log(f"warning: could not delete snapshot {snapshot_id}: {exc}")

