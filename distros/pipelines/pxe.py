"""PXE trees (today's `pxe-tar-xz`): what a network boot server needs to boot the OS live.

The OS tree stays a normal bootable tree whose initramfs can fetch and mount a live root
(`dmsquash-live`, `livenet`: a dracut.conf the image type adds through its image config). The
`pxe-tree` pipeline then collects the kernel, that initramfs, the EFI boot files and a squashfs of
the OS (`rootfs.img`), plus a sample grub configuration and a README; `tar` and `xz` pack it.
"""

from __future__ import annotations

from typing import Any

from distros.customizations import FileNode
from distros.engine import ManifestContext, PipelineKind, pipeline_kind
from distros.pipelines.build import build_ref
from distros.pipelines.os_tree import file_stages
from distros.stages import stage, tree_input

# the squashfs compression filter per architecture (xz's branch/call/jump converter)
BCJ = {"x86_64": "x86", "aarch64": "arm", "ppc64le": "powerpc"}

# boot loader files, package databases and kernel leftovers the live root does not need
# (the kernel image itself stays: FIPS checks its .hmac)
ROOTFS_EXCLUDES = [
    "boot/efi/.*", "boot/grub2/.*", "boot/config-.*", "boot/initramfs-.*", "boot/loader/.*",
    "boot/symvers-.*", "boot/System.map-.*", "usr/lib/sysimage/rpm/.*", "var/lib/rpm/.*",
    "var/lib/yum/.*", "var/lib/dnf/.*",
]

# Our sample menu: the root image served over HTTP, or appended to the initrd (`cat initrd.img
# rootfs.img > combined.img` style setups). Users replace HTTP-SERVER with their server.
GRUB_CFG = """\
set timeout=60
menuentry 'live root from an HTTP server' {{
    linux /vmlinuz root=live:http://HTTP-SERVER/rootfs.img rd.live.image{cmdline}
    initrd /initrd.img
}}
menuentry 'live root inside the initrd' {{
    linux /vmlinuz root=live:/rootfs.img rd.live.image{cmdline}
    initrd /combined.img
}}
"""

README = """\
PXE boot files made by celery-composer

  vmlinuz      the kernel
  initrd.img   its initramfs, able to fetch and mount a live root (dracut livenet, dmsquash-live)
  rootfs.img   the operating system as a squashfs image
  EFI/         the UEFI boot loader files (shim, grub2)
  grub.cfg     a sample grub2 menu

Serve rootfs.img over HTTP and boot vmlinuz + initrd.img with
  root=live:http://<server>/rootfs.img rd.live.image
or put the root image into the initrd (initrd.img followed by a cpio archive holding
rootfs.img) and boot with root=live:/rootfs.img rd.live.image.
"""


@pipeline_kind("pxe-tree")
class PXETree(PipelineKind):
    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["squashfs-tools"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("input", "os")
        kver = ctx.kernel_version(source)
        copy = stage("copy", {"paths": [
            {"from": f"input://tree/boot/vmlinuz-{kver}", "to": "tree:///vmlinuz"},
            {"from": f"input://tree/boot/initramfs-{kver}.img", "to": "tree:///initrd.img"},
            {"from": "input://tree/boot/efi/EFI", "to": "tree:///EFI"},
        ]}, inputs={"tree": tree_input(source)})
        # the options object always (empty where xz has no branch filter for the arch, s390x)
        compression: dict[str, Any] = {"method": "xz", "options": {"bcj": BCJ[ctx.arch]} if ctx.arch in BCJ else {}}
        squashfs = stage("squashfs", {"filename": "rootfs.img", "compression": compression,
                                      "exclude_paths": list(ROOTFS_EXCLUDES)},
                         inputs={"tree": tree_input(source)})
        cmdline = " ".join(ctx.os.kernel_options)
        files = [FileNode(path="/grub.cfg", data=GRUB_CFG.format(cmdline=f" {cmdline}" if cmdline else "").encode()),
                 FileNode(path="/README", data=README.encode())]
        chmod = stage("chmod", {"items": {
            "/EFI": {"mode": "ugo+Xr", "recursive": True},
            "/vmlinuz": {"mode": "0755"},
            "/initrd.img": {"mode": "0644"},
            "/rootfs.img": {"mode": "0644"},
            "/grub.cfg": {"mode": "0644"},
            "/README": {"mode": "0644"},
        }})
        # one copy stage per file, the menu first (images writes each file on its own)
        stages = [copy, squashfs] + [st for f in files for st in file_stages(ctx, [f])] + [chmod]
        return {"name": spec["name"], **build_ref(ctx), "stages": stages}
