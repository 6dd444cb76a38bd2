"""Partition tables: the data form, blueprint growth (filesystem customizations, LVM), layout.

A partition table comes from the definitions with sizes in bytes and fixed identifiers where
osbuild-composer keeps fixed ones (table and partition UUIDs, the ESP serial).  For a compose it is
copied, grown for the blueprint's `filesystem` customizations and the minimum directory sizes of the
image type, laid out on 1 MiB boundaries for the requested image size (the partition holding `/`
takes the rest of the disk), and given fresh filesystem UUIDs from the compose's seeded generator.

Partitioning mode `auto-lvm` (the default) moves `/` into a volume group as soon as the blueprint
asks for a mountpoint the table does not have, and creates a logical volume per new mountpoint;
`raw` creates a partition instead; `lvm` always converts.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

from distros.definitions import DefinitionError, parse_size
from distros.errors import RequestError
from distros.gorand import GoRand, uuid4, volid

MiB = 1024 * 1024
GiB = 1024 * MiB
SECTOR = 512
GRAIN = MiB
LVM_EXTENT = 4 * MiB
LVM_METADATA = MiB
LUKS_METADATA = 16 * MiB  # the LUKS2 header osbuild-composer reserves in front of the payload
# GPT: protective MBR + header + 32 sectors of entries in front, header + entries at the end
GPT_HEADER_SECTORS = 34
GPT_FOOTER_SECTORS = 33
LVM_PARTITION_GUID = "E6D6D379-F507-44C2-A23C-238F2A3DF928"
LVM_PARTITION_DOS = "8e"
FILESYSTEM_DATA_GUID = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
DEFAULT_REQUIRED_SIZES = {"/": 1 * GiB, "/usr": 2 * GiB}
NEW_MOUNTPOINT_FS = "xfs"


class PartitioningError(RequestError):
    """A blueprint's filesystem customization cannot be applied to the table."""


@dataclass
class Filesystem:
    type: str
    mountpoint: str
    label: str = ""
    uuid: str = ""
    fstab_options: str = "defaults"
    fstab_freq: int = 0
    fstab_passno: int = 0
    subvol: str = ""          # a btrfs subvolume's name (its volume's UUID is the filesystem UUID)


@dataclass
class BtrfsVolume:
    """One btrfs filesystem on a partition whose subvolumes are the mounted filesystems (today's
    Fedora Cloud: root, home, var — and boot from Fedora 44)."""

    subvolumes: list[Filesystem] = field(default_factory=list)
    uuid: str = ""
    label: str = ""
    sizes: dict[str, int] = field(default_factory=dict)   # space a subvolume must have, by mountpoint

    def add_subvolume(self, name: str, mountpoint: str, compress: str = "") -> Filesystem:
        options = f"subvol={name}" + (f",compress={compress}" if compress else "")
        fs = Filesystem(type="btrfs", mountpoint=mountpoint, subvol=name, fstab_options=options)
        self.subvolumes.append(fs)
        return fs


# what a blueprint's new mountpoint on a btrfs volume gets (osbuild/images' default)
BTRFS_DEFAULT_COMPRESSION = "zstd:1"


@dataclass
class LogicalVolume:
    name: str
    size: int
    payload: Filesystem


@dataclass
class VolumeGroup:
    name: str
    description: str = ""
    volumes: list[LogicalVolume] = field(default_factory=list)

    def metadata_size(self) -> int:
        return LVM_METADATA

    def used(self) -> int:
        return sum(lv.size for lv in self.volumes) + self.metadata_size()


@dataclass
class LUKSContainer:
    """An encrypted container (LUKS2) holding a filesystem or a volume group (edge disks).

    With a clevis binding the passphrase only serves the build: the image unlocks with the pin
    (e.g. TPM) and the passphrase is removed once the tree is in.
    """

    payload: Filesystem | VolumeGroup
    label: str = ""
    cipher: str = ""
    passphrase: str = ""
    pbkdf: dict[str, Any] = field(default_factory=dict)
    clevis: dict[str, Any] | None = None
    uuid: str = ""
    sector_size: int = 0

    def metadata_size(self) -> int:
        return LUKS_METADATA


Payload = Filesystem | VolumeGroup | LUKSContainer | BtrfsVolume | None


@dataclass
class Partition:
    size: int
    type: str = ""
    uuid: str = ""
    bootable: bool = False
    start: int = 0
    payload: Payload = None


def _unwrap_luks(part: Partition) -> tuple[list[Any], Any]:
    """A partition's payload past its LUKS container, if any, with the containers passed on the
    way (partition, then LUKS): the path the fstab/mount and LVM generators need."""
    prefix: list[Any] = [part]
    payload = part.payload
    if isinstance(payload, LUKSContainer):
        prefix.append(payload)
        payload = payload.payload
    return prefix, payload


