"""OCI target (osbuild-composer's `oci`, Oracle Cloud Infrastructure): the QCOW2 into an Object
Storage bucket, then a custom image imported from it in the compartment, and the object deleted.

The settings are osbuild-composer's (`user`, `tenancy`, `region`, `fingerprint`, `private_key`
for the API signing key; `bucket`, `namespace`, `compartment`). The object goes up as a multipart
upload driven part by part with the `oci` SDK's client calls (not its UploadManager), so progress
is reported and a cancel aborts the multipart upload between parts, leaving nothing billed.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path
from typing import Any

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadCancelled,
    UploadContext,
    Uploader,
    UploadError,
    register,
    run_parallel,
)

OCID_RE = r"ocid1\.[a-z0-9]+\.[a-z0-9-]*\.[a-z0-9-]*\.[A-Za-z0-9._-]+"
PART_SIZE = 16 * 1024 * 1024
MAX_PARTS = 9000  # Object Storage allows 10000
IMPORT_TIMEOUT_SECONDS = 3 * 60 * 60


def _describe(exc: Exception, what: str) -> str:
    """One line from the SDK's ServiceError (status, code, message) or a network error."""
    import oci

    if isinstance(exc, oci.exceptions.ServiceError):
        hint = {401: "authentication failed: check user, tenancy, fingerprint and private_key",
                404: "not found or not authorized", 409: "conflict"}.get(exc.status, "")
        return f"{what}: {exc.status} {exc.code}{': ' + hint if hint else ''} ({exc.message})"
    if isinstance(exc, (oci.exceptions.RequestException, oci.exceptions.ConnectTimeout, OSError)):
        return f"{what}: network error: {exc}"
    return f"{what}: {type(exc).__name__}: {exc}"


