"""GCP target (osbuild-composer's `gcp`): the image tarball into a GCS bucket, then a Compute Engine
image created from it, optionally shared, and the object deleted.

The settings are osbuild-composer's: `bucket`, `object` (given a `.tar.gz` suffix, which Compute
Engine's import requires), `region` (where the image is stored), `credentials` (the base64 of a
service-account JSON key; without it the worker's Application Default Credentials). The project
is the credentials' project. The object goes up as a resumable upload in 32 MiB chunks (progress
and cancel between chunks; a cancelled session is deleted, so no object appears); the Compute
calls are the documented REST endpoints through google-auth's authorized session, which keeps
the dependency to google-cloud-storage alone.
"""

from __future__ import annotations

import base64
import binascii
import json
import re
import time
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
)

# A multiple of 256 KiB, as resumable uploads require. Each chunk is one request and is held in
# memory; 32 MiB measured 2.7 × faster than 8 MiB against the emulator (bench/upload.py), and
# still leaves progress and cancel a chunk's granularity.
CHUNK = 32 * 1024 * 1024
SCOPES = ["https://www.googleapis.com/auth/cloud-platform"]
STORAGE_URL = "https://storage.googleapis.com"  # what Compute reads the raw disk from
COMPUTE_URL = "https://compute.googleapis.com"
IMAGE_NAME_RE = re.compile(r"[a-z]([-a-z0-9]{0,61}[a-z0-9])?")
OPERATION_WAIT_SECONDS = 60  # the longest one `operations/wait` call blocks, server side
IMAGE_USER_ROLE = "roles/compute.imageUser"

# Guest OS features a Compute image declares, as osbuild/images sets them per distribution
# (none for the others, Fedora included). SEV-SNP came with RHEL 9.1, live migration v2 with 9.2,
# TDX with 9.6.
_EL8 = ("UEFI_COMPATIBLE", "VIRTIO_SCSI_MULTIQUEUE", "SEV_CAPABLE", "SEV_SNP_CAPABLE",
        "SEV_LIVE_MIGRATABLE", "SEV_LIVE_MIGRATABLE_V2", "GVNIC", "IDPF")
_EL9 = _EL8 + ("TDX_CAPABLE",)
_RHEL90 = ("UEFI_COMPATIBLE", "VIRTIO_SCSI_MULTIQUEUE", "SEV_CAPABLE", "GVNIC")
_RHEL91 = _RHEL90 + ("SEV_SNP_CAPABLE",)
_RHEL92_95 = _RHEL91 + ("SEV_LIVE_MIGRATABLE_V2",)


def guest_os_features(distro: str) -> tuple[str, ...]:
    """The features for a distribution name as the store keeps it (`rhel-9.6`, `centos-9`)."""
    if distro.startswith(("rhel-8", "centos-8")):
        return _EL8
    if distro == "rhel-9.0":
        return _RHEL90
    if distro == "rhel-9.1":
        return _RHEL91
    if distro in ("rhel-9.2", "rhel-9.3", "rhel-9.4", "rhel-9.5"):
        return _RHEL92_95
    if distro.startswith(("rhel-9", "centos-9", "rhel-10", "centos-10")):
        return _EL9
    return ()

MEMBER_RE = r"(user|serviceAccount|group|domain):[^,\s]+(,(user|serviceAccount|group|domain):[^,\s]+)*"


def decode_credentials(value: str) -> dict[str, Any]:
    """The service-account JSON from the base64 setting; the message names the setting."""
    try:
        info = json.loads(base64.b64decode(value, validate=True))
    except (binascii.Error, ValueError) as exc:
        raise SettingsError("Setting 'credentials' must be the base64 encoding of a GCP "
                            "credentials JSON file") from exc
    if not isinstance(info, dict) or not info.get("type"):
        raise SettingsError("Setting 'credentials': the decoded JSON is not a GCP credentials file")
    return info


