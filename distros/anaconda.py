"""Installer ISOs: the anaconda tree, its root filesystem image, the EFI and ISO trees, the ISO.

An installer ISO is built from five pipelines, the same for every payload:
`anaconda-tree` (the installer's own OS, with a dracut initramfs that can boot it from the ISO),
`rootfs-image` (that tree in an ext4 file that becomes the squashfs `install.img`),
`efiboot-tree` (grub2 for UEFI), `bootiso-tree` (the ISO's file layout: kernel, initrd, squashfs,
isolinux, the FAT `efiboot.img`, the payload and the kickstart) and `bootiso` (xorriso + the
implanted md5). The payload is either a tarball of an `os` pipeline (image-installer, anaconda
installs it with `liveimg`) or an ostree repo holding one pulled commit (edge/iot installer).

That is osbuild-composer's July-2023 layout, kept for the releases osbuild/images no longer defines
(`follows: osbuild-composer-2023`). Every other release (`Installer.today`) follows osbuild/images'
current code (reviewed at 1146ec23cd9c): `pkg/manifest/anaconda_installer.go`
(AnacondaInstaller.serialize, payloadStages, liveStages, dracutStageOptions),
`pkg/manifest/iso_rootfs.go` (ISORootfsImg), `pkg/manifest/anaconda_installer_iso_tree.go`
(AnacondaInstallerISOTree.serialize, makeKickstartStages, makeKickstartSudoersPost,
tarPayloadStages, ostreeKickstartStages, netinstKickstartStages), `pkg/manifest/efi_boot_tree.go`,
`pkg/osbuild/anaconda_stage.go` (NewAnacondaStageOptions[Legacy]) and the image kinds
`pkg/image/anaconda_{tar,ostree,net,live}_installer.go`: the installer's locale (C.UTF-8 unless
the image says), lorax templates from the definitions with branding (some after dracut), dracut's
own module list plus the installer's (`add_modules`), `activatable-modules`, a 5 GiB rootfs image
(4 GiB for ostree installers, none for a squashfs/erofs root), ISO paths with a leading `/`, and
the boot layout of `distros.isoboot`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from distros import isoboot
from distros.isoboot import ISOConfig, ISOMenu
from distros.kickstart import (
    KickstartSettings,
    anaconda_modules,
    kickstart_options,
    kickstart_stages,
    today_kickstart_stages,
)
from distros.ostree import CommitSpec, init_stage, pull_stage, source_commit_input, tree_input

FileStages = Callable[[list[tuple[str, bytes]]], list[dict[str, Any]]]

KICKSTART_PATH = "/osbuild.ks"
ISO_ROOT = "/run/install/repo"
TAR_PAYLOAD = "/liveimg.tar.gz"
OSTREE_PAYLOAD = "/ostree/repo"
EFIBOOT_IMG = "images/efiboot.img"
EFIBOOT_SIZE = 20 * 1024 * 1024
ROOTFS_SIZE = 4 * 1024 * 1024 * 1024
GIB = 1024 * 1024 * 1024
# A fixed filesystem UUID for the installer's rootfs.img, as lorax and osbuild-composer use.
ROOTFS_UUID = "2fe99653-f7ff-44fd-bea8-fa70107524fb"
LIVESYS_PATH = "/etc/sysconfig/livesys"
LIVESYS_DATA = b'livesys_session="gnome"'

USERS_MODULE = "org.fedoraproject.Anaconda.Modules.Users"
SECURITY_MODULE = "org.fedoraproject.Anaconda.Modules.Security"
INTERACTIVE_DEFAULTS_PATH = "/usr/share/anaconda/interactive-defaults.ks"

# dracut modules an installer initramfs needs to find and boot its stage2 from any medium
BASE_DRACUT_MODULES = [
    "bash", "systemd", "fips", "systemd-initrd", "modsign", "nss-softokn", "i18n", "convertfs",
    "network-manager", "network", "ifcfg", "url-lib", "drm", "plymouth", "crypt", "dm",
    "dmsquash-live", "kernel-modules", "kernel-modules-extra", "kernel-network-modules", "livenet",
    "lvm", "mdraid", "qemu", "qemu-net", "resume", "rootfs-block", "terminfo", "udev-rules",
    "dracut-systemd", "pollcdrom", "usrmount", "base", "fs-lib", "img-lib", "shutdown", "uefi-lib",
]  # fmt: skip
INSTALLER_DRACUT_MODULES = ["anaconda", "rdma", "rngd", "multipath", "fcoe", "fcoe-uefi", "iscsi", "lunmask", "nfs"]

_BCJ = {"x86_64": "x86", "aarch64": "arm", "ppc64le": "powerpc"}
_EFI_ARCH = {"x86_64": "X64", "aarch64": "AA64"}


class InstallerError(ValueError):
    """The installer cannot be built from these inputs (e.g. no kernel in the anaconda packages)."""


@dataclass
class Installer:
    """Everything the installer pipelines need to know; images' AnacondaInstaller + ISO tree fields."""

    arch: str
    product: str  # "CentOS Stream", "Red Hat Enterprise Linux", "Fedora"
    os_version: str  # "9-stream", "9.2", "38"
    iso_label: str  # e.g. "CentOS-Stream-9-BaseOS-x86_64"
    uefi_vendor: str  # "centos", "redhat", "fedora"
    release: str  # discinfo release: "<product> <os_version>"
    os_name: str = "redhat"  # osname of the ostree deployment anaconda creates
    variant: str = ""
    live: bool = False  # a live ISO (the anaconda tree *is* the OS) rather than a payload installer
    additional_dracut_modules: list[str] = field(default_factory=list)
    additional_drivers: list[str] = field(default_factory=list)
    additional_anaconda_modules: list[str] = field(default_factory=list)
    squashfs_compression: str = "xz"
    kickstart_in_iso_root: bool = True  # else written to interactive-defaults.ks in the anaconda tree
    additional_kernel_opts: list[str] = field(default_factory=list)
    only_additional_kernel_opts: bool = False  # coreos-installer ISOs: no anaconda/live boot options
    users_options: dict[str, Any] | None = None  # org.osbuild.users options (kickstart `users`)
    groups_options: dict[str, Any] | None = None  # org.osbuild.groups options (kickstart `groups`)
    kickstart: KickstartSettings = field(default_factory=KickstartSettings)
    # a network installer: no payload on the ISO, anaconda installs from repositories; a kickstart
    # only when the blueprint asks for something (users, groups, installer options)
    netinst: bool = False

    # --- today's layout (osbuild/images' InstallerCustomizations / ISOCustomizations) ---
    today: bool = False
    iso: ISOConfig = field(default_factory=ISOConfig)
    locale: str = ""  # the installer's own locale; "" is C.UTF-8
    default_menu: int = 0
    lorax_templates: list[dict[str, Any]] = field(default_factory=list)  # [{path, after_dracut}]
    lorax_logos_package: str = ""
    lorax_release_package: str = ""
    legacy_anaconda_config: bool = False  # `kickstart-modules` instead of `activatable-modules`
    disabled_anaconda_modules: list[str] = field(default_factory=list)
    fips: bool = False  # the blueprint's `fips`: `fips=1` and anaconda's Security module
    fips_menu: bool = False  # the platform's FIPS boot menu entry
    extra_uefi_architectures: list[str] = field(default_factory=list)
    iso_files: list[tuple[str, str]] = field(default_factory=list)  # anaconda-tree path -> ISO path
    preview: bool = False
    payload_location: str = "iso"  # `rootfs`: the ostree payload is inside the installer's root
    payload_kickstart: str = "root"  # `interactive-defaults`: the payload kickstart is anaconda's default
    rootfs_size: int = 5 * GIB
    has_kickstart: bool = True  # today: whether the ISO carries /osbuild.ks (and boots with inst.ks=)
    append_kernel_opts: list[str] = field(default_factory=list)  # the image's and blueprint's (today)
    ostree_remote: str = ""  # today's kickstart names the deployed commit's remote (may be empty)

    @property
    def netinst_kickstart(self) -> bool:
        ks = self.kickstart
        return bool((self.users_options or {}).get("users") or (self.groups_options or {}).get("groups")
                    or ks.unattended or ks.sudo_nopasswd or ks.user_contents is not None)

    @property
    def biosdevname(self) -> bool:
        return self.arch == "x86_64"

    @property
    def isolinux(self) -> bool:
        return self.arch == "x86_64"

    def kernel_opts(self) -> list[str]:
        """The boot options of the ISO: where stage2 lives and, if any, the kickstart on the ISO."""
        if self.today:
            return self._today_kernel_opts()
        opts: list[str] = []
        if self.only_additional_kernel_opts:
            pass
        elif self.live:
            # dracut's dmsquash-live finds the root by the ISO's label
            opts += [f"root=live:CDLABEL={self.iso_label}", "rd.live.image", "quiet", "rhgb"]
        else:
            opts.append(f"inst.stage2=hd:LABEL={self.iso_label}")
            if self.netinst_kickstart if self.netinst else self.kickstart_in_iso_root:
                opts.append(f"inst.ks=hd:LABEL={self.iso_label}:{KICKSTART_PATH}")
        return opts + list(self.additional_kernel_opts)


    def _today_kernel_opts(self) -> list[str]:
        """images' kernelOpts of AnacondaTarInstaller/AnacondaOSTreeInstaller/AnacondaNetInstaller/
        AnacondaLiveInstaller.InstantiateManifest."""
        if self.live:
            return [f"root=live:CDLABEL={self.iso_label}", "rd.live.image", "quiet", "rhgb"] + self.append_kernel_opts
        opts = [f"inst.stage2=hd:LABEL={self.iso_label}"]
        if self.has_kickstart:
            opts.append(f"inst.ks=hd:LABEL={self.iso_label}:{KICKSTART_PATH}")
        if self.fips:
            opts.append("fips=1")
        return opts + list(self.append_kernel_opts)

    def menu(self) -> ISOMenu:
        return ISOMenu(product=self.product, version=self.os_version, iso_label=self.iso_label,
                       kernel_opts=self.kernel_opts(), fips_menu=self.fips_menu, default_menu=self.default_menu,
                       uefi_vendor=self.uefi_vendor, extra_uefi_architectures=list(self.extra_uefi_architectures))

    def enabled_anaconda_modules(self) -> list[str]:
        """images' moduleStates/filterEnabledModules: enabled minus disabled, sorted."""
        enabled = set(self.additional_anaconda_modules)
        if self.fips:
            enabled.add(SECURITY_MODULE)
        for name in self.kickstart.enable_modules:
            enabled.add(name)
        for name in list(self.disabled_anaconda_modules) + list(self.kickstart.disable_modules):
            enabled.discard(name)
        return sorted(enabled)