@register
class OCIUploader(Uploader):
    name = "oci"
    display = "Oracle Cloud Infrastructure"
    supported_types = ("oci",)
    settings_info = (
        SettingInfo("user", "User OCID", required=True, regex=OCID_RE),
        SettingInfo("tenancy", "Tenancy OCID", required=True, regex=OCID_RE),
        SettingInfo("region", "Region", required=True, placeholder="us-ashburn-1",
                    regex=r"[a-z]+-[a-z]+-[0-9]+"),
        SettingInfo("compartment", "Compartment OCID", required=True, regex=OCID_RE),
        SettingInfo("bucket", "Object Storage bucket", required=True),
        SettingInfo("namespace", "Object Storage namespace", required=True),
        SettingInfo("private_key", "API signing key (PEM)", secret=True, required=True),
        SettingInfo("fingerprint", "API key fingerprint", required=True,
                    regex=r"([0-9a-f]{2}:){15}[0-9a-f]{2}"),
        SettingInfo("object_storage_endpoint", "Object Storage endpoint (private endpoints)",
                    regex=r"https?://.+"),
        SettingInfo("compute_endpoint", "Compute (iaas) endpoint (private endpoints)",
                    regex=r"https?://.+"),
    )
    poll_seconds = 10.0

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if "PRIVATE KEY-----" not in settings["private_key"]:
            raise SettingsError("Setting 'private_key' must be the PEM text of the API signing key")

    @classmethod
    def secret_values(cls, settings: dict[str, Any]) -> list[str]:
        """Each line of the key body too: an error may quote part of it."""
        values = super().secret_values(settings)
        values += [line for line in str(settings.get("private_key", "")).splitlines()
                   if len(line) >= 16 and "PRIVATE KEY" not in line]
        return values

    def clients(self, settings: dict[str, Any]) -> tuple[Any, Any]:
        import oci

        config = {"user": settings["user"], "tenancy": settings["tenancy"],
                  "region": settings["region"], "fingerprint": settings["fingerprint"],
                  "key_content": settings["private_key"]}
        try:
            oci.config.validate_config(config)
        except oci.exceptions.InvalidConfig as exc:
            raise UploadError(f"OCI settings refused by the SDK: {exc}") from exc
        retry = oci.retry.NoneRetryStrategy()
        storage_kwargs = ({"service_endpoint": settings["object_storage_endpoint"]}
                          if settings.get("object_storage_endpoint") else {})
        compute_kwargs = ({"service_endpoint": settings["compute_endpoint"]}
                          if settings.get("compute_endpoint") else {})
        return (oci.object_storage.ObjectStorageClient(config, retry_strategy=retry, **storage_kwargs),
                oci.core.ComputeClient(config, retry_strategy=retry, **compute_kwargs))

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        storage, compute = self.clients(settings)
        namespace, bucket = settings["namespace"], settings["bucket"]
        object_name = f"osbuild-upload-{uuid.uuid4().hex}"
        try:
            storage.get_bucket(namespace, bucket)
        except Exception as exc:
            raise UploadError(_describe(exc, f"bucket '{bucket}' in namespace '{namespace}'")) from exc
        ctx.log(f"uploading {image_path.name} to bucket {bucket} as {object_name}")
        self.put_object(storage, namespace, bucket, object_name, image_path, ctx)
        try:
            ctx.check_cancelled()
            image_id = self.import_image(compute, settings, namespace, bucket, object_name,
                                         image_name, ctx)
        finally:
            try:
                storage.delete_object(namespace, bucket, object_name)
                ctx.log(f"deleted object {object_name}")
            except Exception as exc:
                ctx.log(f"warning: could not delete object {object_name}: {_describe(exc, 'delete')}")
        return {"image_id": image_id, "region": settings["region"],
                "compartment": settings["compartment"]}

    @staticmethod
    def put_object(storage: Any, namespace: str, bucket: str, object_name: str, path: Path,
                   ctx: UploadContext) -> None:
        import oci

        size = path.stat().st_size
        part_size = max(PART_SIZE, -(-size // MAX_PARTS))
        where = f"uploading to bucket '{bucket}'"
        try:
            upload_id = storage.create_multipart_upload(
                namespace, bucket, oci.object_storage.models.CreateMultipartUploadDetails(
                    object=object_name, content_type="application/octet-stream")).data.upload_id
        except Exception as exc:
            raise UploadError(_describe(exc, where)) from exc
        etags: dict[int, str] = {}

        def part(number: int) -> int:
            with open(path, "rb") as fh:
                fh.seek((number - 1) * part_size)
                data = fh.read(part_size)
            response = storage.upload_part(namespace, bucket, object_name, upload_id, number, data)
            etags[number] = response.headers["etag"]
            ctx.add_sent(len(data))
            return len(data)

        count = max(1, -(-size // part_size))
        try:
            run_parallel(range(1, count + 1), part, ctx, total=max(size, 1))
            ctx.check_cancelled()
            storage.commit_multipart_upload(
                namespace, bucket, object_name, upload_id,
                oci.object_storage.models.CommitMultipartUploadDetails(parts_to_commit=[
                    oci.object_storage.models.CommitMultipartUploadPartDetails(part_num=n, etag=etags[n])
                    for n in sorted(etags)]))
        except BaseException as exc:
            try:
                storage.abort_multipart_upload(namespace, bucket, object_name, upload_id)
                ctx.log(f"aborted the multipart upload of {object_name}")
            except Exception as cleanup:
                ctx.log(f"warning: could not abort the multipart upload: {type(cleanup).__name__}")
            if isinstance(exc, (UploadError, UploadCancelled, KeyboardInterrupt, SystemExit)):
                raise
            assert isinstance(exc, Exception)
            raise UploadError(_describe(exc, where)) from exc
        ctx.progress(size, size)
        ctx.log(f"uploaded {size} bytes in {count} parts")

    def import_image(self, compute: Any, settings: dict[str, Any], namespace: str, bucket: str,
                     object_name: str, image_name: str, ctx: UploadContext) -> str:
        import oci

        models = oci.core.models
        where = f"importing image '{image_name}' in compartment {settings['compartment']}"
        details = models.CreateImageDetails(
            compartment_id=settings["compartment"], display_name=image_name, launch_mode="PARAVIRTUALIZED",
            image_source_details=models.ImageSourceViaObjectStorageTupleDetails(
                bucket_name=bucket, namespace_name=namespace, object_name=object_name,
                source_image_type="QCOW2"))
        try:
            image = compute.create_image(details).data
        except Exception as exc:
            raise UploadError(_describe(exc, where)) from exc
        ctx.log(f"image {image.id}: {image.lifecycle_state}")
        deadline = time.monotonic() + IMPORT_TIMEOUT_SECONDS
        while image.lifecycle_state != "AVAILABLE":
            if image.lifecycle_state in ("DELETED", "DISABLED"):
                raise UploadError(f"{where}: the import ended {image.lifecycle_state}")
            if ctx.should_cancel() or time.monotonic() > deadline:
                self._delete_image(compute, image.id, ctx)
                if ctx.should_cancel():
                    raise UploadCancelled("upload cancelled")
                raise UploadError(f"{where}: not AVAILABLE after {IMPORT_TIMEOUT_SECONDS // 3600} hours")
            time.sleep(self.poll_seconds)
            try:
                image = compute.get_image(image.id).data
            except Exception as exc:
                raise UploadError(_describe(exc, where)) from exc
        ctx.log(f"image {image.id} is AVAILABLE")
        return str(image.id)

    @staticmethod
    def _delete_image(compute: Any, image_id: str, ctx: UploadContext) -> None:
        try:
            compute.delete_image(image_id)
            ctx.log(f"deleted image {image_id}")
        except Exception as exc:
            ctx.log(f"warning: could not delete image {image_id}: {type(exc).__name__}")
