"""Blueprint `disk` customizations and today's mountpoint policy (issues 11 and 15).

Reviewed against osbuild/images 1146ec23cd9c, `pkg/disk/partition_table.go`: NewCustomPartitionTable
(boot-mode partitions from addPartitionsForBootMode/mkBIOSBoot/mkESP with their fixed identifiers,
maybeAddBootPartition/needsBoot/addBootPartition, then addPlainPartition/addLVMPartition/
addBtrfsPartition in blueprint order, EnsureRootFilesystem, EnsureDirectorySizes, relayout with
Partition.fitTo and sortPartitions, GenerateUUIDs), `pkg/disk/disk.go` getPartitionTypeIDfor,
`pkg/disk/lvm.go` CreateLogicalVolume/lvname, osbuild/blueprint CheckDiskMountpointsPolicy,
`pkg/policies` MountpointPolicies (which allows /boot/firmware), `pkg/osbuild` mkswap stage and
fstab entries (`none` for swap).

Whole manifests are compared with images' own: the sha1 of the entry in images' mock manifest list
(`../shared/reference/images-test/manifest-checksums.tsv`), made as `make manifest-checksums` does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import distros
from distros import genmanifests
from distros.partition import PartitioningError, check_mountpoints, mountpoint_allowed
from tests.distros.test_schemas import REPOS, fake_packages

REFERENCE = genmanifests.DEFAULT_REFERENCE
WHOLE = ["rhel_9.4-x86_64-ami-partitioning_lvm", "rhel_9.4-x86_64-ami-partitioning_plain",
         "rhel_10.0-x86_64-qcow2-filesystem_customizations"]


def config_blueprint(name: str) -> dict[str, Any]:
    import json

    path = REFERENCE / "configs" / f"{name}.json"
    if not path.exists():
        pytest.skip(f"no images test config {path}")
    return dict(json.loads(path.read_text())["blueprint"])


def manifest(distro: str, arch: str, image_type: str, bp: dict[str, Any]) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type(arch, image_type)
    return it.manifest(bp, fake_packages(arch, list(it.package_sets(bp))), REPOS, {}, 0)


def image_stages(m: dict[str, Any]) -> list[dict[str, Any]]:
    return list(next(p for p in m["pipelines"] if p["name"] == "image")["stages"])


def by_type(stages: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [s for s in stages if s["type"] == f"org.osbuild.{type_}"]


@pytest.mark.parametrize("name", WHOLE)
def test_whole_manifest_is_images(reference: genmanifests.Reference, tmp_path: Path, name: str) -> None:
    """LVM (gpt, with a swap LV and a plain /data) and plain partitioning (swap and /boot/efi
    partitions), and the legacy `filesystem` customization with /boot/firmware and small sizes
    (clampFSSize): byte for byte images' mock manifest on x86_64 (BIOS + UEFI)."""
    entries = genmanifests.resolve_entries(genmanifests.read_checksums(reference.checksums), reference)
    entry = next(e for e in entries if e.name == name)
    results = genmanifests.generate([entry], reference, str(tmp_path), workers=1)
    assert results[name] == (entry.sha1, "")


def test_lvm_layout() -> None:
    """Boot partitions first (BIOS boot and ESP with images' fixed identifiers, a 1 GiB XBOOTLDR
    /boot because / goes on LVM), then the blueprint's partitions; / becomes `rootlv` (label
    `root`) appended to the blueprint's volume group, swap gets mkswap and fstab's `none`."""
    m = manifest("rhel-9.4", "x86_64", "ami", config_blueprint("partitioning-lvm"))
    stages = image_stages(m)
    parts = by_type(stages, "sfdisk")[0]["options"]["partitions"]
    assert [p["type"] for p in parts] == ["21686148-6449-6E6F-744E-656564454649", "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",
                                          "BC13C2FF-59E6-4262-A352-B275FD6F7172", "0FC63DAF-8483-4772-8E79-3D69D8477DE4",
                                          "E6D6D379-F507-44C2-A23C-238F2A3DF928"]
    assert parts[0]["uuid"] == "FAC7F1FB-3E8D-4137-A512-961DE09A5549"
    assert parts[1]["uuid"] == "68B2905B-DF3E-4FB3-80FA-49D1E773AA33"
    assert [p["size"] for p in parts[:4]] == [2048, 409600, 2097152, 2097152]
    volumes = by_type(stages, "lvm2.create")[0]["options"]["volumes"]
    assert [v["name"] for v in volumes] == ["homelv", "shadowmanlv", "foolv", "usrlv", "optlv", "medialv",
                                            "roothomelv", "srvlv", "swap-lv", "rootlv"]
    swap = by_type(stages, "mkswap")
    assert len(swap) == 1 and swap[0]["devices"]["device"]["options"] == {"volume": "swap-lv"}
    assert by_type(stages, "mkfs.xfs")[-1]["options"]["label"] == "root"
    copy = by_type(stages, "copy")[0]
    assert "swap" not in {mt["type"] for mt in copy["mounts"]} and len(copy["mounts"]) == 12
    os_stages = next(p for p in m["pipelines"] if p["name"] == "os")["stages"]
    fstab = by_type(os_stages, "fstab")[0]["options"]["filesystems"]
    assert [e["path"] for e in fstab][-2:] == ["none", "/boot/efi"]
    assert fstab[-2]["vfs_type"] == "swap" and fstab[-2]["uuid"] == swap[0]["options"]["uuid"]


