"""Whole manifests of today's installer ISOs, pinned (issue 11, classes 9 and 11).

Each pinned file under `pinned/` is the manifest the engine writes for a representative blueprint
(`empty`, and `all`: accounts, locale, time zone, kernel options, FIPS where allowed, unattended
install with password-less sudo and anaconda module choices) on x86_64 and aarch64, with
stand-in packages (tests.distros.test_schemas.fake_packages), a stand-in commit and seed 7. They
were reviewed against osbuild/images 1146ec23cd9c (`/work/ref-manifests`, the mock manifests of
images' gen-manifests: with package references, gpgkeys and sources set aside, our manifests of
the same image types and configs were identical) and its Go code:

- pkg/manifest/anaconda_installer.go: AnacondaInstaller.serialize, payloadStages, liveStages,
  dracutStageOptions, ostreeCommitStages/ostreeKickstartStages (payload in the root filesystem);
- pkg/manifest/anaconda_installer_iso_tree.go: AnacondaInstallerISOTree.serialize,
  NewSquashfsStage, NewErofsStage, makeKickstartStages, makeKickstartSudoersPost,
  tarPayloadStages, ostreeCommitStages, ostreeKickstartStages, netinstKickstartStages;
- pkg/manifest/iso_rootfs.go (ISORootfsImg), efi_boot_tree.go (EFIBootTree.serialize,
  GetISOBootStages), iso_bootloaders.go (ISOLinuxBoot, Grub2X86Boot, Grub2PPC64Boot, S390Boot), iso.go
  (xorrisofsStageOptions);
- pkg/image/iso_bootloaders.go (ISOBootloaders.Bootloaders) and
  anaconda_{tar,ostree,net,live}_installer.go (InstantiateManifest: rootfs sizes, kernel options);
- pkg/distro/generic/images.go: installerCustomizations, isoCustomizations, imageInstallerImage,
  ostreeInstallerImage, networkInstallerImage, liveInstallerImage;
- pkg/osbuild/anaconda_stage.go (NewAnacondaStageOptions[Legacy]), kickstart_stage.go
  (NewKickstartStageOptions, adjustRootUserOptions, IncludeRaw).

A definitions or engine change that alters one of them fails here; regenerate with
`python -m tests.installers.test_today_installers` and review the difference.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import distros
from tests.distros.test_schemas import REPOS, fake_packages, validate_manifest
from tests.installers.conftest import SCHEMA_DIR

PINNED = Path(__file__).resolve().parent / "pinned"
COMMIT = {"Ref": "", "URL": "http://127.0.0.1:9/repo", "Checksum": "c0" * 32}

ACCOUNTS = {"user": [{"name": "root", "password": "$6$root"},
                     {"name": "alice", "password": "$6$alice", "key": "ssh-ed25519 AAAA alice", "groups": ["wheel"]}],
            "group": [{"name": "staff", "gid": 1500}]}
LOCALE = {"locale": {"languages": ["de_DE.UTF-8"], "keyboard": "de"}, "timezone": {"timezone": "Europe/Berlin"}}
INSTALLER = {"installer": {"unattended": True, "sudo-nopasswd": ["%wheel", "alice"],
                           "modules": {"enable": ["org.fedoraproject.Anaconda.Modules.Localization"],
                                       "disable": ["org.fedoraproject.Anaconda.Modules.Network"]}}}
ALL = {"customizations": {**ACCOUNTS, **LOCALE, **INSTALLER, "kernel": {"append": "console=ttyS0"}, "fips": True}}
# what each type accepts of ALL (the others refuse the rest, as images' supported_options do)
ALL_FOR = {
    "network-installer": {"customizations": {"locale": LOCALE["locale"], "fips": True}},
    "edge-installer": {"customizations": {**ACCOUNTS, **LOCALE, **INSTALLER}},
    "iot-installer": {"customizations": {**ACCOUNTS, **LOCALE, **INSTALLER}},
    "sway-atomic-installer": {"customizations": {**ACCOUNTS, **LOCALE, **INSTALLER}},
    "budgie-atomic-installer": {"customizations": {**ACCOUNTS, **LOCALE, **INSTALLER}},
    "everything-network-installer": {"customizations": {**ACCOUNTS, **INSTALLER, "locale": LOCALE["locale"],
                                                        "kernel": {"append": "console=ttyS0"}}},
}

CASES = [
    ("centos-9", "x86_64", "image-installer"),
    ("rhel-9.6", "aarch64", "image-installer"),
    ("rhel-8.10", "x86_64", "image-installer"),
    ("rhel-10.0", "x86_64", "network-installer"),
    ("centos-10", "aarch64", "network-installer"),
    # Open Firmware (grub2 found through /ppc/bootinfo.txt) and s390x (cdboot.img) ISOs: no EFI tree
    ("centos-10", "ppc64le", "network-installer"),
    ("rhel-9.6", "s390x", "network-installer"),
    ("fedora-44", "ppc64le", "everything-network-installer"),
    ("rhel-9.4", "x86_64", "edge-installer"),
    ("rhel-8.10", "aarch64", "edge-installer"),
    ("fedora-43", "x86_64", "minimal-installer"),
    ("fedora-43", "aarch64", "everything-network-installer"),
    ("fedora-44", "x86_64", "iot-installer"),
    ("fedora-43", "x86_64", "workstation-live-installer"),
    ("fedora-43", "x86_64", "sway-atomic-installer"),
    ("fedora-44", "aarch64", "budgie-atomic-installer"),
]
BLUEPRINTS = ["empty", "all"]


def blueprint(image_type: str, which: str) -> dict[str, Any]:
    if which == "empty" or image_type == "workstation-live-installer":
        return {}
    return ALL_FOR.get(image_type, ALL)


def make(distro: str, arch: str, image_type: str, which: str) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type(arch, image_type)
    bp = blueprint(image_type, which)
    options: dict[str, Any] = {}
    sources = it.ostree_sources(bp, {"ostree": {"url": COMMIT["URL"]}})
    if sources:
        options = {"ostree": {"url": COMMIT["URL"]},
                   "ostree_commits": {p: [{**COMMIT, "Ref": s[0].ref}] for p, s in sources.items()}}
    sets = it.package_sets(bp, options)
    return it.manifest(bp, fake_packages(arch, list(sets)), REPOS, options, seed=7)


def pinned_path(distro: str, arch: str, image_type: str, which: str) -> Path:
    return PINNED / f"{distro}-{arch}-{image_type}-{which}.json"


def entries() -> list[tuple[str, str, str, str]]:
    # the live installer takes no customizations: one blueprint
    return [(d, a, t, w) for d, a, t in CASES for w in BLUEPRINTS
            if not (t == "workstation-live-installer" and w == "all")]


@pytest.mark.parametrize("distro,arch,image_type,which", entries())
def test_installer_manifest_is_pinned(distro: str, arch: str, image_type: str, which: str) -> None:
    expected = json.loads(pinned_path(distro, arch, image_type, which).read_text())
    manifest = make(distro, arch, image_type, which)
    assert manifest == expected
    if SCHEMA_DIR.is_dir():
        validate_manifest(manifest)


def test_fedora_39_keeps_the_2023_iso_layout() -> None:
    """Releases images no longer defines keep osbuild-composer's July-2023 installer: isolinux,
    a 4 GiB ext4 rootfs squashed with lz4, the July-2023 dracut module list."""
    m = make("fedora-39", "x86_64", "image-installer", "empty")
    names = [p["name"] for p in m["pipelines"]]
    assert "rootfs-image" in names
    tree = next(p for p in m["pipelines"] if p["name"] == "bootiso-tree")["stages"]
    assert "org.osbuild.isolinux" in [s["type"] for s in tree]
    rootfs = next(p for p in m["pipelines"] if p["name"] == "rootfs-image")["stages"]
    assert rootfs[1]["options"] == {"filename": "LiveOS/rootfs.img", "size": str(4 * 1024 ** 3)}
    dracut = next(s for p in m["pipelines"] if p["name"] == "anaconda-tree" for s in p["stages"]
                  if s["type"] == "org.osbuild.dracut")
    assert "modules" in dracut["options"] and "add_modules" not in dracut["options"]


def test_fedora_37_image_installer_modules_as_osbuild_composer() -> None:
    """osbuild-composer's July-2023 fedora imageInstallerImage enabled anaconda-webui (package,
    Security/Timezone/Localization modules, inst.webui options) from Fedora 38 on; Fedora 37's
    installer with users activates the default modules and Users only."""
    bp = {"customizations": {"user": [{"name": "alice"}]}}
    m37 = make_with("fedora-37", bp)
    anaconda = next(s for p in m37["pipelines"] for s in p["stages"] if s["type"] == "org.osbuild.anaconda")
    assert anaconda["options"] == {"kickstart-modules": [
        "org.fedoraproject.Anaconda.Modules.Network", "org.fedoraproject.Anaconda.Modules.Payloads",
        "org.fedoraproject.Anaconda.Modules.Storage", "org.fedoraproject.Anaconda.Modules.Users"]}
    isolinux = next(s for p in m37["pipelines"] for s in p["stages"] if s["type"] == "org.osbuild.isolinux")
    assert isolinux["options"]["kernel"]["opts"] == ["inst.stage2=hd:LABEL=Fedora-37-BaseOS-x86_64"]
    sets37 = distros.get_distro("fedora-37").image_type("x86_64", "image-installer").package_sets(bp)
    assert "anaconda-webui" not in {p for s in sets37["anaconda-tree"] for p in s["include"]}
    m38 = make_with("fedora-38", bp)
    anaconda38 = next(s for p in m38["pipelines"] for s in p["stages"] if s["type"] == "org.osbuild.anaconda")
    assert anaconda38["options"]["kickstart-modules"][3:] == [
        "org.fedoraproject.Anaconda.Modules.Security", "org.fedoraproject.Anaconda.Modules.Timezone",
        "org.fedoraproject.Anaconda.Modules.Localization", "org.fedoraproject.Anaconda.Modules.Users"]


def make_with(distro: str, bp: dict[str, Any]) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type("x86_64", "image-installer")
    sets = it.package_sets(bp)
    return it.manifest(bp, fake_packages("x86_64", list(sets)), REPOS, {}, seed=7)


def regenerate() -> None:
    PINNED.mkdir(exist_ok=True)
    for distro, arch, image_type, which in entries():
        path = pinned_path(distro, arch, image_type, which)
        path.write_text(json.dumps(make(distro, arch, image_type, which), indent=1, sort_keys=True) + "\n")


if __name__ == "__main__":
    regenerate()
