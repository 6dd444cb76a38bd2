"""Disk images: the partitioned raw image and its format conversions (qcow2, vpc, vmdk, xz)."""

from __future__ import annotations

from typing import Any

from distros.engine import ManifestContext, PipelineKind, kind_of, pipeline_kind
from distros.partition import SECTOR, BtrfsVolume
from distros.pipelines.build import build_ref
from distros.pipelines.os_tree import platform
from distros.stages import (
    btrfs_stages,
    container_devices,
    device_name,
    fs_devices,
    loopback,
    luks_finish_stages,
    luks_format_stages,
    mkfs_stage,
    pipeline_file_input,
    sfdisk_stage,
    sgdisk_stage,
    stage,
    tree_input,
    tree_mounts,
)


def output_filename(ctx: ManifestContext, pipeline: str) -> str:
    """The file a pipeline of this image type writes (its `filename`, or the image type's)."""
    for spec in ctx.image_type.pipelines:
        if spec["name"] == pipeline:
            return spec.get("filename") or ctx.image_type.filename
    raise KeyError(pipeline)


def raw_ostree_build_packages(ctx: ManifestContext) -> list[str]:
    """images' RawOSTreeImage.getBuildPackages: the platform's build and boot packages, the
    table's tools, rpm-ostree, and dracut-config-generic and efibootmgr again."""
    plat = platform(ctx)
    pkgs = list(plat.get("build_packages") or []) + list(plat.get("packages") or [])
    if ctx.partition_table is not None:
        pkgs += ctx.partition_table.build_packages()
    return pkgs + ["rpm-ostree", "dracut-config-generic", "efibootmgr"]