@register
class GCPUploader(Uploader):
    name = "gcp"
    display = "Google Cloud Platform"
    supported_types = ("gce", "gce-rhui", "cloud-gce")
    settings_info = (
        SettingInfo("region", "Image storage location (region)", placeholder="us-east1",
                    regex=r"[a-z0-9-]*"),
        SettingInfo("bucket", "Storage bucket", required=True,
                    regex=r"[a-z0-9][a-z0-9._-]{1,220}[a-z0-9]"),
        SettingInfo("object", "Storage object name", placeholder="defaults to <image name>.tar.gz"),
        SettingInfo("credentials", "Credentials (base64 of the credentials JSON)", secret=True),
        SettingInfo("share_with_accounts", "Share with (user:…, serviceAccount:…, group:…, domain:…)",
                    regex=MEMBER_RE),
        SettingInfo("storage_endpoint", "Storage API endpoint (emulators, private endpoints)",
                    regex=r"https?://.+"),
        SettingInfo("compute_endpoint", "Compute API endpoint (private endpoints)",
                    regex=r"https?://.+"),
    )
    poll_seconds = 2.0

    @classmethod
    def validate(cls, settings: dict[str, Any], image_name: str | None = None,
                 image_type: str | None = None) -> dict[str, Any]:
        settings = super().validate(settings, image_name, image_type)
        if image_name is not None and not IMAGE_NAME_RE.fullmatch(image_name):
            raise SettingsError(f'Image name "{image_name}" is not a Compute Engine image name '
                                "(lower-case letters, digits and '-', starting with a letter, "
                                "at most 63 characters)")
        return settings

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if settings.get("credentials"):
            decode_credentials(settings["credentials"])

    @classmethod
    def secret_values(cls, settings: dict[str, Any]) -> list[str]:
        """The private key inside the credentials too: an error may quote the decoded JSON."""
        values = super().secret_values(settings)
        if settings.get("credentials"):
            try:
                info = decode_credentials(settings["credentials"])
            except SettingsError:
                return values
            values += [str(info[k]) for k in ("private_key", "private_key_id") if info.get(k)]
            values += [line for line in str(info.get("private_key", "")).splitlines()
                       if len(line) >= 16 and "PRIVATE KEY" not in line]
        return values

    @staticmethod
    def object_name(settings: dict[str, Any], image_name: str) -> str:
        name = settings.get("object") or image_name
        return name if name.endswith(".tar.gz") else name + ".tar.gz"

    def credentials(self, settings: dict[str, Any]) -> tuple[Any, str]:
        """(credentials, project): the given service account's, else the worker's defaults."""
        import google.auth
        from google.oauth2 import service_account

        if settings.get("credentials"):
            info = decode_credentials(settings["credentials"])
            try:
                creds = service_account.Credentials.from_service_account_info(info, scopes=SCOPES)
            except (ValueError, KeyError) as exc:
                raise UploadError(f"credentials: not usable service-account credentials ({exc})") from exc
            project = info.get("project_id") or ""
        else:
            try:
                creds, project = google.auth.default(scopes=SCOPES)
            except google.auth.exceptions.DefaultCredentialsError as exc:
                raise UploadError("credentials: none given and the worker has no default "
                                  "credentials (GOOGLE_APPLICATION_CREDENTIALS)") from exc
        if not project:
            raise UploadError("credentials: no project_id in the credentials")
        return creds, project

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        from google.auth.transport.requests import AuthorizedSession
        from google.cloud import storage

        creds, project = self.credentials(settings)
        options = {"api_endpoint": settings["storage_endpoint"]} if settings.get("storage_endpoint") else None
        client = storage.Client(project=project, credentials=creds, client_options=options)
        bucket_name, object_name = settings["bucket"], self.object_name(settings, image_name)
        bucket = client.bucket(bucket_name)
        try:
            bucket.reload()
        except Exception as exc:
            raise UploadError(_describe(exc, f"bucket '{bucket_name}'", "does not exist")) from exc
        ctx.log(f"uploading {image_path.name} to gs://{bucket_name}/{object_name} (project {project})")
        self.put_object(bucket, object_name, image_path, ctx)
        blob = bucket.blob(object_name)
        try:
            ctx.check_cancelled()
            compute = Compute(AuthorizedSession(creds), settings.get("compute_endpoint") or COMPUTE_URL,
                              project, ctx, self.poll_seconds)
            features = guest_os_features(ctx.distro)
            compute.insert_image(image_name, f"{STORAGE_URL}/{bucket_name}/{object_name}",
                                 settings.get("region") or "", features)
            image = compute.get_image(image_name)
            accounts = [a for a in (settings.get("share_with_accounts") or "").split(",") if a]
            if accounts:
                compute.share_image(image_name, accounts)
        finally:
            try:
                blob.delete()
                ctx.log(f"deleted gs://{bucket_name}/{object_name}")
            except Exception as exc:  # the image exists or failed; a leftover object is a warning
                ctx.log(f"warning: could not delete gs://{bucket_name}/{object_name}: "
                        f"{_describe(exc, 'object', 'is gone')}")
        return {"image_name": image_name, "project_id": project,
                "self_link": image.get("selfLink", ""), "guest_os_features": list(features)}

    @staticmethod
    def put_object(bucket: Any, object_name: str, image_path: Path, ctx: UploadContext) -> None:
        """A resumable upload, chunk by chunk: progress after each, cancel between them. Leaving
        the writer by an exception terminates the session, so no partial object is kept."""
        size = image_path.stat().st_size
        blob = bucket.blob(object_name, chunk_size=CHUNK)
        done = 0
        try:
            with blob.open("wb", chunk_size=CHUNK, content_type="application/gzip") as writer, \
                    open(image_path, "rb") as src:
                while data := src.read(CHUNK):
                    ctx.check_cancelled()
                    writer.write(data)
                    done += len(data)
                    ctx.add_sent(len(data))
                    ctx.progress(done, size)
        except (UploadCancelled, KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:
            raise UploadError(_describe(exc, f"uploading gs://{bucket.name}/{object_name}", "")) from exc
        ctx.log(f"uploaded {size} bytes to gs://{bucket.name}/{object_name}")


class Compute:
    """The few Compute Engine REST calls an image import needs (images.insert, operations.wait,
    images.get, images.getIamPolicy/setIamPolicy, images.delete)."""

    def __init__(self, session: Any, endpoint: str, project: str, ctx: UploadContext,
                 poll_seconds: float):
        self.session, self.project, self.ctx, self.poll_seconds = session, project, ctx, poll_seconds
        self.base = f"{endpoint.rstrip('/')}/compute/v1/projects/{project}/global"

    def _call(self, method: str, path: str, what: str, **kwargs: Any) -> dict[str, Any]:
        try:
            resp = self.session.request(method, f"{self.base}/{path}", timeout=OPERATION_WAIT_SECONDS + 30,
                                        **kwargs)
        except Exception as exc:
            raise UploadError(_describe(exc, what, "")) from exc
        if resp.status_code >= 400:
            try:
                message = resp.json()["error"]["message"]
            except (ValueError, KeyError, TypeError):
                message = resp.text[:200]
            hint = {401: "authentication failed", 403: "permission denied",
                    404: "not found", 409: "already exists"}.get(resp.status_code, "")
            raise UploadError(f"{what}: {resp.status_code}{': ' + hint if hint else ''} ({message})")
        return resp.json() if resp.content else {}

    def insert_image(self, name: str, source: str, region: str, features: tuple[str, ...]) -> None:
        body: dict[str, Any] = {"name": name, "rawDisk": {"source": source, "containerType": "TAR"},
                                "guestOsFeatures": [{"type": f} for f in features]}
        if region:
            body["storageLocations"] = [region]
        what = f"creating image '{name}' in project '{self.project}'"
        operation = self._call("POST", "images", what, json=body)
        self.ctx.log(f"image {name}: import started ({operation.get('name', '')})")
        self.wait(operation, what, name)

    def wait(self, operation: dict[str, Any], what: str, image: str) -> None:
        while operation.get("status") != "DONE":
            if self.ctx.should_cancel():
                self.ctx.log(f"image {image}: cancelled while importing; deleting it once created")
                self.delete_image_later(operation, image)
                raise UploadCancelled("upload cancelled")
            operation = self._call("POST", f"operations/{operation['name']}/wait", what)
            if operation.get("status") != "DONE":
                time.sleep(self.poll_seconds)
        errors = (operation.get("error") or {}).get("errors") or []
        if errors:
            reasons = "; ".join(f"{e.get('code', '')}: {e.get('message', '')}" for e in errors)
            raise UploadError(f"{what}: {reasons}")

    def delete_image_later(self, operation: dict[str, Any], image: str) -> None:
        """A started import cannot be stopped; wait for it (bounded) and delete what it made."""
        deadline = time.monotonic() + 10 * 60
        while operation.get("status") != "DONE" and time.monotonic() < deadline:
            try:
                operation = self._call("POST", f"operations/{operation['name']}/wait", "import")
            except UploadError:
                return
        try:
            self._call("DELETE", f"images/{image}", f"deleting image '{image}'")
        except UploadError as exc:
            self.ctx.log(f"warning: {exc}")

    def get_image(self, name: str) -> dict[str, Any]:
        return self._call("GET", f"images/{name}", f"image '{name}' in project '{self.project}'")

    def share_image(self, name: str, members: list[str]) -> None:
        what = f"sharing image '{name}'"
        policy = self._call("GET", f"images/{name}/getIamPolicy", what)
        bindings = [b for b in policy.get("bindings") or [] if b.get("role") != IMAGE_USER_ROLE]
        current: set[str] = set()
        for binding in policy.get("bindings") or []:
            if binding.get("role") == IMAGE_USER_ROLE:
                current.update(binding.get("members") or [])
        bindings.append({"role": IMAGE_USER_ROLE, "members": sorted(current | set(members))})
        self._call("POST", f"images/{name}/setIamPolicy", what,
                   json={"policy": {"bindings": bindings, "etag": policy.get("etag", "")}})
        self.ctx.log(f"image {name}: shared with {', '.join(members)}")


def _describe(exc: Exception, what: str, not_found: str) -> str:
    """One line for the user from google-api-core's and google-auth's errors."""
    import google.auth.exceptions
    from google.api_core import exceptions as api

    if isinstance(exc, api.NotFound) and not_found:
        return f"{what} {not_found}"
    if isinstance(exc, google.auth.exceptions.RefreshError):
        return f"{what}: authentication failed (the credentials were refused: {exc.args[0] if exc.args else exc})"
    if isinstance(exc, (api.Forbidden, api.Unauthorized)):
        return f"{what}: permission denied ({exc.message})"
    if isinstance(exc, api.GoogleAPICallError):
        return f"{what}: {exc.code}: {exc.message}"
    if isinstance(exc, (ConnectionError, OSError)) or type(exc).__module__.startswith(("requests", "urllib3")):
        return f"{what}: network error: {exc}"
    return f"{what}: {type(exc).__name__}: {exc}"
