"""Generic S3 target (MinIO, Ceph RGW, AWS S3) and the multipart upload the AWS import path reuses.

Multipart goes through s3transfer's TransferManager rather than `upload_file` so an upload can be
cancelled between parts (`future.cancel()` aborts the multipart upload on the server, leaving no
orphaned parts billed to the user).
"""

from __future__ import annotations

import re
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import boto3
import botocore.config
import botocore.exceptions
from boto3.s3.transfer import TransferConfig
from s3transfer.manager import TransferManager
from s3transfer.subscribers import BaseSubscriber

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadCancelled,
    UploadContext,
    Uploader,
    UploadError,
    register,
)

MiB = 1024 * 1024
PART_SIZE = 8 * MiB  # boto3's default; measured no slower than larger parts (bench/upload.py)
MAX_PARTS = 9000  # S3 allows 10000; parts grow for images beyond ~70 GiB
POLL_SECONDS = 0.2
READ_TIMEOUT = 60  # seconds without a byte of answer before a request is retried
# After a failed completion call: how long to look for the object the server may still be
# assembling (S3 answers CompleteMultipartUpload only once every part is stitched together,
# which can outlast READ_TIMEOUT for a multi-GiB object)
COMPLETION_GRACE = 300.0


def client_config(workers: int, attempts: int = 3) -> botocore.config.Config:
    """Enough pooled connections for every part thread, and few retries: a broken network fails the
    upload within a minute instead of botocore's default backoff spending many."""
    return botocore.config.Config(max_pool_connections=max(10, workers + 2), connect_timeout=10,
                                  read_timeout=READ_TIMEOUT,
                                  retries={"max_attempts": attempts, "mode": "standard"},
                                  s3={"addressing_style": "path"})


def describe_client_error(exc: Exception, what: str) -> str:
    """A one-line reason for the user, from botocore's error shapes."""
    if isinstance(exc, botocore.exceptions.ClientError):
        err = exc.response.get("Error", {})
        code = err.get("Code", "Error")
        message = err.get("Message") or ""
        if message.lstrip().startswith("<"):  # an XML error body a JSON protocol could not parse
            found = dict(re.findall(r"<(Code|Message)>([^<]*)</\1>", message))
            code, message = found.get("Code", code), found.get("Message", "")
        hints = {"InvalidAccessKeyId": "the access key is not valid",
                 "InvalidClientTokenId": "the access key is not valid",
                 "SignatureDoesNotMatch": "the secret key does not match the access key",
                 "AuthFailure": "AWS could not validate the credentials",
                 "NoSuchBucket": "the bucket does not exist",
                 "AccessDenied": "access denied"}
        hint = hints.get(code)
        return f"{what}: {code}{': ' + hint if hint else ''}{' (' + message + ')' if message else ''}"
    if isinstance(exc, botocore.exceptions.NoCredentialsError):
        return f"{what}: no credentials: set the access and secret keys or configure the host's role"
    if isinstance(exc, (botocore.exceptions.EndpointConnectionError,
                        botocore.exceptions.ConnectionClosedError,
                        botocore.exceptions.ReadTimeoutError,
                        botocore.exceptions.ConnectTimeoutError)):
        return f"{what}: network error: {exc}"
    return f"{what}: {type(exc).__name__}: {exc}"


class _Progress(BaseSubscriber):
    def __init__(self, ctx: UploadContext, total: int, base: int = 0):
        self.ctx, self.total, self.done = ctx, total, base
        self._lock = threading.Lock()
        self.finished = threading.Event()

    def on_done(self, future: Any, **kwargs: Any) -> None:
        self.finished.set()

    def on_progress(self, future: Any, bytes_transferred: int, **kwargs: Any) -> None:
        # s3transfer reports a retried part's bytes again, after a negative report taking them
        # back; the sink keeps what it stores monotonic, and nothing here claims the whole
        # object before the completion call has answered
        with self._lock:
            self.done += bytes_transferred
            done = self.done
        if bytes_transferred > 0:
            self.ctx.add_sent(bytes_transferred)
        self.ctx.progress(max(0, min(done, self.total - 1)), self.total)


