"""How today's installer ISOs boot and hold their root filesystem (osbuild/images' ISO layout).

osbuild-composer's July-2023 ISOs always booted BIOS machines with isolinux and packed the
installer's root as an ext4 image inside a squashfs. osbuild/images (reviewed at 1146ec23cd9c)
chooses both per distro version and architecture in its definitions' `iso_config`:

- `boot_type` (images' `ISOBootType`, `pkg/manifest/anaconda_installer_iso_tree.go`):
  `grub2-uefi` (UEFI only), `syslinux` (isolinux for BIOS + grub2 UEFI), `grub2` (grub2 for BIOS
  through an El Torito image + grub2 UEFI), `grub2-ppc64le`, `s390-iso`. The stages per loader are
  images' `ISOLinuxBoot`, `Grub2X86Boot` (`pkg/manifest/iso_bootloaders.go`) and `EFIBootTree`
  (`pkg/manifest/efi_boot_tree.go`); which loaders a boot type gets is
  `image.ISOBootloaders.Bootloaders` (`pkg/image/iso_bootloaders.go`); the xorrisofs options per
  boot type are `xorrisofsStageOptions` (`pkg/manifest/iso.go`).
- `rootfs_type`: `squashfs-ext4` (the 2023 layout: a `rootfs-image` pipeline), `squashfs` (the
  anaconda tree squashed directly) or `erofs` (`erofs_options`); images'
  `AnacondaInstallerISOTree.NewSquashfsStage` / `NewErofsStage`, both dropping /boot leftovers and
  package databases (`installerBootExcludePaths`).
- `preparer`, `publisher`, `application`, `exclude_paths`: xorrisofs metadata (Fedora sets them).

This module only builds stage dicts; `distros.anaconda` decides which ISO gets which.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

BOOT_TYPES = ("grub2-uefi", "syslinux", "grub2", "grub2-ppc64le", "s390-iso")
ROOTFS_TYPES = ("squashfs-ext4", "squashfs", "erofs")

EFIBOOT_IMG = "images/efiboot.img"
ELTORITO_IMG = "images/eltorito.img"
PXEBOOT_DIR = "/images/pxeboot"

# what the installer's root filesystem does not need at run time (images' installerBootExcludePaths)
INSTALLER_BOOT_EXCLUDE_PATHS = [
    "boot/efi/.*", "boot/grub2/.*", "boot/config-.*", "boot/initramfs-.*", "boot/loader/.*",
    "boot/symvers-.*", "boot/System.map-.*", "usr/lib/sysimage/rpm/.*", "var/lib/rpm/.*",
    "var/lib/yum/.*", "var/lib/dnf/.*",
]  # fmt: skip

_BCJ = {"x86_64": "x86", "aarch64": "arm", "ppc64le": "powerpc"}
_EFI_ARCH = {"x86_64": "X64", "aarch64": "AA64"}


class ISOConfigError(ValueError):
    """An image type's `iso:` data names an unknown boot or root filesystem type."""


@dataclass
class ISOConfig:
    """An image type's `iso:` data (images' `ISOCustomizations` from `iso_config`)."""

    boot_type: str = "grub2-uefi"
    rootfs_type: str = "squashfs-ext4"
    erofs_options: dict[str, Any] = field(default_factory=dict)
    preparer: str = ""
    publisher: str = ""
    application: str = ""
    exclude_paths: list[str] = field(default_factory=list)

    @classmethod
    def from_data(cls, data: Mapping[str, Any] | None) -> "ISOConfig":
        d = dict(data or {})
        cfg = cls(
            boot_type=str(d.get("boot_type") or "grub2-uefi"),
            rootfs_type=str(d.get("rootfs_type") or "squashfs-ext4"),
            erofs_options=dict(d.get("erofs_options") or {}),
            preparer=str(d.get("preparer") or ""),
            publisher=str(d.get("publisher") or ""),
            application=str(d.get("application") or ""),
            exclude_paths=list(d.get("exclude_paths") or []),
        )
        if cfg.boot_type not in BOOT_TYPES:
            raise ISOConfigError(f"unknown ISO boot_type {cfg.boot_type!r} (one of {', '.join(BOOT_TYPES)})")
        if cfg.rootfs_type not in ROOTFS_TYPES:
            raise ISOConfigError(f"unknown ISO rootfs_type {cfg.rootfs_type!r} (one of {', '.join(ROOTFS_TYPES)})")
        return cfg

    @property
    def uefi(self) -> bool:
        """Boot types with an EFI boot tree (images adds `EFIBootTree` for these)."""
        return self.boot_type in ("grub2-uefi", "syslinux", "grub2")

    @property
    def has_rootfs_image(self) -> bool:
        return self.rootfs_type == "squashfs-ext4"