@dataclass
class PartitionTable:
    type: str                      # "gpt" or "dos"
    uuid: str
    partitions: list[Partition]
    size: int = 0
    start_offset: int = 0
    # osbuild-composer's July-2023 device and mount names (`root`, `boot.efi`, `rootvgvg`) instead of
    # osbuild/images' systemd-escaped mountpoints (`-`, `boot-efi`, `rootvg`); see distros.stages
    names_2023: bool = False

    # --- construction -------------------------------------------------------------------
    @classmethod
    def from_def(cls, d: dict[str, Any], default_fs_type: str) -> "PartitionTable":
        parts = []
        for p in d["partitions"]:
            part = Partition(
                size=parse_size(p.get("size", 0)), type=str(p.get("type", "")),
                uuid=p.get("uuid", ""), bootable=bool(p.get("bootable", False)),
                payload=_payload_from_def(p, default_fs_type),
            )
            parts.append(part)
        return cls(type=d.get("type", "gpt"), uuid=str(d.get("uuid", "")), partitions=parts,
                   size=parse_size(d.get("size", 0)), start_offset=parse_size(d.get("start_offset", 0)))

    def clone(self) -> "PartitionTable":
        return copy.deepcopy(self)

    # --- queries ------------------------------------------------------------------------
    def filesystems(self) -> Iterator[tuple[Filesystem, list[Any]]]:
        """Every filesystem with the path of containers leading to it (partition first)."""
        for part in self.partitions:
            prefix, payload = _unwrap_luks(part)
            if isinstance(payload, Filesystem):
                yield payload, prefix
            elif isinstance(payload, VolumeGroup):
                for lv in payload.volumes:
                    yield lv.payload, prefix + [payload, lv]
            elif isinstance(payload, BtrfsVolume):
                # the subvolume itself ends the path (it has no size of its own: the volume's sizes)
                for sub in payload.subvolumes:
                    yield sub, prefix + [payload, sub]

    def luks_containers(self) -> list[tuple[Partition, LUKSContainer]]:
        return [(p, p.payload) for p in self.partitions if isinstance(p.payload, LUKSContainer)]

    def volume_groups(self) -> list[tuple[list[Any], VolumeGroup]]:
        """Each volume group with the containers holding it (partition, then LUKS if any)."""
        out = []
        for part in self.partitions:
            prefix, payload = _unwrap_luks(part)
            if isinstance(payload, VolumeGroup):
                out.append((prefix, payload))
        return out

    def luks_uuids(self) -> list[str]:
        """For the kernel command line: `luks.uuid=` lets the initrd unlock these at boot."""
        return [luks.uuid for _, luks in self.luks_containers()]

    def find(self, mountpoint: str) -> tuple[Filesystem, list[Any]] | None:
        for fs, path in self.filesystems():
            if fs.mountpoint == mountpoint:
                return fs, path
        return None

    def partition_index(self, mountpoint: str) -> int:
        found = self.find(mountpoint)
        if found is None:
            raise DefinitionError(f"no {mountpoint} in partition table")
        return self.partitions.index(found[1][0])

    def build_packages(self) -> list[str]:
        """The tools that make this table's contents, as osbuild/images lists them
        (`PartitionTable.GetBuildPackages`: one entry per feature, in its order)."""
        types = {fs.type for fs, _ in self.filesystems()}
        btrfs = any(isinstance(p.payload, BtrfsVolume) for p in self.partitions) or "btrfs" in types
        out = []
        for present, pkgs in ((self.has_lvm(), ["lvm2"]), (btrfs, ["btrfs-progs"]), ("xfs" in types, ["xfsprogs"]),
                              ("vfat" in types, ["dosfstools"]), ("ext4" in types, ["e2fsprogs"]),
                              (bool(self.luks_containers()), ["clevis", "clevis-luks", "cryptsetup"])):
            if present:
                out += pkgs
        return out

    def has_lvm(self) -> bool:
        return bool(self.volume_groups())

    def mount_owner(self, directory: str) -> str:
        """The mountpoint whose filesystem holds `directory`."""
        best = "/"
        for fs, _ in self.filesystems():
            mp = fs.mountpoint
            if directory == mp or directory.startswith(mp.rstrip("/") + "/"):
                if len(mp) > len(best):
                    best = mp
        return best

    def header_size(self) -> int:
        return GPT_HEADER_SECTORS * SECTOR if self.type == "gpt" else SECTOR

    def footer_size(self) -> int:
        return GPT_FOOTER_SECTORS * SECTOR if self.type == "gpt" else 0

    # --- growth -------------------------------------------------------------------------
    def ensure_size(self, path: list[Any], size: int) -> None:
        """Grow the entity at the end of `path` to hold `size` bytes and its containers with it
        (images' resizeEntityBranch): from the leaf up, a volume group holds its volumes plus its
        metadata, a btrfs volume its subvolumes, a LUKS container its payload plus the header; the
        growth stops at the first sized entity (volume, subvolume, partition) that is big enough."""
        for i in range(len(path) - 1, -1, -1):
            entity = path[i]
            if isinstance(entity, VolumeGroup):
                size = max(size, (sum(lv.size for lv in entity.volumes) or size) + entity.metadata_size())
            elif isinstance(entity, BtrfsVolume):
                size = max(size, sum(entity.sizes.values()) or size)
            elif isinstance(entity, LUKSContainer):
                size += entity.metadata_size()
            elif isinstance(entity, LogicalVolume):
                if size <= entity.size:
                    return
                entity.size = align_up(size, LVM_EXTENT)
            elif isinstance(entity, Filesystem) and i > 0 and isinstance(path[i - 1], BtrfsVolume):
                vol: BtrfsVolume = path[i - 1]
                if size <= vol.sizes.get(entity.mountpoint, 0):
                    return
                vol.sizes[entity.mountpoint] = size
            elif isinstance(entity, Partition):
                if size <= entity.size:
                    return
                entity.size = size

    def ensure_customized_size(self, path: list[Any], size: int) -> None:
        """A blueprint's size for the entity at the end of `path`: aligned for the containers
        that create mountpoints (a volume group's 4 MiB extents, the table's 1 MiB grain; images'
        alignEntityBranch), then grown as `ensure_size` does."""
        if any(isinstance(entity, VolumeGroup) for entity in path):
            size = align_up(size, LVM_EXTENT)
        self.ensure_size(path, align_up(size, GRAIN))

    def ensure_lvm(self, fs_type: str = NEW_MOUNTPOINT_FS) -> None:
        found = self.find("/")
        if found is None:
            raise DefinitionError("partition table has no root filesystem")
        if self.find("/boot") is None:
            self._create_boot(fs_type)
            found = self.find("/")
        assert found is not None  # _create_boot keeps the root filesystem
        fs, path = found
        if len(path) > 1:
            return
        part = path[0]
        vg = VolumeGroup(name="rootvg", description="created via lvm2 and osbuild")
        vg.volumes.append(LogicalVolume(name="rootlv", size=align_up(part.size, LVM_EXTENT), payload=fs))
        part.payload = vg
        part.size = 0       # the layout fits it to the volume group (images' ensureLVM)
        part.type = LVM_PARTITION_GUID if self.type == "gpt" else LVM_PARTITION_DOS

    def _create_boot(self, fs_type: str = NEW_MOUNTPOINT_FS) -> None:
        root = self.find("/")
        assert root is not None
        # appended to the table (the layout still puts the partition holding / last on disk)
        # osbuild/images makes it 1 GiB, an XBOOTLDR partition on GPT (ensureLVM, CreateMountpoint)
        today = not self.names_2023
        gpt_type = "BC13C2FF-59E6-4262-A352-B275FD6F7172" if today else FILESYSTEM_DATA_GUID
        boot = Partition(size=(DEFAULT_BOOT_PARTITION_SIZE if today else 512 * MiB),
                         type=gpt_type if self.type == "gpt" else "",
                         payload=Filesystem(type=fs_type, mountpoint="/boot"))
        self.partitions.append(boot)

    def create_mountpoint(self, mountpoint: str, size: int, mode: str, fs_type: str = NEW_MOUNTPOINT_FS) -> None:
        root = self.find("/")
        assert root is not None
        # osbuild-composer formats the mountpoints a blueprint adds with XFS, whatever / uses;
        # osbuild/images with the distribution's default filesystem type (the caller's `fs_type`)
        _, root_path = root
        if len(root_path) >= 2 and isinstance(root_path[-2], BtrfsVolume):
            # on a btrfs root a new mountpoint is one more (compressed) subvolume
            vol: BtrfsVolume = root_path[-2]
            name = mountpoint.strip("/")
            sub = vol.add_subvolume(name, mountpoint, BTRFS_DEFAULT_COMPRESSION)
            sub.uuid = vol.uuid
            self.ensure_customized_size(root_path[:-1] + [sub], size)
            return
        if self.has_lvm() and mode != "raw":
            _, path = root
            vg = next((x for x in path if isinstance(x, VolumeGroup)), None)
            if vg is None:
                raise PartitioningError(f"cannot create {mountpoint}: / is not on LVM")
            lv = LogicalVolume(name=lv_name(mountpoint, vg), size=0,
                               payload=Filesystem(type=fs_type, mountpoint=mountpoint))
            vg.volumes.append(lv)
            at = path.index(vg)
            self.ensure_customized_size(path[:at + 1] + [lv], size)
            return
        if self.type == "dos" and len(self.partitions) >= 4:
            raise PartitioningError(f"cannot create {mountpoint}: dos tables hold four partitions")
        part = Partition(size=0, type=FILESYSTEM_DATA_GUID if self.type == "gpt" else "",
                         payload=Filesystem(type=fs_type, mountpoint=mountpoint))
        self.partitions.append(part)
        self.ensure_customized_size([part], size)

    def ensure_directory_sizes(self, required: dict[str, int]) -> None:
        totals: dict[str, int] = {}
        for directory, size in required.items():
            owner = self.mount_owner(directory)
            totals[owner] = totals.get(owner, 0) + size
        for mountpoint, size in totals.items():
            found = self.find(mountpoint)
            if found is not None:
                self.ensure_size(found[1], size)

    # --- layout -------------------------------------------------------------------------
    def relayout(self, size: int) -> int:
        # images' relayout: the start offset comes on top of the header, not instead of it
        start = align_up(self.header_size() + self.start_offset, GRAIN)
        size = align_up(size, GRAIN)
        root_idx = None
        for idx, part in enumerate(self.partitions):
            if _holds_root(part):
                root_idx = idx
                continue
            part.start = start
            part.size = align_up(_fit(part), GRAIN)
            start += part.size
        if root_idx is None:
            raise DefinitionError("partition table has no root filesystem")
        root = self.partitions[root_idx]
        root.start = start
        root.size = _fit(root)
        footer = self.footer_size()
        end = align_up(root.start + footer + root.size, GRAIN)
        size = max(size, end)
        self.size = max(self.size, size)
        root.size = self.size - root.start - footer
        # images sorts by start: the partition holding / ends the table (stable for the rest)
        self.partitions.sort(key=lambda p: p.start)
        return self.size

    def forget_payload_identifiers(self) -> None:
        """Drop the fixed partition, filesystem, LUKS and btrfs identifiers (keep the table's)."""
        for part in self.partitions:
            part.uuid = ""
            _forget(part.payload)

    def generate_uuids(self, rng: GoRand) -> None:
        """Fill the missing identifiers in osbuild/images' order (`GenerateUUIDs`), so a seed gives
        images' identifiers: the table, then each partition's payload depth first (a LUKS container
        before what it holds, a btrfs volume for all its subvolumes, a volume group's logical
        volumes in order; FAT gets a volume serial), and last the GPT partitions' UUIDs."""
        if not self.uuid:
            self.uuid = uuid4(rng)
        for part in self.partitions:
            _payload_uuids(part.payload, rng)
        if self.type == "gpt":
            for part in self.partitions:
                if not part.uuid:
                    part.uuid = uuid4(rng)


