"""The simplified installer: an ISO that writes a prebuilt ostree disk image with coreos-installer.

Unlike the anaconda installers there is no interactive installer and no kickstart: the ISO's
initramfs (`coi-tree`: dracut with the coreos-installer and FDO modules) streams the compressed
raw image of an ostree deployment (the edge raw image pipelines, `image.raw.xz`) onto the device
named in the blueprint (`installation_device`). FIDO Device Onboarding and an embedded ignition
config are passed as kernel options and files in the ISO root; their data travels as inline sources.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from distros.anaconda import (
    BASE_DRACUT_MODULES,
    Installer,
    buildstamp_stage,
    efiboot_image_stages,
    efiboot_tree_pipeline,
    pxeboot_copy_stage,
)
from distros.isoboot import ISOMenu, grub2_efi_stage
from distros.ostree import OSTreeOptionsError, tree_input

RAW_IMAGE = "image.raw.xz"
# the initramfs of today's coreos-installer tree (osbuild/images, after the image type's modules)
COI_DRACUT_MODULES = [
    "systemd", "systemd-initrd", "fips", "modsign", "rescue", "i18n", "kernel-modules", "kernel-modules-extra",
    "network-manager", "network", "drm", "coreos-installer", "fdo", "lvm", "terminfo", "fs-lib",
    "dracut-systemd", "debug", "shutdown",
]  # fmt: skip
FDO_ROOT_CERTS = "/fdo_diun_pub_key_root_certs.pem"


@dataclass(frozen=True)
class FDO:
    """FIDO Device Onboarding settings of the blueprint (`customizations.fdo`)."""

    manufacturing_server_url: str
    diun_pub_key_insecure: str = ""
    diun_pub_key_hash: str = ""
    diun_pub_key_root_certs: str = ""

    @classmethod
    def from_blueprint(cls, data: Mapping[str, Any] | None) -> "FDO | None":
        if not data:
            return None
        return cls(
            manufacturing_server_url=str(data.get("manufacturing_server_url") or ""),
            diun_pub_key_insecure=str(data.get("diun_pub_key_insecure") or ""),
            diun_pub_key_hash=str(data.get("diun_pub_key_hash") or ""),
            diun_pub_key_root_certs=str(data.get("diun_pub_key_root_certs") or ""),
        )

    def kernel_opts(self) -> list[str]:
        opts = [f"fdo.manufacturing_server_url={self.manufacturing_server_url}"]
        if self.diun_pub_key_insecure:
            opts.append(f"fdo.diun_pub_key_insecure={self.diun_pub_key_insecure}")
        if self.diun_pub_key_hash:
            opts.append(f"fdo.diun_pub_key_hash={self.diun_pub_key_hash}")
        if self.diun_pub_key_root_certs:
            opts.append(f"fdo.diun_pub_key_root_certs={FDO_ROOT_CERTS}")
        return opts


def embedded_ignition(data: Mapping[str, Any] | None) -> str | None:
    """The decoded `customizations.ignition.embedded.config` (base64 in the blueprint), if any."""
    embedded = (data or {}).get("embedded")
    if not embedded:
        return None
    try:
        return base64.b64decode(str(embedded.get("config") or ""), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError) as exc:
        raise OSTreeOptionsError("can't decode Ignition config") from exc


def firstboot_ignition_url(data: Mapping[str, Any] | None) -> str:
    """`customizations.ignition.firstboot.url`: a kernel option of the deployed system."""
    firstboot = (data or {}).get("firstboot") or {}
    return str(firstboot.get("url") or "")


def inline_checksum(data: str) -> str:
    return "sha256:" + hashlib.sha256(data.encode()).hexdigest()


def inline_sources(datas: list[str]) -> dict[str, Any]:
    """`org.osbuild.inline` items for file contents the stages reference by checksum."""
    items = {
        inline_checksum(d): {"encoding": "base64", "data": base64.b64encode(d.encode()).decode()} for d in datas
    }
    return {"org.osbuild.inline": {"items": items}} if items else {}


def plain_files_input(checksum: str) -> dict[str, Any]:
    return {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [checksum]}


@dataclass
class SimplifiedInstaller:
    """The ISO side of a simplified installer; `installer` carries the product and boot facts."""

    installer: Installer
    installation_device: str
    fdo: FDO | None = None
    ignition_config: str | None = None  # decoded embedded config
    additional_dracut_modules: list[str] = field(default_factory=list)
    today: bool = False  # osbuild/images' current layout (else osbuild-composer's of 2023)

    def kernel_opts(self) -> list[str]:
        label = self.installer.iso_label
        opts = [
            "rd.neednet=1",
            "coreos.inst.crypt_root=1",
            f"coreos.inst.isoroot={label}",
            f"coreos.inst.install_dev={self.installation_device}",
            f"coreos.inst.image_file=/run/media/iso/{RAW_IMAGE}",
            "coreos.inst.insecure",
        ]
        if self.fdo is not None:
            opts += self.fdo.kernel_opts()
        return opts

    def inline_data(self) -> list[str]:
        datas = []
        if self.fdo is not None and self.fdo.diun_pub_key_root_certs:
            datas.append(self.fdo.diun_pub_key_root_certs)
        if self.ignition_config:
            datas.append(self.ignition_config)
        return datas


def coi_tree_pipeline(si: SimplifiedInstaller, *, rpm_stages: list[dict[str, Any]], kernel_ver: str) -> dict[str, Any]:
    inst = si.installer
    stages: list[dict[str, Any]] = [
        *rpm_stages,
        buildstamp_stage(inst),
        {"type": "org.osbuild.locale", "options": {"language": "C.UTF-8"}},
    ]
    if si.today:
        # images' CoreOSInstaller: the image type's modules first, then its own list
        modules = list(si.additional_dracut_modules) + list(COI_DRACUT_MODULES)
        if inst.biosdevname:
            modules.append("biosdevname")
    else:
        modules = list(BASE_DRACUT_MODULES)
        if inst.biosdevname:
            modules.append("biosdevname")
        modules += list(si.additional_dracut_modules) + ["coreos-installer", "fdo"]
    dracut: dict[str, Any] = {"kernel": [kernel_ver], "modules": modules, "install": ["/.buildstamp"]}
    if si.fdo is not None and si.fdo.diun_pub_key_root_certs:
        stages.append(
            {
                "type": "org.osbuild.fdo",
                "inputs": {"rootcerts": plain_files_input(inline_checksum(si.fdo.diun_pub_key_root_certs))},
            }
        )
        dracut["install"] = [FDO_ROOT_CERTS]
    stages.append({"type": "org.osbuild.dracut", "options": dracut})
    return {"name": "coi-tree", "build": "name:build", "stages": stages}


def coi_bootiso_tree_pipeline(
    si: SimplifiedInstaller, *, kernel_ver: str, efiboot_volid: str, image_pipeline: str = "xz"
) -> dict[str, Any]:
    inst = si.installer
    stages: list[dict[str, Any]] = [
        {
            "type": "org.osbuild.copy",
            "inputs": {
                "file": {
                    "type": "org.osbuild.files",
                    "origin": "org.osbuild.pipeline",
                    "references": {f"name:{image_pipeline}": {"file": RAW_IMAGE}},
                }
            },
            "options": {"paths": [{"from": f"input://file/{RAW_IMAGE}", "to": f"tree:///{RAW_IMAGE}"}]},
        }
    ]
    if si.ignition_config is not None:
        # coreos-installer-dracut looks for this name in the ISO root
        checksum = inline_checksum(si.ignition_config)
        stages.append(
            {
                "type": "org.osbuild.copy",
                "inputs": {"inlinefile": plain_files_input(checksum)},
                "options": {"paths": [{"from": f"input://inlinefile/{checksum}", "to": "tree:///ignition_config"}]},
            }
        )
    # today's images: absolute paths and its unnamed ("-") loop device for the EFI boot image
    lead = "/" if si.today else ""
    stages.append({"type": "org.osbuild.mkdir",
                   "options": {"paths": [{"path": f"{lead}images"}, {"path": f"{lead}images/pxeboot"}]}})
    efiboot = efiboot_image_stages(efiboot_volid, mount_name="-" if si.today else "root")
    stages += efiboot[:3]  # truncate, mkfs.fat, copy of the EFI tree into the FAT image
    stages.append(pxeboot_copy_stage("coi-tree", kernel_ver))
    if inst.isolinux:
        stages.append(
            {
                "type": "org.osbuild.isolinux",
                "inputs": {"data": tree_input("coi-tree")},
                "options": {
                    "product": {"name": inst.product, "version": inst.os_version},
                    "kernel": {"dir": "/images/pxeboot", "opts": si.kernel_opts()},
                },
            }
        )
    stages.append(
        {
            "type": "org.osbuild.copy",
            "inputs": {"tree": tree_input("efiboot-tree")},
            "options": {"paths": [{"from": "input://tree/EFI", "to": "tree:///"}]},
        }
    )
    return {"name": "bootiso-tree", "build": "name:build", "stages": stages}


def coi_efiboot_tree_pipeline(si: SimplifiedInstaller) -> dict[str, Any]:
    """The EFI boot tree: today's images writes its grub2 menu with the standard entries (install,
    test, troubleshooting); osbuild-composer (2023) wrote the coreos kernel options only."""
    inst = si.installer
    if not si.today:
        return efiboot_tree_pipeline(coi_installer(si))
    menu = ISOMenu(product=inst.product, version=inst.os_version, iso_label=inst.iso_label,
                   kernel_opts=si.kernel_opts(), uefi_vendor=inst.uefi_vendor)
    return {"name": "efiboot-tree", "build": "name:build", "stages": [grub2_efi_stage(menu, inst.arch)]}


def coi_installer(si: SimplifiedInstaller) -> Installer:
    """The Installer view the shared efiboot-tree and bootiso pipelines take: coreos kernel options."""
    inst = si.installer
    return Installer(
        arch=inst.arch,
        product=inst.product,
        os_version=inst.os_version,
        iso_label=inst.iso_label,
        uefi_vendor=inst.uefi_vendor,
        release=inst.release,
        os_name=inst.os_name,
        variant=inst.variant,
        only_additional_kernel_opts=True,
        additional_kernel_opts=si.kernel_opts(),
    )

