"""OCI target (osbuild-composer's `oci`, Oracle Cloud Infrastructure): the image into an Object
Storage bucket, then a custom image imported from it in the compartment."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uploaders.base import SettingInfo, UploadContext, Uploader, UploadError, register

OCID_RE = r"ocid1\.[a-z0-9]+\.[a-z0-9-]*\.[a-z0-9-]*\.[A-Za-z0-9._-]+"


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
        SettingInfo("endpoint", "Service endpoint (private endpoints)", regex=r"https?://.+"),
    )

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        raise UploadError("the oci upload is not available in this build yet")
