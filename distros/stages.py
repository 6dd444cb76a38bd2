"""osbuild stage, input, device and mount objects (manifest format v2) as plain dicts.

Small builders so that pipeline code reads as the sequence of stages osbuild will run; the
option shapes follow osbuild's stage schemas (`schema_2`).
"""

from __future__ import annotations

from typing import Any

from distros.partition import (
    SECTOR,
    BtrfsVolume,
    Filesystem,
    LogicalVolume,
    LUKSContainer,
    Partition,
    PartitionTable,
    VolumeGroup,
    unique_name,
)

FAT_MOUNT = "org.osbuild.fat"


def stage(type_: str, options: dict[str, Any] | None = None, *, inputs: dict[str, Any] | None = None,
          devices: dict[str, Any] | None = None, mounts: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    s: dict[str, Any] = {"type": type_ if type_.startswith("org.") else f"org.osbuild.{type_}"}
    if inputs is not None:
        s["inputs"] = inputs
    if options is not None:
        s["options"] = options
    if devices is not None:
        s["devices"] = dict(sorted(devices.items()))
    if mounts is not None:
        s["mounts"] = mounts
    return s


# --- inputs -------------------------------------------------------------------------------

def tree_input(pipeline: str) -> dict[str, Any]:
    return {"type": "org.osbuild.tree", "origin": "org.osbuild.pipeline", "references": [f"name:{pipeline}"]}


def pipeline_file_input(pipeline: str, filename: str) -> dict[str, Any]:
    return {"type": "org.osbuild.files", "origin": "org.osbuild.pipeline",
            "references": {f"name:{pipeline}": {"file": filename}}}


def rpm_input(packages: list[dict[str, Any]]) -> dict[str, Any]:
    refs = []
    for pkg in packages:
        ref: dict[str, Any] = {"id": pkg["checksum"]}
        if pkg.get("check_gpg"):
            # only signature-checked packages carry the flag (osbuild-composer leaves it out otherwise)
            ref["options"] = {"metadata": {"rpm.check_gpg": True}}
        refs.append(ref)
    return {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": refs}


def source_file_input(checksum: str) -> dict[str, Any]:
    return {"type": "org.osbuild.files", "origin": "org.osbuild.source", "references": [{"id": checksum}]}


# --- common stages ------------------------------------------------------------------------

def rpm_stage(packages: list[dict[str, Any]], gpgkeys: list[str], **options: Any) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    if gpgkeys:
        opts["gpgkeys"] = gpgkeys
    opts.update({k: v for k, v in options.items() if v is not None})
    return stage("rpm", opts, inputs={"packages": rpm_input(packages)})


def selinux_stage(policy: str = "targeted", labels: dict[str, str] | None = None,
                  force_autorelabel: bool = False) -> dict[str, Any]:
    opts: dict[str, Any] = {"file_contexts": f"etc/selinux/{policy}/contexts/files/file_contexts"}
    if labels:
        opts["labels"] = dict(labels)
    if force_autorelabel:
        opts["force_autorelabel"] = True
    return stage("selinux", opts)


# --- disks --------------------------------------------------------------------------------

def loopback(filename: str, part: Partition | None = None, lock: bool = False) -> dict[str, Any]:
    opts: dict[str, Any] = {"filename": filename}
    if part is not None:
        opts["start"] = part.start // SECTOR
        opts["size"] = part.size // SECTOR
    if lock:
        opts["lock"] = True
    return {"type": "org.osbuild.loopback", "options": opts}


def path_escape(path: str) -> str:
    """systemd's path escaping (`systemd-escape --path`): `/` is `-`, `/boot/efi` is `boot-efi`,
    `/var/log` is `var-log`; `-` and `\\` inside names are hex-escaped so no two paths meet."""
    if path in ("", "/"):
        return "-"
    path = path.strip("/").replace("\\", "\\x5c").replace("-", "\\x2d")
    return path.replace("/", "-")


def device_name(pt: PartitionTable, mountpoint: str) -> str:
    """The osbuild device and mount name of the filesystem at `mountpoint`.

    osbuild/images names them after the escaped mountpoint (`pkg/osbuild/device.go` deviceName,
    pathEscape); osbuild-composer's July-2023 manifests used `root` and the dotted path, which
    gives `/root` the name of `/` (those releases number the later one instead)."""
    if not pt.names_2023:
        return path_escape(mountpoint)
    names: dict[str, str] = {}
    for fs, _ in pt.filesystems():
        base = "root" if fs.mountpoint == "/" else fs.mountpoint.strip("/").replace("/", ".")
        names.setdefault(fs.mountpoint, unique_name(base, set(names.values())))
    return names.get(mountpoint) or path_escape(mountpoint)


def vg_device_name(pt: PartitionTable, vg: VolumeGroup) -> str:
    """images names a volume group's device after the group (`rootvg`); 2023 added `vg`."""
    return vg.name + "vg" if pt.names_2023 else vg.name


def luks_device_name(luks: LUKSContainer) -> str:
    return "luks-" + luks.uuid[:4]


def luks_device(luks: LUKSContainer, parent: str) -> dict[str, Any]:
    return {"type": "org.osbuild.luks2", "parent": parent, "options": {"passphrase": luks.passphrase}}


def container_devices(filename: str, prefix: list[Any], target_name: str, lock: bool) -> dict[str, Any]:
    """Devices exposing what a partition holds: the loopback, or the opened LUKS container on it."""
    part = prefix[0]
    if len(prefix) == 1:
        return {target_name: loopback(filename, part, lock)}
    luks: LUKSContainer = prefix[1]
    name = luks_device_name(luks)
    return {target_name: luks_device(luks, name), name: loopback(filename, part, lock)}


def fs_devices(pt: PartitionTable, filename: str, path: list[Any], target_name: str, lock: bool) -> dict[str, Any]:
    """Devices for one filesystem: its loopback (or LUKS device), or its LV on the VG's device."""
    if len(path) >= 2 and isinstance(path[-2], BtrfsVolume):
        # a subvolume lives on its volume's partition
        return container_devices(filename, path[:-2], target_name, lock)
    if not isinstance(path[-1], LogicalVolume):
        return container_devices(filename, path, target_name, lock)
    vg: VolumeGroup = path[-2]
    lv: LogicalVolume = path[-1]
    vgname = vg_device_name(pt, vg)
    devices = container_devices(filename, path[:-2], vgname, lock)
    devices[target_name] = {"type": "org.osbuild.lvm2.lv", "parent": vgname, "options": {"volume": lv.name}}
    return devices


def luks_format_stages(pt: PartitionTable, filename: str) -> list[dict[str, Any]]:
    """Create each LUKS2 container (and bind it to its clevis pin) before anything goes inside."""
    stages = []
    for part, luks in pt.luks_containers():
        device = {"device": loopback(filename, part, lock=True)}
        opts: dict[str, Any] = {"passphrase": luks.passphrase, "uuid": luks.uuid}
        if luks.cipher:
            opts["cipher"] = luks.cipher
        if luks.label:
            opts["label"] = luks.label
        opts["sector-size"] = luks.sector_size
        if luks.pbkdf:
            opts["pbkdf"] = {"method": luks.pbkdf.get("method", "argon2id"),
                             **{k: luks.pbkdf[k] for k in ("iterations", "memory", "parallelism") if k in luks.pbkdf}}
        stages.append(stage("luks2.format", opts, devices=device))
        if luks.clevis:
            stages.append(stage("clevis.luks-bind", {"passphrase": luks.passphrase, "pin": luks.clevis["pin"],
                                                      "policy": luks.clevis["policy"]},
                                devices={"device": loopback(filename, part, lock=True)}))
    return stages


def luks_finish_stages(pt: PartitionTable, filename: str) -> list[dict[str, Any]]:
    """With a clevis pin in place, the build passphrase is removed from the image."""
    return [stage("luks2.remove-key", {"passphrase": luks.passphrase},
                  devices={"device": loopback(filename, part, lock=True)})
            for part, luks in pt.luks_containers() if luks.clevis and luks.clevis.get("remove_passphrase")]


def _partition_entries(pt: PartitionTable, lower_uuids: bool = False) -> list[dict[str, Any]]:
    """The partitions as sfdisk and sgdisk take them (sectors; the same keys in both stages)."""
    parts = []
    for p in pt.partitions:
        d: dict[str, Any] = {}
        if p.bootable:
            d["bootable"] = True
        d["size"] = p.size // SECTOR
        d["start"] = p.start // SECTOR
        if p.type:
            d["type"] = p.type
        if p.uuid:
            d["uuid"] = p.uuid.lower() if lower_uuids else p.uuid
        parts.append(d)
    return parts


def sfdisk_stage(pt: PartitionTable, filename: str) -> dict[str, Any]:
    return stage("sfdisk", {"label": pt.type, "uuid": pt.uuid, "partitions": _partition_entries(pt)},
                 devices={"device": loopback(filename, lock=True)})


def sgdisk_stage(pt: PartitionTable, filename: str) -> dict[str, Any]:
    """images' org.osbuild.sgdisk options (pkg/osbuild/sgdisk_stage.go): GPT only, the table's
    and partitions' UUIDs as Go's uuid.UUID writes them (lower case)."""
    return stage("sgdisk", {"uuid": pt.uuid.lower(), "partitions": _partition_entries(pt, lower_uuids=True)},
                 devices={"device": loopback(filename, lock=True)})


def mkfs_stage(pt: PartitionTable, fs: Filesystem, path: list[Any], filename: str) -> dict[str, Any]:
    devices = fs_devices(pt, filename, path, "device", lock=True)
    if fs.type == "swap":
        swap: dict[str, Any] = {"uuid": fs.uuid}
        if fs.label:
            swap["label"] = fs.label
        return stage("mkswap", swap, devices=devices)
    if fs.type == "vfat":
        opts: dict[str, Any] = {"volid": fs.uuid.replace("-", "")}
        if fs.label:
            opts["label"] = fs.label
        return stage("mkfs.fat", opts, devices=devices)
    opts = {"uuid": fs.uuid}
    if fs.label:
        opts["label"] = fs.label
    return stage(f"mkfs.{fs.type}", opts, devices=devices)


def btrfs_device_name(vol: BtrfsVolume) -> str:
    return "btrfs-" + vol.uuid[:4]


def btrfs_stages(vol: BtrfsVolume, path: list[Any], filename: str) -> list[dict[str, Any]]:
    """The volume's filesystem, then its subvolumes created with the volume mounted at /."""
    opts: dict[str, Any] = {"uuid": vol.uuid}
    if vol.label:
        opts["label"] = vol.label
    devices = container_devices(filename, path, "device", lock=True)
    # images' NewBtrfsMount always carries its (here empty) options
    volume_mount = {"name": "volume", "type": "org.osbuild.btrfs", "source": "device", "target": "/", "options": {}}
    return [stage("mkfs.btrfs", opts, devices=devices),
            stage("btrfs.subvol", {"subvolumes": [{"name": "/" + sub.subvol.lstrip("/")} for sub in vol.subvolumes]},
                  devices=container_devices(filename, path, "device", lock=True), mounts=[volume_mount])]


def mount_type(fs_type: str) -> str:
    return FAT_MOUNT if fs_type == "vfat" else f"org.osbuild.{fs_type}"


def tree_mounts(pt: PartitionTable, filename: str) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Devices and mounts to see the whole table mounted as one tree (copy, bootloader stages)."""
    devices: dict[str, Any] = {}
    mounts = []
    for fs, path in pt.filesystems():
        if fs.type == "swap":
            continue        # swap is not mounted to fill the tree
        name = device_name(pt, fs.mountpoint)
        if len(path) >= 2 and isinstance(path[-2], BtrfsVolume):
            # one device for the volume, one mount per subvolume
            source = btrfs_device_name(path[-2])
            devices.update(fs_devices(pt, filename, path, source, lock=False))
            options = {"subvol": fs.subvol}
            if "compress=" in fs.fstab_options:
                options["compress"] = fs.fstab_options.split("compress=", 1)[1].split(",")[0]
            mounts.append({"name": name, "type": "org.osbuild.btrfs", "source": source, "target": fs.mountpoint,
                           "options": options})
            continue
        devices.update(fs_devices(pt, filename, path, name, lock=False))
        mounts.append({"name": name, "type": mount_type(fs.type), "source": name, "target": fs.mountpoint})
    mounts.sort(key=lambda m: str(m["target"]))
    return devices, mounts


def fstab_stage(pt: PartitionTable) -> dict[str, Any]:
    entries = []
    for fs, _ in pt.filesystems():
        # swap has no mountpoint: fstab's `none`
        e: dict[str, Any] = {"uuid": fs.uuid, "vfs_type": fs.type, "path": fs.mountpoint or "none",
                             "options": fs.fstab_options}
        if fs.fstab_freq:
            e["freq"] = fs.fstab_freq
        if fs.fstab_passno:
            e["passno"] = fs.fstab_passno
        entries.append(e)
    entries.sort(key=lambda e: (e.get("passno", 0), e["path"]))
    return stage("fstab", {"filesystems": entries})


def mount_unit_stages(pt: PartitionTable) -> list[dict[str, Any]]:
    """Today's alternative to /etc/fstab (Fedora 43+ minimal raw images): one systemd mount unit
    per filesystem in /etc/systemd, enabled for multi-user.target."""
    units = []
    for fs, _ in pt.filesystems():
        if fs.type == "swap":
            continue
        # FAT volume ids keep their case in /dev/disk/by-uuid
        uuid = fs.uuid if fs.type == "vfat" else fs.uuid.lower()
        name = f"{path_escape(fs.mountpoint)}.mount"
        units.append(stage("systemd.unit.create", {
            "filename": name, "unit-path": "etc",
            "config": {"Unit": {"DefaultDependencies": True},
                       "Mount": {"What": f"/dev/disk/by-uuid/{uuid}", "Where": fs.mountpoint, "Type": fs.type,
                                 "Options": fs.fstab_options},
                       "Install": {"WantedBy": ["multi-user.target"]}}}))
    units.sort(key=lambda s: s["options"]["filename"])
    if units:
        units.append(stage("systemd", {"enabled_services": sorted(u["options"]["filename"] for u in units)}))
    return units