def _payload_from_def(p: dict[str, Any], default_fs_type: str) -> Payload:
    payload = p.get("payload")
    if payload is None:
        return None
    if payload.get("kind", "filesystem") == "luks":
        inner = _payload_from_def(payload, default_fs_type)
        if not isinstance(inner, (Filesystem, VolumeGroup)):
            raise DefinitionError("a LUKS container holds a filesystem or a volume group")
        return LUKSContainer(payload=inner, label=payload.get("label", ""), cipher=payload.get("cipher", ""),
                             passphrase=payload.get("passphrase", ""), pbkdf=dict(payload.get("pbkdf") or {}),
                             clevis=dict(payload["clevis"]) if payload.get("clevis") else None,
                             uuid=payload.get("uuid", ""), sector_size=int(payload.get("sector_size", 0)))
    if payload.get("kind", "filesystem") == "btrfs":
        vol = BtrfsVolume(uuid=payload.get("uuid", ""), label=payload.get("label", ""))
        for sub in payload.get("subvolumes", []):
            vol.add_subvolume(sub["name"], sub["mountpoint"], sub.get("compress", ""))
        return vol
    if payload.get("kind", "filesystem") == "lvm":
        vg = VolumeGroup(name=payload["name"], description=payload.get("description", ""))
        for lv in payload.get("volumes", []):
            vg.volumes.append(LogicalVolume(name=lv["name"], size=parse_size(lv["size"]),
                                            payload=_fs_from_def(lv["payload"], default_fs_type)))
        return vg
    return _fs_from_def(payload, default_fs_type)


