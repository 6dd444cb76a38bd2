"""Generic S3 target (MinIO, Ceph RGW, AWS S3) and the multipart upload the AWS import path reuses.

Multipart goes through s3transfer's TransferManager rather than `upload_file` so an upload can be
cancelled between parts (`future.cancel()` aborts the multipart upload on the server, leaving no
orphaned parts billed to the user).
"""

from __future__ import annotations

import re
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


def client_config(workers: int, attempts: int = 3) -> botocore.config.Config:
    """Enough pooled connections for every part thread, and few retries: a broken network fails the
    upload within a minute instead of botocore's default backoff spending many."""
    return botocore.config.Config(max_pool_connections=max(10, workers + 2), connect_timeout=10,
                                  read_timeout=60, retries={"max_attempts": attempts, "mode": "standard"},
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
        with self._lock:
            self.done += bytes_transferred
            done = self.done
        self.ctx.add_sent(bytes_transferred)
        self.ctx.progress(min(done, self.total), self.total)


def multipart_upload(client: Any, path: Path, bucket: str, key: str, ctx: UploadContext,
                     part_size: int = PART_SIZE, total: int | None = None) -> None:
    """Upload a file in parallel parts; cancellable; raises UploadError naming the cause."""
    size = path.stat().st_size
    part_size = max(part_size, -(-size // MAX_PARTS // MiB) * MiB)
    config = TransferConfig(multipart_threshold=part_size, multipart_chunksize=part_size,
                            max_concurrency=max(1, ctx.workers), use_threads=True)
    manager = TransferManager(client, config)
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
            raise UploadError(describe_client_error(exc, f"uploading to s3://{bucket}/{key}")) from exc
    finally:
        manager.shutdown(cancel=True)


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


@register
class S3Uploader(Uploader):
    name = "s3"
    display = "S3-compatible storage"
    supported_types = ()
    settings_info = (
        SettingInfo("endpoint_url", "Endpoint URL", placeholder="https://minio.example.com:9000",
                    regex=r"https?://.+", aliases=("endpoint",)),
        SettingInfo("bucket", "Bucket", required=True),
        SettingInfo("key", "Object key", placeholder="defaults to the image name"),
        SettingInfo("region", "Region", placeholder="us-east-1"),
        SettingInfo("access_key_id", "Access key ID", secret=True, aliases=("accessKeyID",)),
        SettingInfo("secret_access_key", "Secret access key", secret=True,
                    aliases=("secretAccessKey",)),
        SettingInfo("session_token", "Session token", secret=True, aliases=("sessionToken",)),
        SettingInfo("presigned_url_expiry", "Presigned URL lifetime (seconds, empty: none)",
                    regex=r"[0-9]{1,7}"),
    )

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if bool(settings.get("access_key_id")) != bool(settings.get("secret_access_key")):
            raise SettingsError("Settings 'access_key_id' and 'secret_access_key' go together")

    def client(self, settings: dict[str, Any], workers: int) -> Any:
        session = boto3.session.Session(
            aws_access_key_id=settings.get("access_key_id") or None,
            aws_secret_access_key=settings.get("secret_access_key") or None,
            aws_session_token=settings.get("session_token") or None,
            region_name=settings.get("region") or "us-east-1")
        return session.client("s3", endpoint_url=settings.get("endpoint_url") or None,
                              config=client_config(workers))

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        client = self.client(settings, ctx.workers)
        bucket = settings["bucket"]
        key = settings.get("key") or image_name
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
