"""VMware target (osbuild-composer's `vmware`): the VMDK/OVA onto a vSphere datastore, registered
as a VM template in the datacenter and cluster."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from uploaders.base import SettingInfo, UploadContext, Uploader, UploadError, register


@register
class VMwareUploader(Uploader):
    name = "vmware"
    display = "VMware vSphere"
    supported_types = ("vmdk", "ova")
    settings_info = (
        SettingInfo("host", "vCenter host", required=True, placeholder="vcenter.example.com",
                    regex=r"[A-Za-z0-9.-]+(:[0-9]{1,5})?"),
        SettingInfo("username", "User name", required=True),
        SettingInfo("password", "Password", secret=True, required=True),
        SettingInfo("datacenter", "Datacenter", required=True),
        SettingInfo("cluster", "Cluster", required=True),
        SettingInfo("datastore", "Datastore", required=True),
        SettingInfo("folder", "VM folder", placeholder="the datacenter's VM folder"),
        SettingInfo("tls_verify", "Verify vCenter's TLS certificate (default: true)", type="boolean"),
    )

    def upload(self, image_path: Path, image_name: str, settings: dict[str, Any],
               ctx: UploadContext) -> dict[str, Any]:
        raise UploadError("the vmware upload is not available in this build yet")