def _fs_from_def(d: dict[str, Any], default_fs_type: str) -> Filesystem:
    return Filesystem(type=d.get("type") or default_fs_type, mountpoint=d["mountpoint"],
                      label=d.get("label", ""), uuid=d.get("uuid", ""),
                      fstab_options=d.get("fstab_options", "defaults"),
                      fstab_freq=int(d.get("fstab_freq", 0)), fstab_passno=int(d.get("fstab_passno", 0)))


def _fit(part: Partition) -> int:
    """images' Partition.fitTo: a partition holding a volume container is at least what the
    container needs for the partition's size (`_min_size`)."""
    return max(part.size, _min_size(part.payload, part.size))


def _min_size(payload: Payload, size: int) -> int:
    """images' minSize of a volume container asked to fill `size`: a volume group its volumes plus
    the LVM metadata, at least `size`, in whole 4 MiB extents; a btrfs volume its subvolumes; a
    LUKS container its 16 MiB header on top of what its payload needs (a volume group in it
    fills `size`, so the header comes on top of that)."""
    if isinstance(payload, VolumeGroup):
        return align_up(max(size, payload.used()), LVM_EXTENT)
    if isinstance(payload, BtrfsVolume):
        return max(size, sum(payload.sizes.values()))
    if isinstance(payload, LUKSContainer):
        inner = payload.payload
        return LUKS_METADATA + (_min_size(inner, size) if isinstance(inner, VolumeGroup) else 0)
    return 0