def kernel_version(packages: Sequence[Mapping[str, Any]], kernel_name: str = "kernel") -> str:
    """`version-release.arch` of the kernel package, the name of its files under /boot."""
    for pkg in packages:
        if pkg.get("name") == kernel_name:
            return f"{pkg['version']}-{pkg['release']}.{pkg['arch']}"
    raise InstallerError(f"package {kernel_name!r} not found in the installer package set")


def iso_root_url(path: str) -> str:
    """A file:// URL for a path on the ISO as anaconda mounts it."""
    return "file://" + ISO_ROOT.rstrip("/") + "/" + path.lstrip("/")


def _no_files(files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    raise InstallerError("this installer cannot write the extra kickstart file")


def buildstamp_stage(inst: Installer) -> dict[str, Any]:
    """/.buildstamp names the product to anaconda and dracut; every installer tree writes one."""
    return {
        "type": "org.osbuild.buildstamp",
        "options": {
            "arch": inst.arch,
            "product": inst.product,
            "version": inst.os_version,
            "final": True,
            "variant": inst.variant,
            "bugurl": "",
        },
    }


def pxeboot_copy_stage(tree: str, kernel_ver: str) -> dict[str, Any]:
    """The installer tree's kernel and initramfs under images/pxeboot, where the ISO's boot
    menus (and PXE setups copying the ISO) expect them."""
    return {
        "type": "org.osbuild.copy",
        "inputs": {"tree": tree_input(tree)},
        "options": {
            "paths": [
                {"from": f"input://tree/boot/vmlinuz-{kernel_ver}", "to": "tree:///images/pxeboot/vmlinuz"},
                {"from": f"input://tree/boot/initramfs-{kernel_ver}.img", "to": "tree:///images/pxeboot/initrd.img"},
            ]
        },
    }


def anaconda_tree_pipeline(
    inst: Installer,
    *,
    rpm_stages: list[dict[str, Any]],
    kernel_ver: str,
    live_file_stages: list[dict[str, Any]] | None = None,
    file_stages: FileStages = _no_files,
    commit: CommitSpec | None = None,
    flatpak_stages: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    if inst.today:
        return _today_anaconda_tree(inst, rpm_stages=rpm_stages, kernel_ver=kernel_ver,
                                    live_file_stages=live_file_stages, commit=commit,
                                    flatpak_stages=flatpak_stages or [])
    stages: list[dict[str, Any]] = [
        *rpm_stages,
        buildstamp_stage(inst),
        {"type": "org.osbuild.locale", "options": {"language": "en_US.UTF-8"}},
    ]
    users: dict[str, Any] = {"root": {"password": ""}}
    if not inst.live:
        # the installer runs as a passwordless "install" user whose shell is anaconda itself
        users = {
            "install": {
                "uid": 0,
                "gid": 0,
                "home": "/root",
                "shell": "/usr/libexec/anaconda/run-anaconda",
                "password": "",
            },
            "root": {"password": ""},
        }
    stages.append({"type": "org.osbuild.users", "options": {"users": users}})
    if inst.live:
        stages.append(
            {
                "type": "org.osbuild.systemd",
                "options": {"enabled_services": ["livesys.service", "livesys-late.service"]},
            }
        )
        # the live session's settings file (/etc/sysconfig/livesys), copied from an inline source
        stages.extend(live_file_stages or [])
    else:
        stages.append(
            {
                "type": "org.osbuild.anaconda",
                "options": {"kickstart-modules": anaconda_modules(inst.additional_anaconda_modules, inst.kickstart)},
            }
        )
        stages.append(
            {
                "type": "org.osbuild.lorax-script",
                "options": {
                    "path": "99-generic/runtime-postinstall.tmpl",
                    "basearch": inst.arch,
                    "product": {"name": "", "version": ""},
                },
            }
        )
    modules = list(BASE_DRACUT_MODULES)
    if inst.biosdevname:
        modules.append("biosdevname")
    modules += list(inst.additional_dracut_modules) + INSTALLER_DRACUT_MODULES
    dracut: dict[str, Any] = {"kernel": [kernel_ver], "modules": modules}
    if inst.additional_drivers:
        dracut["add_drivers"] = list(inst.additional_drivers)
    dracut["install"] = ["/.buildstamp"]
    stages.append({"type": "org.osbuild.dracut", "options": dracut})
    stages.append({"type": "org.osbuild.selinux.config", "options": {"state": "permissive"}})
    if not inst.live and not inst.kickstart_in_iso_root:
        options = kickstart_options(
            "/usr/share/anaconda/interactive-defaults.ks",
            liveimg_url=iso_root_url(TAR_PAYLOAD),
            users_options=inst.users_options,
            groups_options=inst.groups_options,
        )
        stages += kickstart_stages(options, inst.kickstart, file_stages)
    return {"name": "anaconda-tree", "build": "name:build", "stages": stages}


def _lorax_stage(inst: Installer, template: Mapping[str, Any]) -> dict[str, Any]:
    return {
        "type": "org.osbuild.lorax-script",
        "options": {
            "path": template["path"],
            "basearch": inst.arch,
            "product": {"name": "", "version": ""},
            "branding": {"release": inst.lorax_release_package, "logos": inst.lorax_logos_package},
        },
    }


def today_dracut_options(inst: Installer, kernel_ver: str) -> dict[str, Any]:
    """images' AnacondaInstaller.dracutStageOptions: dracut's generic initramfs plus what booting
    the ISO and running anaconda need (as lorax and livemedia-creator call dracut)."""
    modules = ["pollcdrom", "qemu", "qemu-net"] + list(inst.additional_dracut_modules)
    if inst.biosdevname:
        modules.append("biosdevname")
    options: dict[str, Any] = {"kernel": [kernel_ver]}
    extra = ["--xz"]
    if inst.live:
        modules += ["livenet", "dmsquash-live", "convertfs"]
    else:
        modules += ["fips", "anaconda", "prefixdevname-tools"]
        extra += ["--nomdadmconf", "--nolvmconf"]
    options["add_modules"] = modules
    if inst.additional_drivers:
        options["add_drivers"] = list(inst.additional_drivers)
    if not inst.live:
        options["install"] = ["./buildstamp"]
    options["extra"] = extra
    return options


def _today_anaconda_tree(
    inst: Installer,
    *,
    rpm_stages: list[dict[str, Any]],
    kernel_ver: str,
    live_file_stages: list[dict[str, Any]] | None,
    commit: CommitSpec | None,
    flatpak_stages: list[dict[str, Any]],
) -> dict[str, Any]:
    """images' AnacondaInstaller.serialize (payloadStages / liveStages). Embedded Flatpaks
    (`flatpak_stages`, distros.flatpaks) go in only with an ostree payload: anaconda installs them
    from its rpm-ostree payload setup alone."""
    stages: list[dict[str, Any]] = []
    for rpm_stage in rpm_stages:
        rpm = dict(rpm_stage)
        if not inst.live:
            # documentation only on live media (images' GenRPMStagesFromTransactions base options)
            rpm["options"] = {**dict(rpm.get("options") or {}), "exclude": {"docs": True}}
        stages.append(rpm)
    if commit is not None and not inst.live and inst.payload_location == "rootfs":
        # the payload repository inside the installer's root: bare-user, so squashfs/erofs compress it
        stages.append({"type": "org.osbuild.ostree.init", "options": {"mode": "bare-user", "path": OSTREE_PAYLOAD}})
        stages.append(pull_stage(OSTREE_PAYLOAD, source_commit_input(commit)))
    if commit is not None and not inst.live and inst.payload_kickstart == "interactive-defaults":
        options = kickstart_options(INTERACTIVE_DEFAULTS_PATH, ostree_url="file://" + OSTREE_PAYLOAD,
                                    ostree_ref=commit.ref, os_name=inst.os_name, ostree_remote=inst.ostree_remote)
        stages.append({"type": "org.osbuild.kickstart", "options": options})
    if commit is not None and not inst.live:
        stages.extend(flatpak_stages)
    stamp = buildstamp_stage(inst)
    stamp["options"]["final"] = not inst.preview
    stages.append(stamp)
    stages.append({"type": "org.osbuild.locale", "options": {"language": inst.locale or "C.UTF-8"}})
    if inst.live:
        stages.append({"type": "org.osbuild.users", "options": {"users": {"root": {"password": ""}}}})
        stages.append({"type": "org.osbuild.systemd",
                       "options": {"enabled_services": ["livesys.service", "livesys-late.service"]}})
        stages.extend(live_file_stages or [])
        stages.append({"type": "org.osbuild.dracut", "options": today_dracut_options(inst, kernel_ver)})
        stages.append({"type": "org.osbuild.selinux",
                       "options": {"file_contexts": "etc/selinux/targeted/contexts/files/file_contexts"}})
        return {"name": "anaconda-tree", "build": "name:build", "stages": stages}
    users = {
        "install": {"uid": 0, "gid": 0, "home": "/root", "shell": "/usr/libexec/anaconda/run-anaconda", "password": ""},
        "root": {"password": ""},
    }
    stages.append({"type": "org.osbuild.users", "options": {"users": users}})
    if not inst.netinst:
        key = "kickstart-modules" if inst.legacy_anaconda_config else "activatable-modules"
        stages.append({"type": "org.osbuild.anaconda", "options": {key: inst.enabled_anaconda_modules()}})
    stages += [_lorax_stage(inst, t) for t in inst.lorax_templates if not t.get("after_dracut")]
    stages.append({"type": "org.osbuild.dracut", "options": today_dracut_options(inst, kernel_ver)})
    stages += [_lorax_stage(inst, t) for t in inst.lorax_templates if t.get("after_dracut")]
    stages.append({"type": "org.osbuild.selinux.config", "options": {"state": "permissive"}})
    return {"name": "anaconda-tree", "build": "name:build", "stages": stages}


def rootfs_image_pipeline(*, size: int = ROOTFS_SIZE, tree: str = "anaconda-tree", today: bool = False) -> dict[str, Any]:
    """The installer's root as an ext4 file (images' ISORootfsImg writes the paths with a leading /)."""
    image = "LiveOS/rootfs.img"
    lead = "/" if today else ""
    device = {"device": {"type": "org.osbuild.loopback", "options": {"filename": image}}}
    return {
        "name": "rootfs-image",
        "build": "name:build",
        "stages": [
            {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": f"{lead}LiveOS"}]}},
            {"type": "org.osbuild.truncate", "options": {"filename": f"{lead}{image}", "size": str(size)}},
            {
                "type": "org.osbuild.mkfs.ext4",
                "options": {"uuid": ROOTFS_UUID, "label": "Anaconda"},
                "devices": device,
            },
            {
                "type": "org.osbuild.copy",
                "inputs": {"tree": tree_input(tree)},
                "options": {"paths": [{"from": "input://tree/", "to": "mount://device/"}]},
                "devices": device,
                "mounts": [{"name": "device", "type": "org.osbuild.ext4", "source": "device", "target": "/"}],
            },
        ],
    }


def efiboot_tree_pipeline(inst: Installer) -> dict[str, Any]:
    if inst.today:
        return {"name": "efiboot-tree", "build": "name:build",
                "stages": [isoboot.grub2_efi_stage(inst.menu(), inst.arch)]}
    if inst.arch not in _EFI_ARCH:
        raise InstallerError(f"no UEFI boot tree for architecture {inst.arch}")
    return {
        "name": "efiboot-tree",
        "build": "name:build",
        "stages": [
            {
                "type": "org.osbuild.grub2.iso",
                "options": {
                    "product": {"name": inst.product, "version": inst.os_version},
                    "kernel": {"dir": "/images/pxeboot", "opts": inst.kernel_opts()},
                    "isolabel": inst.iso_label,
                    "architectures": [_EFI_ARCH[inst.arch]],
                    "vendor": inst.uefi_vendor,
                },
            }
        ],
    }


def bootiso_tree_pipeline(
    inst: Installer,
    *,
    kernel_ver: str,
    efiboot_volid: str,
    os_tree: str | None = None,
    commit: CommitSpec | None = None,
    file_stages: FileStages = _no_files,
) -> dict[str, Any]:
    """The ISO's files. Payload: `os_tree` (tarball + liveimg kickstart) or `commit` (ostree repo)."""
    if inst.netinst and (os_tree is not None or commit is not None):
        raise InstallerError("a network installer carries no payload")
    if not (inst.live or inst.netinst) and (os_tree is None) == (commit is None):
        raise InstallerError("a payload installer needs exactly one payload: an os tree or an ostree commit")
    if inst.today:
        return _today_bootiso_tree(inst, kernel_ver=kernel_ver, efiboot_volid=efiboot_volid, os_tree=os_tree,
                                   commit=commit, file_stages=file_stages)
    stages: list[dict[str, Any]] = [
        {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "images"}, {"path": "images/pxeboot"}]}}
    ]
    if inst.live:
        stages.append({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "LiveOS"}]}})
    stages.append(pxeboot_copy_stage("anaconda-tree", kernel_ver))
    squashfs: dict[str, Any] = {
        "filename": "LiveOS/squashfs.img" if inst.live else "images/install.img",
        "compression": {"method": inst.squashfs_compression or "xz"},
    }
    if squashfs["compression"]["method"] == "xz" and _BCJ.get(inst.arch):
        squashfs["compression"]["options"] = {"bcj": _BCJ[inst.arch]}
    stages.append({"type": "org.osbuild.squashfs", "inputs": {"tree": tree_input("rootfs-image")}, "options": squashfs})
    if inst.isolinux:
        stages.append(
            {
                "type": "org.osbuild.isolinux",
                "inputs": {"data": tree_input("anaconda-tree")},
                "options": {
                    "product": {"name": inst.product, "version": inst.os_version},
                    "kernel": {"dir": "/images/pxeboot", "opts": inst.kernel_opts()},
                },
            }
        )
    stages += efiboot_image_stages(efiboot_volid)
    if commit is not None:
        stages.append(init_stage(OSTREE_PAYLOAD))
        stages.append(pull_stage(OSTREE_PAYLOAD, source_commit_input(commit)))
        options = kickstart_options(
            KICKSTART_PATH,
            ostree_url=iso_root_url(OSTREE_PAYLOAD),
            ostree_ref=commit.ref,
            os_name=inst.os_name,
            users_options=inst.users_options,
            groups_options=inst.groups_options,
        )
        stages += kickstart_stages(options, inst.kickstart, file_stages)
    if os_tree is not None:
        stages.append({"type": "org.osbuild.tar", "inputs": {"tree": tree_input(os_tree)}, "options": {"filename": TAR_PAYLOAD}})
        if inst.kickstart_in_iso_root:
            options = kickstart_options(
                KICKSTART_PATH,
                liveimg_url=iso_root_url(TAR_PAYLOAD),
                users_options=inst.users_options,
                groups_options=inst.groups_options,
            )
            stages += kickstart_stages(options, inst.kickstart, file_stages)
    if inst.netinst and inst.netinst_kickstart:
        options = kickstart_options(KICKSTART_PATH, users_options=inst.users_options,
                                    groups_options=inst.groups_options)
        stages += kickstart_stages(options, inst.kickstart, file_stages)
    stages.append({"type": "org.osbuild.discinfo", "options": {"basearch": inst.arch, "release": inst.release}})
    return {"name": "bootiso-tree", "build": "name:build", "stages": stages}


