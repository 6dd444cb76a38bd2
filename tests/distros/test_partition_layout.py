"""Partition growth and layout as osbuild/images computes them (pkg/disk: resizeEntityBranch,
Partition.fitTo, relayout), on small hand-made tables."""

from __future__ import annotations

from distros.gorand import GoRand
from distros.partition import (
    Filesystem,
    GiB,
    LogicalVolume,
    LUKSContainer,
    MiB,
    Partition,
    PartitionTable,
    VolumeGroup,
    customized,
)

ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def luks_lvm_table(lv_size: int) -> PartitionTable:
    vg = VolumeGroup(name="rootvg", volumes=[LogicalVolume(name="rootlv", size=lv_size,
                                                           payload=Filesystem(type="xfs", mountpoint="/"))])
    return PartitionTable(type="gpt", uuid="", partitions=[
        Partition(size=200 * MiB, type=ESP, payload=Filesystem(type="vfat", mountpoint="/boot/efi")),
        Partition(size=0, type=LINUX, payload=LUKSContainer(payload=vg, passphrase="x"))])


def test_luks_header_comes_on_top_of_the_volume_group() -> None:
    # the volume group needs its volume plus 1 MiB of metadata in whole 4 MiB extents, the LUKS
    # container its 16 MiB header on top; the disk then ends on a whole MiB behind GPT's backup
    pt = customized(luks_lvm_table(8 * GiB), [], 0, "auto-lvm", None, GoRand(0))
    root = pt.partitions[-1]
    assert root.start == 201 * MiB
    assert pt.size == 201 * MiB + 8 * GiB + 4 * MiB + 16 * MiB + MiB
    assert root.size == pt.size - root.start - 33 * 512


def test_growth_stops_at_a_volume_big_enough() -> None:
    # / needs 3 GiB (images' default directory sizes), the volume has 8: nothing above it grows
    pt = luks_lvm_table(8 * GiB)
    customized(pt, [], 0, "auto-lvm", None, GoRand(0))
    assert pt.partitions[-1].size == 0 and pt.partitions[-1].payload.payload.volumes[0].size == 8 * GiB


def test_blueprint_growth_carries_the_containers_metadata() -> None:
    # a 10 GiB / grows the volume, the group adds its metadata, the LUKS container its header
    # (partition: 10 GiB + 17 MiB); fitting the partition for the layout then puts the header on
    # top of the group once more (16 MiB + 10 GiB + 20 MiB, as images' fitTo), 1 MiB for GPT's backup
    pt = customized(luks_lvm_table(2 * GiB), [{"mountpoint": "/", "minsize": 10 * GiB}], 0, "auto-lvm", None,
                    GoRand(0), today=True)
    vg = pt.partitions[-1].payload.payload
    assert vg.volumes[0].size == 10 * GiB
    assert pt.size - pt.partitions[-1].start == 10 * GiB + 36 * MiB + MiB


def test_start_offset_comes_behind_the_header() -> None:
    pt = PartitionTable(type="gpt", uuid="", start_offset=8 * MiB, partitions=[
        Partition(size=200 * MiB, type=ESP, payload=Filesystem(type="vfat", mountpoint="/boot/efi")),
        Partition(size=2 * GiB, type=LINUX, payload=Filesystem(type="ext4", mountpoint="/"))])
    pt = customized(pt, [], 0, "auto-lvm", {}, GoRand(0))
    assert pt.partitions[0].start == 9 * MiB