def _holds_root(part: Partition) -> bool:
    payload = part.payload.payload if isinstance(part.payload, LUKSContainer) else part.payload
    if isinstance(payload, Filesystem):
        return payload.mountpoint == "/"
    if isinstance(payload, VolumeGroup):
        return any(lv.payload.mountpoint == "/" for lv in payload.volumes)
    if isinstance(payload, BtrfsVolume):
        return any(sub.mountpoint == "/" for sub in payload.subvolumes)
    return False


def align_up(size: int, grain: int) -> int:
    return (size + grain - 1) // grain * grain


def unique_name(base: str, taken: set[str]) -> str:
    """`base`, or the first of `base00`, `base01`, ... not taken (images' genUniqueString, as blivet)."""
    if base not in taken:
        return base
    for n in range(100):
        if f"{base}{n:02d}" not in taken:
            return f"{base}{n:02d}"
    raise PartitioningError(f"name collision: no unique name for {base!r}")


def lv_name(mountpoint: str, vg: VolumeGroup) -> str:
    """`rootlv` for `/`, `home_userlv` for `/home/user`; `/root` after `/` becomes `rootlv00`."""
    base = "root" if mountpoint == "/" else mountpoint.strip("/").replace("/", "_")
    return unique_name(base + "lv", {lv.name for lv in vg.volumes})


def _forget(payload: Payload) -> None:
    if isinstance(payload, (LUKSContainer, BtrfsVolume, Filesystem)):
        payload.uuid = ""
    if isinstance(payload, LUKSContainer):
        _forget(payload.payload)
    elif isinstance(payload, BtrfsVolume):
        for sub in payload.subvolumes:
            sub.uuid = ""
    elif isinstance(payload, VolumeGroup):
        for lv in payload.volumes:
            _forget(lv.payload)


def _payload_uuids(payload: Payload, rng: GoRand) -> None:
    if isinstance(payload, LUKSContainer):
        if not payload.uuid:
            payload.uuid = uuid4(rng)
        _payload_uuids(payload.payload, rng)
    elif isinstance(payload, BtrfsVolume):
        if not payload.uuid:
            payload.uuid = uuid4(rng)
        for sub in payload.subvolumes:
            sub.uuid = payload.uuid
    elif isinstance(payload, VolumeGroup):
        for lv in payload.volumes:
            _payload_uuids(lv.payload, rng)
    elif isinstance(payload, Filesystem) and not payload.uuid:
        payload.uuid = volid(rng) if payload.type == "vfat" else uuid4(rng)


# Where a blueprint may (not) put a filesystem, as osbuild-composer's mountpoint policy has it:
# True = the path and everything below it is allowed, "exact" = only the path itself.
MOUNTPOINT_POLICY: dict[str, bool | str] = {
    "/": "exact", "/boot": "exact", "/boot/efi": False, "/bin": False, "/dev": False, "/etc": False,
    "/lib": False, "/lib64": False, "/lost+found": False, "/proc": False, "/run": False, "/sbin": False,
    "/sys": False, "/sysroot": False, "/usr": True, "/var": True, "/var/run": False, "/var/lock": False,
    "/opt": True, "/srv": True, "/home": True, "/tmp": True, "/app": True, "/data": True, "/mnt": True,
}


# osbuild/images' policy (pkg/policies MountpointPolicies): everything below `/` is allowed but
# the API filesystems, merged-usr links and what must live on `/`; `/usr` itself but nothing below
MOUNTPOINT_POLICY_TODAY: dict[str, bool | str] = {
    "/": True, "/etc": False, "/usr": "exact", "/sys": False, "/proc": False, "/dev": False, "/run": False,
    "/bin": False, "/sbin": False, "/lib": False, "/lib64": False, "/lost+found": False, "/sysroot": False,
    "/var/run": False, "/var/lock": False,
}


def mountpoint_allowed(path: str, today: bool = False) -> bool:
    """Whether a blueprint may mount a filesystem at `path`: osbuild-composer's 2023 policy, or
    images' today (absolute and canonical, then the longest policy prefix decides)."""
    if not path.startswith("/") or "//" in path or "/./" in path + "/" or "/../" in path + "/":
        return False
    if path != "/" and path.endswith("/"):
        return False
    policy = MOUNTPOINT_POLICY_TODAY if today else MOUNTPOINT_POLICY
    best = None
    for prefix in policy:
        if path == prefix or (prefix != "/" and path.startswith(prefix + "/")):
            if best is None or len(prefix) > len(best):
                best = prefix
    if best is None:
        return True if path.count("/") >= 1 and path != "/" else False
    rule = policy[best]
    if rule == "exact":
        return path == best
    return bool(rule)