def _today_bootiso_tree(
    inst: Installer,
    *,
    kernel_ver: str,
    efiboot_volid: str,
    os_tree: str | None,
    commit: CommitSpec | None,
    file_stages: FileStages,
) -> dict[str, Any]:
    """images' AnacondaInstallerISOTree.serialize."""
    stages: list[dict[str, Any]] = [
        {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/images"}, {"path": "/images/pxeboot"}]}}
    ]
    if inst.live:
        stages.append({"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/LiveOS"}]}})
    copy = pxeboot_copy_stage("anaconda-tree", kernel_ver)
    copy["options"]["paths"] += [{"from": f"input://tree{src}", "to": f"tree://{dst}"} for src, dst in inst.iso_files]
    stages.append(copy)
    tree = "rootfs-image" if inst.iso.has_rootfs_image else "anaconda-tree"
    stages.append(isoboot.rootfs_stage(inst.iso, arch=inst.arch, live=inst.live, tree=tree, compression="xz"))
    menu = inst.menu()
    stages += isoboot.bios_boot_stages(inst.iso, menu, data_tree="anaconda-tree", file_stages=file_stages)
    if inst.iso.uefi:
        stages += efiboot_image_stages(efiboot_volid, mount_name="-")
    if commit is not None:
        if inst.payload_location == "iso":
            stages.append(init_stage(OSTREE_PAYLOAD))
            stages.append(pull_stage(OSTREE_PAYLOAD, source_commit_input(commit)))
        if inst.has_kickstart:
            url = iso_root_url(OSTREE_PAYLOAD) if inst.payload_location == "iso" else "file://" + OSTREE_PAYLOAD
            if inst.payload_kickstart == "root":
                options = kickstart_options(KICKSTART_PATH, ostree_url=url, ostree_ref=commit.ref, os_name=inst.os_name,
                                            ostree_remote=inst.ostree_remote, users_options=inst.users_options,
                                            groups_options=inst.groups_options)
            else:
                options = kickstart_options(KICKSTART_PATH, users_options=inst.users_options,
                                            groups_options=inst.groups_options)
            stages += today_kickstart_stages(options, inst.kickstart, file_stages)
    if os_tree is not None:
        stages.append({"type": "org.osbuild.tar", "inputs": {"tree": tree_input(os_tree)}, "options": {"filename": TAR_PAYLOAD}})
        options = kickstart_options(KICKSTART_PATH, liveimg_url=iso_root_url(TAR_PAYLOAD),
                                    users_options=inst.users_options, groups_options=inst.groups_options)
        stages += today_kickstart_stages(options, inst.kickstart, file_stages)
    if inst.netinst and inst.has_kickstart:
        options = kickstart_options(KICKSTART_PATH, users_options=inst.users_options, groups_options=inst.groups_options)
        stages += today_kickstart_stages(options, inst.kickstart, file_stages)
    stages.append({"type": "org.osbuild.discinfo", "options": {"basearch": inst.arch, "release": inst.release}})
    return {"name": "bootiso-tree", "build": "name:build", "stages": stages}


