"""Azure target: a fixed-size VHD becomes a page blob, the form Azure creates managed disks from,
and, when a resource group is given, a managed image made from that blob (as osbuild-composer's
newer Azure target does), through Azure Resource Manager with azure-identity's credentials.

A page blob starts as all zeros, so only page ranges holding data are written (runs of non-zero
64 KiB granules, at most 4 MiB each), in parallel, each with its Content-MD5 so the service
rejects a range damaged on the way. A 4 GiB image with 200 MiB of data sends about 200 MiB.
"""

from __future__ import annotations

import io
import json
import threading
from pathlib import Path
from typing import Any

from uploaders.base import (
    SettingInfo,
    SettingsError,
    UploadCancelled,
    UploadContext,
    Uploader,
    UploadError,
    allocated_bytes,
    nonzero_runs,
    register,
    run_parallel,
    unpack_xz,
)

PAGE_RANGE = 4 * 1024 * 1024  # the largest Put Page
PAGE_GRANULE = 64 * 1024  # zero detection inside a range; a multiple of the 512-byte page
VHD_FOOTER = 512
VHD_COOKIE = b"conectix"
MiB = 1024 * 1024
UUID_RE = r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}"


def check_fixed_vhd(path: Path) -> int:
    """Azure only boots fixed VHDs: 512-byte aligned, ending in a footer whose cookie is conectix."""
    size = path.stat().st_size
    if size < VHD_FOOTER or size % 512:
        raise UploadError(f"{path.name} is not a fixed VHD: its size {size} is not a multiple of 512")
    with open(path, "rb") as fh:
        fh.seek(size - VHD_FOOTER)
        footer = fh.read(VHD_FOOTER)
    if not footer.startswith(VHD_COOKIE):
        raise UploadError(f"{path.name} is not a fixed VHD: no VHD footer in its last 512 bytes")
    return size


def _describe(exc: Exception, what: str) -> str:
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    code = getattr(exc, "error_code", None)
    code = getattr(code, "value", code)  # StorageErrorCode enum or plain text
    if isinstance(exc, ClientAuthenticationError) or code in (
            "AuthenticationFailed", "AuthorizationFailure", "AuthorizationPermissionMismatch"):
        return (f"{what}: authentication failed: check the storage account key or SAS token"
                f"{f' ({code})' if code else ''}")
    if isinstance(exc, ResourceNotFoundError):
        return f"{what}: not found ({code or exc.reason})"
    if isinstance(exc, (ServiceRequestError, ServiceResponseError)):
        return f"{what}: network error: {exc.message if hasattr(exc, 'message') else exc}"
    if isinstance(exc, HttpResponseError):
        return f"{what}: {code or exc.status_code}: {exc.reason}"
    return f"{what}: {type(exc).__name__}: {exc}"