def check_mountpoints(filesystems: list[dict[str, Any]], today: bool = False) -> None:
    """Refuse what osbuild-composer (or, for releases following it, osbuild/images) refuses, with its wording."""
    bad = [f.get("mountpoint", "") for f in filesystems if not mountpoint_allowed(f.get("mountpoint", ""), today)]
    if bad:
        raise PartitioningError(f"The following custom mountpoints are not supported {bad}")
    seen: set[str] = set()
    for f in filesystems:
        if f["mountpoint"] in seen:
            raise PartitioningError(f"duplicate mountpoint {f['mountpoint']!r} in the blueprint")
        seen.add(f["mountpoint"])


def check_disk_mountpoints(disk: dict[str, Any]) -> None:
    """images' CheckDiskMountpointsPolicy: every mountpoint the `disk` customization names (swap
    and empty partitions have none) must pass today's policy, and none twice."""
    mountpoints: list[str] = []
    for p in disk.get("partitions") or []:
        if p.get("mountpoint") and p.get("fs_type") != "swap":
            mountpoints.append(p["mountpoint"])
        mountpoints += [lv["mountpoint"] for lv in p.get("logical_volumes") or []
                        if lv.get("mountpoint") and lv.get("fs_type") != "swap"]
        mountpoints += [sv.get("mountpoint", "") for sv in p.get("subvolumes") or []]
    check_mountpoints([{"mountpoint": mp} for mp in mountpoints], today=True)


def clamp_fs_size(mountpoint: str, size: int) -> int:
    """images' clampFSSize: a customized filesystem gets at least 1 GiB (`/boot` 500 MiB)."""
    return max(size, 524288000 if mountpoint == "/boot" else GiB)


def fs_min_size(fsc: dict[str, Any]) -> int:
    """A filesystem customization's size: bytes, or a string such as "2 GiB"."""
    value = fsc.get("minsize") or fsc.get("size") or 0
    return parse_size(value) if isinstance(value, str) else int(value)


def customized(base: PartitionTable, filesystems: list[dict[str, Any]], image_size: int,
               mode: str, required_sizes: dict[str, int] | None,
               rng: GoRand, today: bool = False, new_fs_type: str = NEW_MOUNTPOINT_FS) -> PartitionTable:
    """The table of one compose: grown for the blueprint, laid out, with fresh UUIDs (`today`:
    the mountpoint policy and minimum sizes of osbuild/images rather than osbuild-composer's 2023
    ones; `new_fs_type`: what the filesystems the blueprint adds are formatted with)."""
    pt = base.clone()
    if mode not in ("auto-lvm", "lvm", "raw"):
        raise PartitioningError(f"unknown partitioning mode {mode!r}")
    if pt.has_lvm() and mode == "raw":
        raise PartitioningError("raw partitioning mode is not possible for a table with LVM")
    check_mountpoints(filesystems, today)
    new: list[tuple[str, int]] = []
    for fsc in filesystems:
        mountpoint = fsc["mountpoint"]
        size = fs_min_size(fsc)
        if today:
            size = clamp_fs_size(mountpoint, size)
        found = pt.find(mountpoint)
        if found is not None:
            pt.ensure_customized_size(found[1], size)
        else:
            new.append((mountpoint, size))
    if mode == "lvm" or (mode == "auto-lvm" and new):
        pt.ensure_lvm(new_fs_type)
    for mountpoint, size in new:
        found = pt.find(mountpoint)      # converting to LVM may have created /boot
        if found is not None:
            pt.ensure_customized_size(found[1], size)
        else:
            pt.create_mountpoint(mountpoint, size, mode, new_fs_type)
    pt.ensure_directory_sizes(DEFAULT_REQUIRED_SIZES if required_sizes is None else required_sizes)
    pt.relayout(image_size)
    pt.generate_uuids(rng)
    return pt


ESP_GUID = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
BIOS_BOOT_GUID = "21686148-6449-6E6F-744E-656564454649"
ESP_FSTAB = "defaults,uid=0,gid=0,umask=077,shortname=winnt"
PREP_GUID = "9E1A2D38-C612-4316-AA26-8B49521E5A8B"
# the identifiers osbuild/images fixes on the boot partitions it adds itself (pkg/disk/disk.go)
BIOS_BOOT_PARTITION_UUID = "FAC7F1FB-3E8D-4137-A512-961DE09A5549"
ESP_PARTITION_UUID = "68B2905B-DF3E-4FB3-80FA-49D1E773AA33"
ESP_FILESYSTEM_UUID = "7B77-95E7"
DEFAULT_BOOT_PARTITION_SIZE = GiB

# images' getPartitionTypeIDfor: (dos, gpt) identifier by role; root and usr differ per architecture on GPT
_PARTITION_TYPE_IDS: dict[str, tuple[str, str]] = {
    "bios": ("00", BIOS_BOOT_GUID), "boot": ("83", "BC13C2FF-59E6-4262-A352-B275FD6F7172"),
    "data": ("83", FILESYSTEM_DATA_GUID), "esp": ("ef", ESP_GUID), "lvm": (LVM_PARTITION_DOS, LVM_PARTITION_GUID),
    "ppc_prep": ("41", PREP_GUID), "swap": ("82", "0657FD6D-A4AB-43C4-84E5-0933C84B4F4F"),
}
_ROOT_GUIDS = {"x86_64": "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", "aarch64": "B921B045-1DF0-41C3-AF44-4C6F280D3FAE",
               "ppc64le": "C31C45E6-3F39-412E-80FB-4809C4980599", "s390x": "5EEAD9A9-FE09-4A1E-A1D7-520D00531306"}
