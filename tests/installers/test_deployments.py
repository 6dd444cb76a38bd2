"""Disk images of a deployed commit: edge (LUKS2 + LVM) and IoT (Raspberry Pi firmware) layouts."""

from __future__ import annotations

import distros
from tests.distros.test_schemas import fake_packages, validate_manifest
from tests.installers.conftest import SCHEMA_DIR

COMMIT = {"Ref": "acme/iot", "URL": "http://127.0.0.1:9/repo", "Checksum": "cd" * 32}
OPTIONS = {"ostree": {"url": COMMIT["URL"], "ref": COMMIT["Ref"]},
           "ostree_commits": {"ostree-deployment": [COMMIT]}}


def build(distro: str, arch: str, name: str, bp: dict | None = None) -> dict:
    it = distros.get_distro(distro).image_type(arch, name)
    sets = it.package_sets(bp or {}, OPTIONS)
    manifest = it.manifest(bp or {}, fake_packages(arch, list(sets)), [], OPTIONS, seed=11)
    if SCHEMA_DIR.is_dir():
        validate_manifest(manifest)
    return manifest


def stages_of(manifest: dict, pipeline: str) -> list[dict]:
    return next(p for p in manifest["pipelines"] if p["name"] == pipeline)["stages"]


def test_iot_raw_image_on_aarch64_copies_board_firmware_from_the_commit():
    manifest = build("fedora-40", "aarch64", "iot-raw-image")
    image = stages_of(manifest, "image")
    assert [s["type"] for s in image][-2:] == ["org.osbuild.copy", "org.osbuild.copy"]
    sfdisk = next(s for s in image if s["type"] == "org.osbuild.sfdisk")["options"]
    assert sfdisk["label"] == "dos" and [p["type"] for p in sfdisk["partitions"]] == ["06", "83", "83"]
    firmware = image[-1]
    assert firmware["inputs"]["ostree-tree"] == {"type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.source",
                                                 "references": [COMMIT["Checksum"]]}
    paths = firmware["options"]["paths"]
    assert {"from": f"input://ostree-tree/{COMMIT['Checksum']}/usr/share/uboot/rpi_arm64/u-boot.bin",
            "to": "mount://-/boot/efi/rpi-u-boot.bin"} in paths
    assert {m["target"] for m in firmware["mounts"]} == {"/", "/boot", "/boot/efi"}
    # no BIOS boot code on these boards, and none on x86_64 IoT either
    assert "org.osbuild.grub2.inst" not in [s["type"] for s in image]
    assert "org.osbuild.grub2.inst" not in [s["type"] for s in stages_of(build("fedora-40", "x86_64", "iot-raw-image"), "image")]


def test_edge_raw_image_encrypts_root_and_unlocks_it_by_uuid():
    bp = {"customizations": {"kernel": {"append": "quiet"},
                             "ignition": {"firstboot": {"url": "http://127.0.0.1:9/config.ign"}},
                             "user": [{"name": "core", "key": "ssh-ed25519 AAAA core"}]}}
    manifest = build("rhel-9.4", "x86_64", "edge-raw-image", bp)
    image = [s["type"] for s in stages_of(manifest, "image")]
    assert image[:5] == ["org.osbuild.truncate", "org.osbuild.sfdisk", "org.osbuild.luks2.format",
                         "org.osbuild.clevis.luks-bind", "org.osbuild.lvm2.create"]
    assert image[-3:] == ["org.osbuild.lvm2.metadata", "org.osbuild.luks2.remove-key", "org.osbuild.grub2.inst"]
    luks_uuid = next(s for s in stages_of(manifest, "image") if s["type"] == "org.osbuild.luks2.format")["options"]["uuid"]
    deploy = next(s for s in stages_of(manifest, "ostree-deployment") if s["type"] == "org.osbuild.ostree.deploy")
    # images' order: the image config's options, the blueprint's append, the provisioning URL
    assert deploy["options"]["kernel_opts"] == [
        f"luks.uuid={luks_uuid}", "modprobe.blacklist=vc4", "rw", "coreos.no_persist_ip", "quiet",
        "ignition.config.url=http://127.0.0.1:9/config.ign", "ignition.platform.id=metal", "$ignition_firstboot"]
    # before 9.2: no ignition, a writable sysroot
    old = build("rhel-9.0", "x86_64", "edge-raw-image")
    config = next(s for s in stages_of(old, "ostree-deployment") if s["type"] == "org.osbuild.ostree.config")
    assert config["options"]["config"]["sysroot"]["readonly"] is False
    assert "org.osbuild.ignition" not in [s["type"] for s in stages_of(old, "ostree-deployment")]


def test_el8_edge_disk_has_root_directly_in_luks_and_no_ignition():
    manifest = build("rhel-8.8", "x86_64", "edge-raw-image")
    image = stages_of(manifest, "image")
    types = [s["type"] for s in image]
    assert "org.osbuild.lvm2.create" not in types and types.count("org.osbuild.luks2.format") == 1
    root_mkfs = [s for s in image if s["type"] == "org.osbuild.mkfs.xfs"][-1]
    assert root_mkfs["devices"]["device"]["type"] == "org.osbuild.luks2"
    luks_uuid = next(s for s in image if s["type"] == "org.osbuild.luks2.format")["options"]["uuid"]
    deploy = next(s for s in stages_of(manifest, "ostree-deployment") if s["type"] == "org.osbuild.ostree.deploy")
    assert deploy["options"]["kernel_opts"] == [f"luks.uuid={luks_uuid}", "modprobe.blacklist=vc4"]
    assert "edge-raw-image" not in distros.get_distro("rhel-8.4").image_types("x86_64")