def efiboot_image_stages(volid: str, *, tree: str = "efiboot-tree", mount_name: str = "root") -> list[dict[str, Any]]:
    """`images/efiboot.img`: a 20 MiB FAT file holding the EFI boot tree, plus a copy of its EFI/ dir.

    Today's images names the FAT device and mount after its mountpoint (`-`, `pkg/osbuild/device.go`);
    osbuild-composer called them `root`."""
    sectors = EFIBOOT_SIZE // 512

    def loop(lock: bool) -> dict[str, Any]:
        options: dict[str, Any] = {"filename": EFIBOOT_IMG, "size": sectors}
        if lock:
            options["lock"] = True
        return {"type": "org.osbuild.loopback", "options": options}

    return [
        {"type": "org.osbuild.truncate", "options": {"filename": EFIBOOT_IMG, "size": str(EFIBOOT_SIZE)}},
        {"type": "org.osbuild.mkfs.fat", "options": {"volid": volid}, "devices": {"device": loop(True)}},
        {
            "type": "org.osbuild.copy",
            "inputs": {"root-tree": tree_input(tree)},
            "options": {"paths": [{"from": "input://root-tree/", "to": f"mount://{mount_name}/"}]},
            "devices": {mount_name: loop(False)},
            "mounts": [{"name": mount_name, "type": "org.osbuild.fat", "source": mount_name, "target": "/"}],
        },
        {
            "type": "org.osbuild.copy",
            "inputs": {"root-tree": tree_input(tree)},
            "options": {"paths": [{"from": "input://root-tree/EFI", "to": "tree:///"}]},
        },
    ]