@dataclass
class ISOMenu:
    """What every ISO boot menu shows: product, kernel options, label, FIPS entry, default entry."""

    product: str
    version: str
    iso_label: str
    kernel_opts: list[str]
    fips_menu: bool = False
    default_menu: int = 0
    uefi_vendor: str = ""
    extra_uefi_architectures: list[str] = field(default_factory=list)


def tree_input(pipeline: str) -> dict[str, Any]:
    return {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": [f"name:{pipeline}"]}


def _menu_flags(menu: ISOMenu) -> dict[str, Any]:
    flags: dict[str, Any] = {}
    if menu.fips_menu:
        flags["fips"] = True
    flags.update({"troubleshooting": True, "test": True, "install": True})
    if menu.default_menu > 0:
        flags["config"] = {"default": menu.default_menu}
    return flags


def grub2_efi_stage(menu: ISOMenu, arch: str) -> dict[str, Any]:
    """The efiboot tree's grub2 configuration (images' `EFIBootTree.serialize`)."""
    if arch not in _EFI_ARCH:
        raise ISOConfigError(f"no UEFI boot tree for architecture {arch}")
    options: dict[str, Any] = {
        "product": {"name": menu.product, "version": menu.version},
        "kernel": {"dir": PXEBOOT_DIR, "opts": list(menu.kernel_opts)},
        "isolabel": menu.iso_label,
        "architectures": [_EFI_ARCH[arch]] + list(menu.extra_uefi_architectures),
        "vendor": menu.uefi_vendor,
    }
    options.update(_menu_flags(menu))
    return {"type": "org.osbuild.grub2.iso", "options": options}


def rootfs_stage(cfg: ISOConfig, *, arch: str, live: bool, tree: str, compression: str = "xz") -> dict[str, Any]:
    """The ISO's compressed root filesystem (images' `NewSquashfsStage` / `NewErofsStage`)."""
    filename = "LiveOS/squashfs.img" if live else "images/install.img"
    if cfg.rootfs_type == "erofs":
        options: dict[str, Any] = {"filename": filename, "exclude_paths": list(INSTALLER_BOOT_EXCLUDE_PATHS)}
        erofs = cfg.erofs_options
        if erofs.get("compression"):
            options["compression"] = dict(erofs["compression"])
        if erofs.get("options"):
            options["options"] = list(erofs["options"])
        if erofs.get("cluster-size"):
            options["cluster-size"] = int(erofs["cluster-size"])
        return {"type": "org.osbuild.erofs", "inputs": {"tree": tree_input(tree)}, "options": options}
    method = compression or "xz"
    comp: dict[str, Any] = {"method": method}
    if method == "xz":
        # images always writes the options object; s390x has no branch filter, so it stays empty
        comp["options"] = {"bcj": _BCJ[arch]} if _BCJ.get(arch) else {}
    options = {"filename": filename, "exclude_paths": list(INSTALLER_BOOT_EXCLUDE_PATHS), "compression": comp}
    return {"type": "org.osbuild.squashfs", "inputs": {"tree": tree_input(tree)}, "options": options}


# z/VM and LPAR boot files of s390x ISOs (lorax's, as images ships them): the REXX exec punching
# kernel, parameters and initrd to the reader, the parameter files and the LPAR .ins load map
S390_FILES = [
    ("redhat.exec", "/* */\n'CL RDR'\n'PURGE RDR ALL'\n'SPOOL PUNCH * RDR'\n'PUNCH KERNEL IMG A (NOH'\n"
                    "'PUNCH GENERIC PRM A (NOH'\n'PUNCH INITRD IMG A (NOH'\n'CH RDR ALL KEEP NOHOLD'\n'I 00C'\n"),
    ("generic.prm", "ro ramdisk_size=40000 cio_ignore=all,!condev\n"),
    ("genericdvd.prm", "ro ramdisk_size=40000 cio_ignore=all,!condev rd.cmdline=ask\n"),
    ("generic.ins", "* minimal lpar ins file\nimages/kernel.img 0x00000000\nimages/initrd.img 0x02000000\n"
                    "images/genericdvd.prm 0x00010480\nimages/initrd.addrsize 0x00010408\n"),
]


def chrp_bootinfo() -> bytes:
    """`/ppc/bootinfo.txt`: the CHRP boot descriptor Open Firmware reads to start grub2's core.elf
    (with the 64x64 icon grub installs: upper half white, lower half black, 3-3-2 colour)."""
    icon = ["FF"] * 2048 + ["00"] * 2048
    rows = [" " + " ".join(icon[:15])]
    rest = icon[15:]
    full = len(rest) // 25 * 25
    rows += [" ".join(rest[i:i + 25]) for i in range(0, full, 25)]
    tail = "".join(t + " " for t in rest[full:])
    text = ("<chrp-boot>\n<description>grub 2.00</description>\n<os-name>grub 2.00</os-name>\n"
            "<boot-script>boot &device;:\\boot\\grub\\powerpc-ieee1275\\core.elf</boot-script>\n"
            "<icon size=64,64 color-space=3,3,2>\n<bitmap>" + "\n".join(rows) + "\n" + tail
            + "</bitmap> </icon> </chrp-boot>\n")
    return text.encode()


FileStagesFn = Callable[[list[tuple[str, bytes]]], list[dict[str, Any]]]


def _no_file_stages(files: list[tuple[str, bytes]]) -> list[dict[str, Any]]:
    raise ISOConfigError("this ISO boot type writes files into the ISO tree: pass file_stages")


def bios_boot_stages(cfg: ISOConfig, menu: ISOMenu, *, data_tree: str,
                     file_stages: FileStagesFn = _no_file_stages) -> list[dict[str, Any]]:
    """The BIOS (or ppc64le/s390x) boot loader's stages in the ISO tree, before the EFI boot image;
    `file_stages` writes files into the tree (one stage list per file, as images writes them)."""
    if cfg.boot_type == "grub2-ppc64le":
        # images' Grub2PPC64Boot: grub2 for Open Firmware, found through /ppc/bootinfo.txt
        ppc: dict[str, Any] = {
            "grub2dir": "boot/grub",
            "product": {"name": menu.product, "version": menu.version},
            "kernel": {"dir": PXEBOOT_DIR, "opts": list(menu.kernel_opts)},
            "isolabel": menu.iso_label,
        }
        flags = _menu_flags(menu)
        config = flags.pop("config", None)
        ppc.update(flags)
        ppc["platform"] = "powerpc-ieee1275"
        if config is not None:
            ppc["config"] = config
        return ([{"type": "org.osbuild.grub2.iso.legacy", "options": ppc},
                 {"type": "org.osbuild.mkdir", "options": {"paths": [{"path": "/ppc"}]}}]
                + file_stages([("/ppc/bootinfo.txt", chrp_bootinfo())]))
    if cfg.boot_type == "s390-iso":
        # images' S390Boot: the z/VM and LPAR files, then the El Torito image zipl boots from
        stages: list[dict[str, Any]] = []
        for name, text in S390_FILES:
            stages += file_stages([(f"/images/{name}", text.encode())])
        stages += file_stages([("/images/cdboot.prm", f"ro {' '.join(menu.kernel_opts)}\n".encode())])
        stages.append({"type": "org.osbuild.createaddrsize",
                       "options": {"initrd": f"{PXEBOOT_DIR}/initrd.img", "addrsize": "/images/initrd.addrsize"}})
        stages.append({"type": "org.osbuild.mks390image",
                       "options": {"kernel": f"{PXEBOOT_DIR}/vmlinuz", "initrd": f"{PXEBOOT_DIR}/initrd.img",
                                   "config": "/images/cdboot.prm", "image": "/images/cdboot.img"}})
        return stages
    if cfg.boot_type == "syslinux":
        options: dict[str, Any] = {
            "product": {"name": menu.product, "version": menu.version},
            "kernel": {"dir": PXEBOOT_DIR, "opts": list(menu.kernel_opts)},
        }
        if menu.fips_menu:
            options["fips"] = True
        return [{"type": "org.osbuild.isolinux", "inputs": {"data": tree_input(data_tree)}, "options": options}]
    if cfg.boot_type == "grub2":
        legacy: dict[str, Any] = {
            "product": {"name": menu.product, "version": menu.version},
            "kernel": {"dir": PXEBOOT_DIR, "opts": list(menu.kernel_opts)},
            "isolabel": menu.iso_label,
        }
        legacy.update(_menu_flags(menu))
        inst = {
            "filename": ELTORITO_IMG,
            "platform": "i386-pc",
            "core": {"type": "mkimage", "partlabel": "gpt", "filesystem": "iso9660"},
            "prefix": {"path": "/boot/grub2"},
        }
        return [{"type": "org.osbuild.grub2.iso.legacy", "options": legacy},
                {"type": "org.osbuild.grub2.inst", "options": inst}]
    if cfg.boot_type == "grub2-uefi":
        return []
    raise ISOConfigError(f"ISO boot type {cfg.boot_type!r} is not built by the engine yet")


def xorrisofs_options(cfg: ISOConfig, *, filename: str, volid: str) -> dict[str, Any]:
    """images' `xorrisofsStageOptions` for every boot type."""
    options: dict[str, Any] = {"filename": filename, "volid": volid, "sysid": "LINUX"}
    if cfg.publisher:
        options["pub"] = cfg.publisher
    if cfg.application:
        options["appid"] = cfg.application
    if cfg.preparer:
        options["prep"] = cfg.preparer
    if cfg.boot_type == "syslinux":
        options["boot"] = {"image": "isolinux/isolinux.bin", "catalog": "isolinux/boot.cat"}
    elif cfg.boot_type == "grub2":
        options["boot"] = {"image": ELTORITO_IMG, "catalog": "boot.cat"}
    elif cfg.boot_type == "s390-iso":
        options["boot"] = {"image": "images/cdboot.img", "catalog": "images/boot.cat", "nobootinfo": True}
    elif cfg.boot_type not in ("grub2-uefi", "grub2-ppc64le"):
        raise ISOConfigError(f"ISO boot type {cfg.boot_type!r} is not built by the engine yet")
    if cfg.uefi:
        options["efi"] = EFIBOOT_IMG
    if cfg.boot_type == "syslinux":
        options["isohybridmbr"] = "/usr/share/syslinux/isohdpfx.bin"
    options["isolevel"] = 3
    if cfg.boot_type == "grub2-ppc64le":
        # Rock Ridge names and a CHRP-bootable volume for Open Firmware
        options.update({"rational_rock": True, "untranslated_filenames": True, "full_filenames": True,
                        "volset": volid, "chrp_boot": True})
    if cfg.boot_type == "grub2":
        options["grub2mbr"] = "/usr/lib/grub/i386-pc/boot_hybrid.img"
    if cfg.exclude_paths:
        options["exclude"] = list(cfg.exclude_paths)
    return options


def build_packages(cfg: ISOConfig) -> list[str]:
    """What the ISO tree's stages need in the build root (images' `getBuildPackages`)."""
    packages = ["erofs-utils"] if cfg.rootfs_type == "erofs" else ["squashfs-tools"]
    if cfg.boot_type == "grub2":
        # the i386-pc modules grub2-mkimage builds the El Torito image from
        packages.append("grub2-pc-modules")
    return packages