@pipeline_kind("disk")
class RawDisk(PipelineKind):
    """Partition, format, copy the tree in, install the BIOS/PReP/zipl boot code."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        if ctx.distro.follows == "images":
            tree = next((p for p in ctx.image_type.pipelines if p["name"] == spec.get("tree", "os")), None)
            if tree is not None and tree["kind"] == "ostree-deployment":
                return raw_ostree_build_packages(ctx), {}
            # images' RawImage asks its tree's build packages again (RawImage.getBuildPackages),
            # and gdisk when sgdisk partitions the disk
            tools = kind_of(tree).build_needs(ctx, tree)[0] if tree is not None else []
            if ctx.data.get("partitioning_tool") == "sgdisk":
                tools = tools + ["gdisk"]
            return tools, {}
        pkgs: list[str] = []
        pt = ctx.partition_table
        if pt is not None:
            for fs, _ in pt.filesystems():
                pkgs.append({"xfs": "xfsprogs", "vfat": "dosfstools", "ext4": "e2fsprogs",
                             "btrfs": "btrfs-progs"}.get(fs.type, "e2fsprogs"))
            if pt.has_lvm():
                pkgs.append("lvm2")
            for _, luks in pt.luks_containers():
                pkgs.append("cryptsetup")
                if luks.clevis:
                    pkgs += ["clevis", "clevis-luks", "clevis-pin-tpm2"]
        return pkgs, {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        pt = ctx.partition_table
        if pt is None:
            raise ValueError(f"{ctx.image_type.name}: a disk pipeline needs a partition table")
        filename = output_filename(ctx, spec["name"])
        # sfdisk, or sgdisk where the type asks for it (RHEL 7's sfdisk cannot write GPT)
        partition = sgdisk_stage if ctx.data.get("partitioning_tool") == "sgdisk" else sfdisk_stage
        stages = [stage("truncate", {"filename": filename, "size": str(pt.size)}), partition(pt, filename)]
        stages += luks_format_stages(pt, filename)
        vgs = pt.volume_groups()
        for prefix, vg in vgs:
            stages.append(stage("lvm2.create",
                                {"volumes": [{"name": lv.name, "size": f"{lv.size}B"} for lv in vg.volumes]},
                                devices=container_devices(filename, prefix, "device", lock=True)))
        made: set[int] = set()
        for fs, path in pt.filesystems():
            if len(path) >= 2 and isinstance(path[-2], BtrfsVolume):
                if id(path[-2]) not in made:       # the volume once, with all its subvolumes
                    made.add(id(path[-2]))
                    stages += btrfs_stages(path[-2], path[:-2], filename)
                continue
            stages.append(mkfs_stage(pt, fs, path, filename))
        devices, mounts = tree_mounts(pt, filename)
        if platform(ctx).get("bootloader") == "zipl":
            # osbuild-composer's copy stage shares its device map with zipl.inst, whole disk included
            devices["disk"] = loopback(filename)
        root = device_name(pt, "/")
        stages.append(stage("copy", {"paths": [{"from": "input://root-tree/", "to": f"mount://{root}/"}]},
                            inputs={"root-tree": tree_input(spec.get("tree", "os"))},
                            devices=devices, mounts=mounts))
        if spec.get("tree") == "ostree-deployment":
            from distros.pipelines.installers import ostree_boot_files_stages

            stages += ostree_boot_files_stages(ctx, filename)
        elif platform(ctx).get("boot_files"):
            # board firmware (e.g. the Raspberry Pi's u-boot) from the tree onto the ESP, as
            # images' raw image pipeline copies the platform's boot files
            paths = [{"from": f"input://root-tree{src}", "to": f"mount://{root}{dst}"}
                     for src, dst in platform(ctx)["boot_files"]]
            stages.append(stage("copy", {"paths": paths}, inputs={"root-tree": tree_input(spec.get("tree", "os"))},
                                devices=devices, mounts=mounts))
        for prefix, vg in vgs:
            stages.append(stage("lvm2.metadata", {"vg_name": vg.name},
                                devices=container_devices(filename, prefix, "device", lock=True)))
        stages += luks_finish_stages(pt, filename)
        stages += self._boot_code(ctx, filename)
        return {"name": spec["name"], **build_ref(ctx), "stages": stages}

    def _boot_code(self, ctx: ManifestContext, filename: str) -> list[dict[str, Any]]:
        pt = ctx.partition_table
        assert pt is not None
        plat = platform(ctx)
        if plat.get("bootloader") == "zipl":
            boot = pt.find("/boot") or pt.find("/")
            assert boot is not None
            devices, mounts = tree_mounts(pt, filename)
            devices["disk"] = loopback(filename)
            return [stage("zipl.inst", {"kernel": ctx.kernel_version(),
                                        "location": boot[1][0].start // SECTOR},
                          devices=devices, mounts=mounts)]
        if not plat.get("bios"):
            return []
        boot = pt.find("/boot") or pt.find("/")
        assert boot is not None
        number = pt.partitions.index(boot[1][0])
        bios_part = next((p for p in pt.partitions if p.bootable), pt.partitions[0])
        # a /boot of its own holds grub2 at its top; a btrfs /boot subvolume is named boot
        prefix_path = "/grub2" if boot[0].mountpoint == "/boot" and not boot[0].subvol else "/boot/grub2"
        return [stage("grub2.inst", {
            "filename": filename,
            "platform": plat["bios"],
            "location": bios_part.start // SECTOR,
            "core": {"type": "mkimage", "partlabel": pt.type, "filesystem": boot[0].type},
            "prefix": {"type": "partition", "partlabel": pt.type, "number": number, "path": prefix_path},
        })]


@pipeline_kind("qemu")
class QemuConvert(PipelineKind):
    """qemu-img conversion of another pipeline's raw image (qcow2, vpc, vmdk, vhdx)."""

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return ["qemu-img"], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("input", "image")
        fmt = dict(spec["format"])
        return {"name": spec["name"], **build_ref(ctx), "stages": [stage(
            "qemu", {"filename": output_filename(ctx, spec["name"]), "format": fmt},
            inputs={"image": pipeline_file_input(source, output_filename(ctx, source))})]}


@pipeline_kind("xz")
class XzCompress(PipelineKind):
    # the stage and the build-root tool share a name (xz, zstd)
    tool = "xz"

    def build_needs(self, ctx: ManifestContext, spec: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        return [self.tool], {}

    def serialize(self, ctx: ManifestContext, spec: dict[str, Any]) -> dict[str, Any]:
        source = spec.get("input", "image")
        return {"name": spec["name"], **build_ref(ctx), "stages": [stage(
            self.tool, {"filename": output_filename(ctx, spec["name"])},
            inputs={"file": pipeline_file_input(source, output_filename(ctx, source))})]}


@pipeline_kind("zstd")
class ZstdCompress(XzCompress):
    """Fedora's minimal-raw-zst: the same single-file compression with zstd."""

    tool = "zstd"


__all__ = ["RawDisk", "QemuConvert", "XzCompress", "ZstdCompress", "output_filename", "fs_devices"]