_USR_GUIDS = {"x86_64": "8484680C-9521-48C6-9C11-B0720656F69E", "aarch64": "B0E01050-EE5F-4390-949A-9101B17104E9",
              "ppc64le": "15BB03AF-77E7-4D4A-B12B-C0D084F7491C", "s390x": "8A4F5770-50AA-4ED3-874A-99B710DB6FEA"}


def partition_type_id(pt_type: str, role: str, arch: str = "") -> str:
    """The partition type for a role (images' getPartitionTypeIDfor): GPT gives `/` and `/usr`
    the Discoverable Partitions type of the architecture, DOS the generic Linux id."""
    if role in ("root", "usr"):
        if pt_type == "dos":
            return "83"
        table = _ROOT_GUIDS if role == "root" else _USR_GUIDS
        if arch not in table:
            raise PartitioningError(f"no {role} partition type for architecture {arch!r}")
        return table[arch]
    if role not in _PARTITION_TYPE_IDS:
        raise PartitioningError(f"unknown partition type name {role!r}")
    dos, gpt = _PARTITION_TYPE_IDS[role]
    return dos if pt_type == "dos" else gpt


def _labels(pt: PartitionTable, skip_root: bool = False) -> set[str]:
    return {fs.label for fs, _ in pt.filesystems() if not (skip_root and fs.mountpoint == "/") and fs.mountpoint}


def _needs_boot(disk: dict[str, Any]) -> bool:
    """images' needsBoot: `/` on LVM or btrfs without a `/boot`, or no `/` while a volume group or
    btrfs volume is there to receive it."""
    found_volume = False
    for p in disk.get("partitions") or []:
        kind = p.get("type") or "plain"
        if kind == "plain":
            if p.get("mountpoint") in ("/", "/boot"):
                return False
        elif kind == "lvm":
            found_volume = True
            if any(lv.get("mountpoint") == "/" for lv in p.get("logical_volumes") or []):
                return True
        elif kind == "btrfs":
            found_volume = True
            mps = {sv.get("mountpoint") for sv in p.get("subvolumes") or []}
            if "/" in mps:
                return "/boot" not in mps
    return found_volume


def _boot_mode_partitions(pt_type: str, disk: dict[str, Any], bios: str, uefi: bool, arch: str) -> list[Partition]:
    """images' addPartitionsForBootMode: PReP on ppc64le, nothing on s390x, an ESP on UEFI (unless
    the blueprint has its own `/boot/efi`), a BIOS boot partition for legacy x86_64 boot."""
    if not bios and not uefi and arch != "s390x":
        return []
    has_esp = any((p.get("type") or "plain") == "plain" and p.get("mountpoint") == "/boot/efi"
                  for p in disk.get("partitions") or [])
    esp = Partition(size=200 * MiB, type=partition_type_id(pt_type, "esp"), uuid=ESP_PARTITION_UUID,
                    payload=Filesystem(type="vfat", mountpoint="/boot/efi", label="ESP", uuid=ESP_FILESYSTEM_UUID,
                                       fstab_options=ESP_FSTAB, fstab_passno=2))
    bios_boot = Partition(size=MiB, bootable=True, type=partition_type_id(pt_type, "bios"),
                          uuid=BIOS_BOOT_PARTITION_UUID)
    if arch == "ppc64le":
        return [Partition(size=4 * MiB, bootable=True, type=partition_type_id(pt_type, "ppc_prep"))]
    if arch == "s390x":
        return []
    if arch in ("aarch64", "riscv64"):
        return [] if has_esp else [esp]
    out = [bios_boot] if bios else []
    if uefi and not has_esp:
        out.append(esp)
    return out


def _blueprint_payload(entry: dict[str, Any], default_fs_type: str) -> Filesystem | None:
    """A plain partition's or logical volume's payload: `none` is an empty partition, `swap` a swap
    area (no mountpoint), anything else a filesystem (the ESP keeps its fstab options)."""
    fs_type = entry.get("fs_type") or default_fs_type
    if not fs_type:
        raise PartitioningError("no filesystem type given and no default set")
    if fs_type == "none":
        return None
    mountpoint = "" if fs_type == "swap" else str(entry.get("mountpoint") or "")
    options = ESP_FSTAB if mountpoint == "/boot/efi" else "defaults"
    return Filesystem(type=fs_type, mountpoint=mountpoint, label=str(entry.get("label") or ""),
                      fstab_options=options)