@register
class AzureUploader(Uploader):
    name = "azure"
    display = "Azure"
    # July-2023 names, and today's (Fedora 40+: generic-vhd, cloud-azure; EL: azure, SAP apps, CVM)
    supported_types = ("vhd", "azure", "azure-rhui", "azure-sap-rhui", "azure-eap7-rhui",
                       "azure-sapapps-rhui", "azure-cvm", "generic-vhd", "cloud-azure")
    settings_info = (
        SettingInfo("storageAccount", "Storage account name", required=True,
                    regex=r"[a-z0-9]{3,24}", aliases=("storage_account_name",)),
        SettingInfo("storageAccessKey", "Storage account key", secret=True,
                    aliases=("storage_account_key",)),
        SettingInfo("container", "Storage container", required=True,
                    regex=r"[a-z0-9](?!.*--)[a-z0-9-]{1,61}[a-z0-9]", aliases=("storage_container",)),
        SettingInfo("sas_token", "SAS token", secret=True),
        SettingInfo("blob_name", "Blob name", placeholder="defaults to <image name>.vhd"),
        SettingInfo("endpoint", "Blob endpoint URL (Azurite, sovereign clouds)",
                    placeholder="https://<account>.blob.core.windows.net", regex=r"https?://.+",
                    aliases=("endpoint_url",)),
        # the managed image (optional): osbuild-composer's cloud API names
        SettingInfo("resource_group", "Resource group (creates a managed image there)",
                    regex=r"[-\w._()]{1,90}"),
        SettingInfo("location", "Location of the image", placeholder="eastus", regex=r"[a-z0-9]+"),
        SettingInfo("subscription_id", "Subscription ID", regex=UUID_RE),
        SettingInfo("tenant_id", "Tenant (directory) ID", regex=UUID_RE),
        SettingInfo("client_id", "Application (client) ID", regex=UUID_RE),
        SettingInfo("client_secret", "Client secret", secret=True),
        SettingInfo("hyper_v_generation", "Hyper-V generation", placeholder="V1 (x86_64), V2 (aarch64)",
                    regex=r"V1|V2"),
        SettingInfo("authority_host", "Microsoft Entra authority (sovereign clouds)",
                    placeholder="https://login.microsoftonline.com", regex=r"https://.+"),
        SettingInfo("management_endpoint", "Resource Manager endpoint (sovereign clouds)",
                    placeholder="https://management.azure.com", regex=r"https://.+"),
    )
    poll_seconds = 5.0

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if not settings.get("storageAccessKey") and not settings.get("sas_token"):
            raise SettingsError("Missing setting 'storageAccessKey' or 'sas_token': "
                                "one credential is needed")
        if settings.get("resource_group"):
            for name in ("location", "subscription_id"):
                if not settings.get(name):
                    raise SettingsError(f"Missing setting '{name}': a managed image in resource "
                                        "group needs it")
        given = [n for n in ("tenant_id", "client_id", "client_secret") if settings.get(n)]
        if given and len(given) != 3:
            raise SettingsError("Settings 'tenant_id', 'client_id' and 'client_secret' go together; "
                                "leave all out to use the worker's Azure credentials")

    @classmethod
    def secret_values(cls, settings: dict[str, Any]) -> list[str]:
        """The SAS token's signature on its own too: SDK errors may quote a URL's query."""
        values = super().secret_values(settings)
        for part in str(settings.get("sas_token") or "").lstrip("?").split("&"):
            key, _, value = part.partition("=")
            if key == "sig" and value:
                values.append(value)
        return values

    def container_client(self, settings: dict[str, Any]) -> Any:
        from azure.storage.blob import BlobServiceClient, LinearRetry

        account = settings["storageAccount"]
        url = (settings.get("endpoint") or f"https://{account}.blob.core.windows.net").rstrip("/")
        if settings.get("storageAccessKey"):
            credential: Any = {"account_name": account, "account_key": settings["storageAccessKey"]}
        else:
            credential = settings["sas_token"].lstrip("?")
        service = BlobServiceClient(url, credential=credential,
                                    retry_policy=LinearRetry(backoff=1, random_jitter_range=1, retry_total=2),
                                    connection_timeout=10, read_timeout=60,
                                    connection_data_block_size=1024 * 1024)
        return service.get_container_client(settings["container"])

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        if image_path.suffix == ".xz":  # the RHUI, SAP and CVM types ship disk.vhd.xz
            vhd = unpack_xz(image_path, ctx)
            try:
                return self.upload(vhd, image_name, settings, ctx)
            finally:
                vhd.unlink(missing_ok=True)
        size = check_fixed_vhd(image_path)
        if (size - VHD_FOOTER) % MiB:
            ctx.log("warning: the VHD's virtual size is not a whole number of MiB; Azure refuses "
                    "such disks for VMs")
        blob_name = settings.get("blob_name") or f"{image_name}.vhd"
        container = settings["container"]
        container_client = self.container_client(settings)
        blob = container_client.get_blob_client(blob_name)
        where = f"container '{container}' of account '{settings['storageAccount']}'"
        url = blob.url.split("?", 1)[0]
        ctx.log(f"uploading {image_path.name} ({size} bytes) as page blob {url}")
        total = max(allocated_bytes(image_path), 1)
        try:
            # also the first request: it tells a missing container or a bad credential apart
            # (a container SAS may not read container properties, so no separate probe)
            blob.create_page_blob(size)
        except Exception as exc:
            if getattr(exc, "error_code", None) == "ContainerNotFound":
                raise UploadError(f"{where} does not exist") from exc
            raise UploadError(_describe(exc, where)) from exc

        skipped = {"bytes": 0}
        lock = threading.Lock()

        def put(job: tuple[int, bytes]) -> int:
            offset, data = job
            blob.upload_page(data, offset=offset, length=len(data), validate_content=True)
            ctx.add_sent(len(data))
            with lock:  # zero ranges skipped meanwhile count as done too
                extra, skipped["bytes"] = skipped["bytes"], 0
            return len(data) + extra

        def skip(nbytes: int) -> None:
            with lock:
                skipped["bytes"] += nbytes

        sent = {"ranges": 0}

        def counted() -> Any:
            for job in nonzero_runs(image_path, PAGE_RANGE, PAGE_GRANULE, on_skip=skip):
                sent["ranges"] += 1
                yield job

        try:
            run_parallel(counted(), put, ctx, total=total)
            ctx.check_cancelled()
        except BaseException as exc:
            try:
                blob.delete_blob()
                ctx.log(f"deleted incomplete blob {blob_name}")
            except Exception as cleanup:
                ctx.log(f"warning: could not delete incomplete blob {blob_name}: {type(cleanup).__name__}")
            if isinstance(exc, (UploadError, KeyboardInterrupt, SystemExit)):
                raise
            assert isinstance(exc, Exception)
            raise UploadError(_describe(exc, f"uploading page blob {blob_name}")) from exc
        ctx.progress(total, total)
        ctx.log(f"uploaded {sent['ranges']} page ranges holding data (at most 4 MiB each); the "
                f"rest of the {size} bytes stay zero")
        result = {"blob_url": url, "account": settings["storageAccount"], "container": container,
                  "blob": blob_name}
        if settings.get("resource_group"):
            try:
                result.update(ManagedImage(settings, ctx, self.poll_seconds).create(image_name, url))
            except UploadCancelled:
                blob.delete_blob()
                ctx.log(f"deleted blob {blob_name}")
                raise
        return result