def multipart_upload(client: Any, path: Path, bucket: str, key: str, ctx: UploadContext,
                     part_size: int = PART_SIZE, total: int | None = None) -> None:
    """Upload a file in parallel parts; cancellable; raises UploadError naming the cause."""
    size = path.stat().st_size
    part_size = max(part_size, -(-size // MAX_PARTS // MiB) * MiB)
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                            max_concurrency=max(1, ctx.workers), use_threads=True)
    manager = TransferManager(client, config)
    started = time.time()
    try:
        progress = _Progress(ctx, total or size)
        future = manager.upload(str(path), bucket, key, subscribers=[progress])
        while not progress.finished.wait(POLL_SECONDS) and not future.done():
            if ctx.should_cancel():
                future.cancel()
                try:
                    future.result()
                except BaseException:
                    pass
                raise UploadCancelled("upload cancelled")
            time.sleep(POLL_SECONDS)
        try:
            future.result()
        except UploadCancelled:
            raise
        except Exception as exc:
            all_sent = progress.done >= size
            if not (all_sent and _completed_after_all(client, bucket, key, size, part_size, started,
                                                      exc, ctx)):
                raise UploadError(describe_client_error(exc, f"uploading to s3://{bucket}/{key}")) from exc
    finally:
        manager.shutdown(cancel=True)
    ctx.progress(total or size, total or size)


def _completed_after_all(client: Any, bucket: str, key: str, size: int, part_size: int,
                         started: float, exc: Exception, ctx: UploadContext) -> bool:
    """Whether the object is there, whole, though the upload's last call failed.

    Asked only once every byte was sent.  The completion call is the one that can outlive the
    read timeout on a large object: the server goes on stitching the parts, the client gives up,
    and its retry or abort then fails on an upload id that no longer exists.  The object that completion made is new (written after
    this upload started), of the image's size, and made of this upload's number of parts (its
    ETag ends in "-<parts>"); an object matching all three is this upload's.  Any other failure
    (a part that never arrived) leaves no such object, and the error stands.
    """
    parts = max(1, -(-size // part_size))
    deadline = time.monotonic() + COMPLETION_GRACE
    while True:
        try:
            head = client.head_object(Bucket=bucket, Key=key)
        except Exception:  # noqa: BLE001 - not there (yet), or not reachable: look again
            head = None
        if head is not None:
            fresh = head["LastModified"].timestamp() >= started - 300  # clocks may differ a little
            etag = str(head.get("ETag", "")).strip('"')
            whole = head.get("ContentLength") == size and (size < part_size or etag.endswith(f"-{parts}"))
            if fresh and whole:
                ctx.log(f"the last call of the upload failed ({type(exc).__name__}: {exc}), but "
                        f"s3://{bucket}/{key} is complete: {size} bytes in {parts} parts")
                return True
        if time.monotonic() > deadline or ctx.should_cancel():
            return False
        time.sleep(2.0)


def check_bucket(client: Any, bucket: str) -> None:
    """Fail fast, with a clear reason, before sending gigabytes at a bucket that isn't there."""
    try:
        client.head_bucket(Bucket=bucket)
    except botocore.exceptions.ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "")
        if code in ("404", "NoSuchBucket", "NotFound"):
            raise UploadError(f"bucket '{bucket}' does not exist") from exc
        if code in ("403", "Forbidden", "AccessDenied"):
            raise UploadError(f"bucket '{bucket}': access denied (check the credentials and the "
                              f"bucket policy)") from exc
        raise UploadError(describe_client_error(exc, f"bucket '{bucket}'")) from exc
    except Exception as exc:
        raise UploadError(describe_client_error(exc, f"bucket '{bucket}'")) from exc


def verify_option(ca_bundle: str, skip_verification: bool, scratch: Path) -> bool | str:
    """botocore's `verify`: False, a CA bundle file, or True (the system's CAs).

    `ca_bundle` is a path on the worker, as osbuild-composer reads it, or the PEM text itself
    (easier to send through the API); PEM text is written to a file under `scratch`.
    """
    if skip_verification:
        return False
    if not ca_bundle:
        return True
    if "-----BEGIN" in ca_bundle:
        path = scratch / "ca-bundle.pem"
        path.write_text(ca_bundle)
        return str(path)
    if not Path(ca_bundle).is_file():
        raise UploadError(f"ca_bundle: {ca_bundle} is not a file on the upload worker")
    return ca_bundle


@register
class S3Uploader(Uploader):
    """osbuild-composer's `aws.s3` (and `generic.s3`, handled the same there): the image file as
    one object, on AWS or any S3-compatible endpoint (MinIO, Ceph RGW)."""

    name = "aws.s3"
    display = "S3 object (AWS or S3-compatible)"
    supported_types = ()
    settings_info = (
        SettingInfo("region", "Region", placeholder="us-east-1", regex=r"[a-z0-9-]*"),
        SettingInfo("accessKeyID", "Access key ID", secret=True, aliases=("access_key_id",)),
        SettingInfo("secretAccessKey", "Secret access key", secret=True,
                    aliases=("secret_access_key",)),
        SettingInfo("sessionToken", "Session token", secret=True, aliases=("session_token",)),
        SettingInfo("bucket", "Bucket", required=True),
        SettingInfo("key", "Object key", placeholder="defaults to the image name"),
        SettingInfo("endpoint", "Endpoint URL (S3-compatible storage)",
                    placeholder="https://minio.example.com:9000", regex=r"https?://.+",
                    aliases=("endpoint_url",)),
        SettingInfo("ca_bundle", "CA bundle for the endpoint (a path on the worker, or PEM)"),
        SettingInfo("skip_ssl_verification", "Skip TLS certificate verification", type="boolean"),
        SettingInfo("presigned_url_expiry", "Presigned URL lifetime (seconds, empty: none)",
                    regex=r"[0-9]{1,7}"),
    )

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if bool(settings.get("accessKeyID")) != bool(settings.get("secretAccessKey")):
            raise SettingsError("Settings 'accessKeyID' and 'secretAccessKey' go together")

    def client(self, settings: dict[str, Any], workers: int, scratch: Path) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=settings.get("accessKeyID") or None,
            aws_secret_access_key=settings.get("secretAccessKey") or None,
            aws_session_token=settings.get("sessionToken") or None,
            region_name=settings.get("region") or "us-east-1")
        verify = verify_option(settings.get("ca_bundle") or "",
                               bool(settings.get("skip_ssl_verification")), scratch)
        return session.client("s3", endpoint_url=settings.get("endpoint") or None,
                              config=client_config(workers), verify=verify)

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        bucket = settings["bucket"]
        key = settings.get("key") or image_name
        with tempfile.TemporaryDirectory(prefix="s3-ca-") as scratch:
            client = self.client(settings, ctx.workers, Path(scratch))
            check_bucket(client, bucket)
            ctx.log(f"uploading {image_path.name} to s3://{bucket}/{key}")
            multipart_upload(client, image_path, bucket, key, ctx)
            result: dict[str, Any] = {"bucket": bucket, "key": key, "url": f"s3://{bucket}/{key}"}
            expiry = settings.get("presigned_url_expiry")
            if expiry:
                result["presigned_url"] = client.generate_presigned_url(
                    "get_object", Params={"Bucket": bucket, "Key": key}, ExpiresIn=int(expiry))
        ctx.log(f"uploaded s3://{bucket}/{key}")
        return result