def bootiso_pipeline(inst: Installer, *, filename: str, tree: str = "bootiso-tree") -> dict[str, Any]:
    if inst.today:
        xorriso = isoboot.xorrisofs_options(inst.iso, filename=filename, volid=inst.iso_label)
        return {
            "name": "bootiso",
            "build": "name:build",
            "stages": [
                {"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input(tree)}, "options": xorriso},
                {"type": "org.osbuild.implantisomd5", "options": {"filename": filename}},
            ],
        }
    options: dict[str, Any] = {
        "filename": filename,
        "volid": inst.iso_label,
        "sysid": "LINUX",
    }
    if inst.isolinux:
        options["boot"] = {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"}
    options["efi"] = EFIBOOT_IMG
    if inst.isolinux:
        options["isohybridmbr"] = "/usr/share/syslinux/isohdpfx.bin"
    options["isolevel"] = 3
    return {
        "name": "bootiso",
        "build": "name:build",
        "stages": [
            {"type": "org.osbuild.xorrisofs", "inputs": {"tree": tree_input(tree)}, "options": options},
            {"type": "org.osbuild.implantisomd5", "options": {"filename": filename}},
        ],
    }


def installer_build_packages(*, ostree_payload: bool, tar_payload: bool, arch: str) -> list[str]:
    """What the build root needs for these pipelines (joins the image type's build package set)."""
    packages = ["grub2-tools", "grub2-tools-extra", "grub2-tools-minimal", "efibootmgr"]
    packages += _BOOT_PACKAGES.get(arch, [])
    packages += ["rpm", "lorax-templates-generic", "squashfs-tools"]
    if ostree_payload:
        packages.append("rpm-ostree")
    if tar_payload:
        packages.append("tar")
    packages += ["isomd5sum", "xorriso"]
    return packages


def anaconda_boot_packages(arch: str, *, syslinux: bool = True) -> list[str]:
    """Packages the anaconda tree needs to boot the ISO (joins the installer package set); isolinux
    only where the ISO boots BIOS machines with it (images' anacondaBootPackageSet)."""
    if arch == "s390x":
        return ["s390utils-core"]          # zipl boots the ISO: no grub2 tools
    packages = ["grub2-tools", "grub2-tools-extra", "grub2-tools-minimal"] + _BOOT_PACKAGES.get(arch, [])
    return [p for p in packages if syslinux or not p.startswith("syslinux")]


_BOOT_PACKAGES = {
    "x86_64": [
        "efibootmgr", "grub2-efi-x64", "grub2-efi-x64-cdboot", "grub2-pc", "grub2-pc-modules", "shim-x64", "syslinux",
        "syslinux-nonlinux",
    ],
    "aarch64": ["efibootmgr", "grub2-efi-aa64-cdboot", "grub2-efi-aa64", "shim-aa64"],
}  # fmt: skip
