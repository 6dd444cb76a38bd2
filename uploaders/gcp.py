"""GCP target (osbuild-composer's `gcp`): the image tarball into a GCS bucket, then a Compute Engine
image created from it, optionally shared, and the object deleted.

The settings are osbuild-composer's: `bucket`, `object` (given a `.tar.gz` suffix, which Compute
Engine's import requires), `region` (where the image is stored), `credentials` (the base64 of a
service-account JSON key; without it the worker's Application Default Credentials). The project
is the credentials' project.
"""

from __future__ import annotations

import base64
import binascii
import json
from pathlib import Path
from typing import Any

from uploaders.base import SettingInfo, SettingsError, UploadContext, Uploader, UploadError, register

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

    @classmethod
    def check(cls, settings: dict[str, Any]) -> None:
        if settings.get("credentials"):
            decode_credentials(settings["credentials"])

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        raise UploadError("the gcp upload is not available in this build yet")