class ManagedImage:
    """A managed image from the uploaded page blob, in `resource_group` (azure-mgmt-compute)."""

    def __init__(self, settings: dict[str, Any], ctx: UploadContext, poll_seconds: float):
        self.settings, self.ctx, self.poll_seconds = settings, ctx, poll_seconds
        self.group = settings["resource_group"]

    def credential(self) -> Any:
        """The given service principal, else azure-identity's chain (environment, managed identity)."""
        from azure.identity import ClientSecretCredential, DefaultAzureCredential

        authority = self.settings.get("authority_host")
        extra: dict[str, Any] = {"authority": authority, "disable_instance_discovery": True} if authority else {}
        if self.settings.get("client_secret"):
            return ClientSecretCredential(self.settings["tenant_id"], self.settings["client_id"],
                                          self.settings["client_secret"], **extra)
        return DefaultAzureCredential(exclude_interactive_browser_credential=True, **extra)

    def create(self, image_name: str, blob_url: str) -> dict[str, Any]:
        from azure.mgmt.compute import ComputeManagementClient

        endpoint = (self.settings.get("management_endpoint") or "https://management.azure.com").rstrip("/")
        client = ComputeManagementClient(self.credential(), self.settings["subscription_id"],
                                         base_url=endpoint, credential_scopes=[f"{endpoint}/.default"])
        generation = self.settings.get("hyper_v_generation") or ("V2" if self.ctx.arch == "aarch64" else "V1")
        # the REST body itself: the SDK's model classes changed shape between releases
        image = {"location": self.settings["location"],
                 "properties": {"hyperVGeneration": generation, "storageProfile": {"osDisk": {
                     "osType": "Linux", "osState": "Generalized", "blobUri": blob_url}}}}
        where = f"image '{image_name}' in resource group '{self.group}'"
        self.ctx.log(f"creating managed {where} ({self.settings['location']}, {generation})")
        try:
            poller = client.images.begin_create_or_update(
                self.group, image_name, io.BytesIO(json.dumps(image).encode()),
                content_type="application/json", polling_interval=self.poll_seconds)
            while not poller.done():
                if self.ctx.should_cancel():
                    poller.wait(600)  # a started creation cannot be stopped: remove what it made
                    self._delete(client, image_name)
                    raise UploadCancelled("upload cancelled")
                poller.wait(self.poll_seconds)
            created = poller.result()
        except UploadCancelled:
            raise
        except Exception as exc:
            raise UploadError(_describe_arm(exc, where, self.group)) from exc
        self.ctx.log(f"created managed image {created.id}")
        return {"image_id": created.id, "resource_group": self.group, "location": created.location}

    def _delete(self, client: Any, image_name: str) -> None:
        try:
            client.images.begin_delete(self.group, image_name, polling_interval=self.poll_seconds).result()
            self.ctx.log(f"deleted image '{image_name}'")
        except Exception as exc:
            self.ctx.log(f"warning: could not delete image '{image_name}': {type(exc).__name__}")


def _describe_arm(exc: Exception, what: str, group: str) -> str:
    from azure.core.exceptions import ClientAuthenticationError, HttpResponseError

    if isinstance(exc, ClientAuthenticationError):
        reason = str(exc).splitlines()[0] if str(exc) else ""
        return f"{what}: authentication failed: check tenant_id, client_id and client_secret ({reason})"
    if isinstance(exc, HttpResponseError):
        code = getattr(exc.error, "code", None) or exc.status_code
        if code == "ResourceGroupNotFound":
            return f"resource group '{group}' does not exist"
        message = getattr(exc.error, "message", None) or exc.reason
        return f"{what}: {code}: {message}"
    return _describe(exc, what)