def test_dos_lvm_table() -> None:
    """A dos table the blueprint asks for: MBR ids (BIOS boot `00`, ESP `ef`, Linux `83`, LVM `8e`);
    only the boot partitions images adds carry its fixed identifiers."""
    m = manifest("centos-9", "x86_64", "ami", config_blueprint("partitioning-dos-lvm"))
    sfdisk = by_type(image_stages(m), "sfdisk")[0]["options"]
    assert sfdisk["label"] == "dos"
    assert [p["type"] for p in sfdisk["partitions"]] == ["00", "ef", "83", "8e"]
    assert all("uuid" not in p for p in sfdisk["partitions"][2:])


def test_plain_root_is_appended_last() -> None:
    """Without `/` in the blueprint, a root partition (GPT root type of the architecture, label
    `root`) ends the table; the blueprint's own /boot/efi replaces the automatic ESP."""
    m = manifest("rhel-9.4", "aarch64", "ami", config_blueprint("partitioning-plain"))
    stages = image_stages(m)
    parts = by_type(stages, "sfdisk")[0]["options"]["partitions"]
    assert parts[-1]["type"] == "B921B045-1DF0-41C3-AF44-4C6F280D3FAE"
    assert parts[-2]["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"       # the blueprint's /boot/efi
    assert sum(p["type"] == "C12A7328-F81F-11D2-BA4B-00A0C93EC93B" for p in parts) == 1
    assert "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F" in [p["type"] for p in parts]   # the swap partition


@pytest.mark.parametrize("path,today,ok", [
    ("/boot/firmware", True, True), ("/boot/firmware", False, False), ("/usr", True, True),
    ("/usr/local", True, False), ("/etc", True, False), ("/var/run", True, False), ("/boot", True, True),
    ("/boot/efi", True, True), ("/boot/efi", False, False), ("relative", True, False), ("/a/../b", True, False),
])
def test_mountpoint_policy_today(path: str, today: bool, ok: bool) -> None:
    """images' MountpointPolicies for releases following images; osbuild-composer's 2023 one else."""
    assert mountpoint_allowed(path, today) is ok


def test_policy_error_names_the_mountpoints() -> None:
    with pytest.raises(PartitioningError, match=r"not supported \['/proc/x'\]"):
        check_mountpoints([{"mountpoint": "/"}, {"mountpoint": "/proc/x"}], today=True)


def test_filesystem_customizations_allow_boot_firmware() -> None:
    """The legacy `filesystem` customization with /boot/firmware makes a manifest on today's releases."""
    m = manifest("centos-9", "x86_64", "qcow2", config_blueprint("filesystem-customizations"))
    copy = by_type(image_stages(m), "copy")[0]
    assert "/boot/firmware" in {mt["target"] for mt in copy["mounts"]}


@pytest.mark.parametrize("distro,arch,image_type,config", [
    ("rhel-9.6", "x86_64", "ami", "partitioning-lvm"), ("rhel-9.6", "aarch64", "ami", "partitioning-plain"),
    ("centos-9", "x86_64", "ami", "partitioning-dos-lvm"), ("rhel-8.10", "x86_64", "ami", "partitioning-lvm-noswap"),
    ("fedora-43", "x86_64", "generic-ami", "partitioning-btrfs"), ("centos-10", "s390x", "qcow2", "filesystem-customizations"),
])
def test_manifests_validate(schema_dir: Path, distro: str, arch: str, image_type: str, config: str) -> None:
    """mkswap, swap fstab entries, btrfs subvolumes and dos tables pass osbuild's own schemas."""
    from tests.distros.test_schemas import validate_manifest

    validate_manifest(manifest(distro, arch, image_type, config_blueprint(config)))


def test_added_mountpoints_get_the_distribution_filesystem() -> None:
    """images' NewPartitionTable formats what the blueprint adds with the distribution's default
    filesystem (ext4 on Fedora), osbuild-composer 2023 with XFS (Fedora 38 keeps that)."""
    bp = {"customizations": {"filesystem": [{"mountpoint": "/var/log", "minsize": "2 GiB"}]}}
    today = image_stages(manifest("fedora-43", "x86_64", "generic-qcow2", bp))
    assert {s["type"] for s in today if s["type"].startswith("org.osbuild.mkfs.")} == {
        "org.osbuild.mkfs.ext4", "org.osbuild.mkfs.fat"}
    old = image_stages(manifest("fedora-38", "x86_64", "qcow2", bp))
    assert "org.osbuild.mkfs.xfs" in {s["type"] for s in old}