def from_blueprint_disk(disk: dict[str, Any], *, bios: str, uefi: bool, default_fs_type: str,
                        arch: str = "x86_64", base_type: str = "gpt") -> PartitionTable:
    """A table laid out as the blueprint's `disk` customization asks, plus what booting needs
    (images' NewCustomPartitionTable with its default policy).

    In order: the boot-mode partitions, a 1 GiB `/boot` when `/` will sit on LVM or btrfs, then
    the blueprint's partitions as given (`plain`, `lvm`, `btrfs`), and last a root filesystem if the
    blueprint has none (a logical volume or subvolume in the first volume that can take it, else a
    partition). Sizes are minimums; the table type is the blueprint's or the image type's.
    """
    ptype = disk.get("type") or base_type or "gpt"
    if ptype not in ("gpt", "dos"):
        raise PartitioningError(f"invalid partition table type: {ptype}")
    check_disk_mountpoints(disk)
    pt = PartitionTable(type=ptype, uuid="", partitions=[])
    pt.partitions += _boot_mode_partitions(ptype, disk, bios, uefi, arch)
    boot_fs = default_fs_type if default_fs_type in ("ext4", "xfs") else "xfs"
    if _needs_boot(disk):
        label = unique_name("boot", _labels(pt))
        pt.partitions.append(Partition(size=DEFAULT_BOOT_PARTITION_SIZE, type=partition_type_id(ptype, "boot"),
                                       payload=Filesystem(type=boot_fs, mountpoint="/boot", label=label)))
    for p in disk.get("partitions") or []:
        kind = p.get("type") or "plain"
        if kind == "plain":
            payload = _blueprint_payload(p, default_fs_type)
            mp = p.get("mountpoint") or ""
            fs_type = p.get("fs_type") or default_fs_type
            role = {"/": "root", "/usr": "usr", "/boot": "boot", "/boot/efi": "esp"}.get(mp)
            if role is None:
                role = "swap" if fs_type == "swap" else "data"
            pt.partitions.append(Partition(size=_bp_size(p), type=p.get("part_type") or partition_type_id(ptype, role, arch),
                                           uuid=str(p.get("part_uuid") or ""), payload=payload))
        elif kind == "lvm":
            taken = {x.payload.name for x in pt.partitions if isinstance(x.payload, VolumeGroup)}
            vg = VolumeGroup(name=p.get("name") or unique_name("vg", taken | {"vg"}),
                             description="created via lvm2 and osbuild")
            for lv in p.get("logical_volumes") or []:
                fs = _blueprint_payload(lv, default_fs_type)
                assert fs is not None
                vg.volumes.append(LogicalVolume(name=lv.get("name") or lv_name(fs.mountpoint or "swap", vg),
                                                size=align_up(_bp_size(lv), LVM_EXTENT), payload=fs))
            pt.partitions.append(Partition(size=_bp_size(p), type=p.get("part_type") or partition_type_id(ptype, "lvm"),
                                           uuid=str(p.get("part_uuid") or ""), payload=vg))
        elif kind == "btrfs":
            vol = BtrfsVolume()
            for sv in p.get("subvolumes") or []:
                vol.add_subvolume(sv["name"], sv["mountpoint"])
            pt.partitions.append(Partition(size=_bp_size(p), type=p.get("part_type") or partition_type_id(ptype, "data"),
                                           uuid=str(p.get("part_uuid") or ""), payload=vol))
        else:
            raise PartitioningError(f"invalid partition type: {kind}")
    _ensure_root(pt, default_fs_type, arch)
    return pt


def _ensure_root(pt: PartitionTable, default_fs_type: str, arch: str) -> None:
    """images' EnsureRootFilesystem: `/` goes into the first volume group (a new logical volume) or
    btrfs volume (a `root` subvolume), else onto a new partition at the end, labelled `root`."""
    if pt.find("/") is not None:
        return
    labels = _labels(pt)
    for part in pt.partitions:
        if isinstance(part.payload, VolumeGroup):
            vg = part.payload
            fs = Filesystem(type=default_fs_type, mountpoint="/", label=unique_name("root", labels))
            vg.volumes.append(LogicalVolume(name=lv_name("/", vg), size=0, payload=fs))
            return
        if isinstance(part.payload, BtrfsVolume):
            vol = part.payload
            vol.add_subvolume(unique_name("root", {s.subvol for s in vol.subvolumes}), "/")
            return
    pt.partitions.append(Partition(size=0, type=partition_type_id(pt.type, "root", arch),
                                   payload=Filesystem(type=default_fs_type, mountpoint="/",
                                                      label=unique_name("root", labels))))


def _bp_size(d: dict[str, Any]) -> int:
    value = d.get("minsize") or d.get("size") or 0
    return parse_size(value) if isinstance(value, str) else int(value)


def laid_out(pt: PartitionTable, image_size: int, required_sizes: dict[str, int] | None,
             rng: GoRand) -> PartitionTable:
    """Lay out a table the blueprint designed itself (no growth beyond its own minimums)."""
    pt.ensure_directory_sizes(DEFAULT_REQUIRED_SIZES if required_sizes is None else required_sizes)
    pt.relayout(image_size)
    pt.generate_uuids(rng)
    return pt
