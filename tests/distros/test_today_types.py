"""Today's image types (Fedora 40+): names, aliases and the facts taken from osbuild/images'
2026 definitions, checked on expectations written by hand here (not read from ../shared).

The alias machinery itself is tested on small hand-made definitions first.
"""

from __future__ import annotations

from typing import Any

import pytest

import distros
from distros.definitions import DefinitionError
from distros.partition import LUKSContainer, PartitionTable, VolumeGroup
from tests.distros.test_engine import DISTROS_YAML
from tests.distros.test_schemas import REPOS, fake_packages, options_for

MiB = 1024**2
GiB = 1024**3

RENAMED_YAML = """
image_types:
  tarball:
    aliases: [archive-tar]
    filename: root.tar
    arches: [x86_64]
    pipelines:
      - {name: build, kind: build}
      - {name: os, kind: os}
      - {name: archive, kind: tar}
    exports: [archive]
    package_sets:
      os: [{include: [bash]}]
    conditions:
      - when: {version_ge: "2"}
        merge: {name: generic-tar, aliases: [tarball, archive-tar]}
  newer-only:
    filename: x.tar
    arches: [x86_64]
    pipelines:
      - {name: build, kind: build}
      - {name: os, kind: os}
      - {name: archive, kind: tar}
    exports: [archive]
    package_sets:
      os: [{include: [bash]}]
    conditions:
      - when: {version_lt: "2"}
        merge: {disabled: true}
"""


@pytest.fixture(scope="module")
def renamed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, distros.Distro]:
    d = tmp_path_factory.mktemp("defs-renamed")
    (d / "distros.yaml").write_text(DISTROS_YAML)
    (d / "toy.yaml").write_text(RENAMED_YAML)
    return distros.load(d)


def test_a_condition_renames_a_type_and_keeps_the_old_name_as_alias(renamed: dict[str, distros.Distro]) -> None:
    old, new = renamed["toy-1"], renamed["toy-2"]
    assert old.image_types("x86_64") == ["tarball"]
    assert old.image_type("x86_64", "archive-tar").name == "tarball"
    # aliases are accepted but never listed (compose/types lists canonical names, as osbuild/images)
    assert new.image_types("x86_64") == ["generic-tar", "newer-only"]
    assert new.aliases("x86_64") == {"tarball": "generic-tar", "archive-tar": "generic-tar"}
    for name in ("generic-tar", "tarball", "archive-tar"):
        it = new.image_type("x86_64", name)
        assert (it.name, it.filename) == ("generic-tar", "root.tar")
    with pytest.raises(distros.UnknownImageType):
        new.image_type("x86_64", "generic")
    with pytest.raises(distros.UnknownImageType):
        old.image_type("x86_64", "generic-tar")
    with pytest.raises(distros.UnknownImageType):
        old.image_type("x86_64", "newer-only")


@pytest.mark.parametrize("bad, message", [
    ("  other:\n    aliases: [tarball]\n", "alias 'tarball' names both"),
    ("  other:\n    name: generic-tar\n", "defined twice"),
])
def test_ambiguous_names_are_definition_errors(tmp_path, bad: str, message: str) -> None:
    body = bad + "    filename: o.tar\n    arches: [x86_64]\n    pipelines: []\n    exports: []\n"
    (tmp_path / "distros.yaml").write_text(DISTROS_YAML)
    (tmp_path / "toy.yaml").write_text(RENAMED_YAML + body)
    d = distros.load(tmp_path)["toy-2"]
    with pytest.raises(DefinitionError, match=message):
        d.image_type("x86_64", "tarball")


# --- the real definitions ------------------------------------------------------------------

FEDORA_TODAY_X86_64 = [
    "cloud-azure", "cloud-ec2", "cloud-gce", "cloud-qcow2", "generic-ami", "kinoite-qcow2", "kinoite-raw-xz",
    "silverblue-qcow2", "silverblue-raw-xz", "generic-container", "generic-oci", "generic-openstack", "generic-ova", "generic-qcow2",
    "everything-network-installer", "generic-vagrant-libvirt", "generic-vagrant-virtualbox", "generic-vhd",
    "generic-vmdk", "generic-wsl",
    "iot-bootable-container", "iot-commit", "iot-container", "iot-installer", "iot-qcow2", "iot-raw-xz",
    "iot-simplified-installer",
    "minimal-installer",
    "minimal-raw-xz", "minimal-raw-zst", "pxe-tar-xz", "server-network-installer", "server-qcow2",
    "workstation-live-installer"]

ALIASES = {
    "qcow2": "generic-qcow2", "guest-image": "generic-qcow2", "ami": "generic-ami", "aws": "generic-ami",
    "oci": "generic-oci", "openstack": "generic-openstack", "vhd": "generic-vhd", "azure": "generic-vhd",
    "vmdk": "generic-vmdk", "vsphere": "generic-vmdk", "ova": "generic-ova", "vsphere-ova": "generic-ova",
    "wsl": "generic-wsl", "container": "generic-container", "minimal-raw": "minimal-raw-xz",
    "image-installer": "minimal-installer", "live-installer": "workstation-live-installer",
    "iot-raw-image": "iot-raw-xz", "iot-qcow2-image": "iot-qcow2",
}


@pytest.mark.parametrize("release", ["fedora-40", "fedora-42", "fedora-43", "fedora-44"])
def test_fedora_today_names_and_aliases(release: str) -> None:
    d = distros.get_distro(release)
    # the Atomic desktop installers exist in images' definitions of Fedora 43 and later
    atomic = ["budgie-atomic-installer", "cosmic-atomic-installer", "kinoite-installer", "silverblue-installer",
              "sway-atomic-installer"]
    assert d.image_types("x86_64") == sorted(FEDORA_TODAY_X86_64 + (atomic if release >= "fedora-43" else []))
    for alias, name in ALIASES.items():
        assert d.image_type("x86_64", alias).name == name, alias
    assert "generic-vagrant-virtualbox" not in d.image_types("aarch64")
    assert {"server-qcow2", "generic-qcow2"} <= set(d.image_types("s390x"))


@pytest.mark.parametrize("release", ["fedora-37", "fedora-38", "fedora-39"])
def test_july_2023_releases_keep_their_names(release: str) -> None:
    d = distros.get_distro(release)
    names = d.image_types("x86_64")
    assert {"qcow2", "ami", "vhd", "minimal-raw", "iot-raw-image"} <= set(names)
    assert not {"generic-qcow2", "server-qcow2", "iot-qcow2", "minimal-raw-zst"} & set(names)
    assert d.image_type("x86_64", "generic-qcow2").name == "qcow2"


def os_chain(it: Any) -> tuple[set[str], set[str]]:
    chain = it.package_sets({}, options_for(it))["os"]
    return ({p for s in chain for p in s["include"]}, {p for s in chain for p in s["exclude"]})


def manifest(it: Any, blueprint: dict[str, Any] | None = None) -> dict[str, Any]:
    sets = it.package_sets(blueprint or {}, options_for(it))
    return it.manifest(blueprint or {}, fake_packages(it.arch, list(sets)), REPOS, options_for(it), seed=3)


def stage(m: dict[str, Any], pipeline: str, kind: str) -> dict[str, Any]:
    for p in m["pipelines"]:
        if p["name"] == pipeline:
            for s in p["stages"]:
                if s["type"] == f"org.osbuild.{kind}":
                    return s["options"]
    raise AssertionError(f"no {kind} stage in {pipeline}")


def layout(table: PartitionTable) -> list[tuple[Any, ...]]:
    """(size MiB, type, what is on it) per partition: the facts we took from the definitions."""
    out: list[tuple[Any, ...]] = []
    for p in table.partitions:
        pl = p.payload
        if isinstance(pl, VolumeGroup):
            what: Any = (pl.name, [(lv.name, lv.payload.type, lv.payload.mountpoint, lv.size // MiB)
                                   for lv in pl.volumes])
        elif isinstance(pl, LUKSContainer):
            what = "luks"
        elif pl is None:
            what = None
        else:
            what = (pl.type, pl.mountpoint)
        out.append((p.size // MiB, p.type.upper(), what))
    return out


ESP = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"
XBOOTLDR = "BC13C2FF-59E6-4262-A352-B275FD6F7172"
BIOS_BOOT = "21686148-6449-6E6F-744E-656564454649"
LINUX = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"


def test_server_qcow2() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "server-qcow2")
    assert (it.filename, it.default_size, it.exports) == ("disk.qcow2", 10 * GiB, ["qcow2"])
    include, exclude = os_chain(it)
    assert {"@server-product-environment", "@domain-client", "@guest-agents", "glibc-all-langpacks",
            "initial-setup", "lvm2", "xfsprogs", "kernel"} <= include
    # images installs the blueprint's kernel and names kernel-core the default kernel only in
    # /etc/sysconfig/kernel
    assert "kernel-core" not in include
    assert stage(manifest(it), "os", "sysconfig") == {"kernel": {"update_default": True, "default_kernel": "kernel-core"}}
    assert {"initial-setup-gui", "plymouth", "*-firmware", "smartmontools"} <= exclude
    assert layout(it.base_partition_table()) == [
        # the volume group partition as defined (the layout fits it to its volume plus 1 MiB of LVM
        # metadata in whole 4 MiB extents)
        (2, BIOS_BOOT, None), (500, ESP, ("vfat", "/boot/efi")), (2048, XBOOTLDR, ("xfs", "/boot")),
        (3 * 1024, "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709", ("systemVG", [("LVroot", "xfs", "/", 3072)]))]
    s390x = distros.get_distro("fedora-43").image_type("s390x", "server-qcow2").base_partition_table()
    assert s390x.type == "dos" and [p.type for p in s390x.partitions] == ["83", "8e"]
    m = manifest(it)
    assert stage(m, "os", "kernel-cmdline")["kernel_opts"] == "no_timer-check console=tty1 console=ttyS0,115200n8"
    assert stage(m, "os", "systemd")["enabled_services"] == ["initial-setup.service"]
    assert "lvm2.create" in {s["type"].removeprefix("org.osbuild.") for p in m["pipelines"] for s in p["stages"]}


@pytest.mark.parametrize("release, first_unit", [("fedora-42", "cloud-init.service"),
                                                 ("fedora-43", "cloud-init-network.service")])
def test_generic_qcow2(release: str, first_unit: str) -> None:
    it = distros.get_distro(release).image_type("x86_64", "qcow2")
    assert (it.name, it.default_size) == ("generic-qcow2", 5 * GiB)
    include, exclude = os_chain(it)
    assert {"@Fedora Cloud Server", "chrony", "langpacks-en", "qemu-guest-agent", "cloud-init"} <= include
    assert {"dracut-config-rescue", "firewalld", "plymouth"} <= exclude
    m = manifest(it)
    assert stage(m, "os", "systemd")["enabled_services"][0] == first_unit
    assert stage(m, "os", "kernel-cmdline")["kernel_opts"].endswith(
        "console=tty1 console=ttyS0,115200n8 earlyprintk=ttyS0 systemd.firstboot=off")
    assert stage(m, "os", "locale")["language"] == "C.UTF-8"


def test_generic_vhd_and_ami() -> None:
    vhd = distros.get_distro("fedora-43").image_type("x86_64", "azure")
    assert (vhd.name, vhd.filename, vhd.exports) == ("generic-vhd", "disk.vhd", ["vpc"])
    assert "WALinuxAgent" in os_chain(vhd)[0]
    m = manifest(vhd)
    assert stage(m, "os", "systemd")["enabled_services"][-1] == "waagent"
    assert stage(m, "os", "sshd.config")["config"] == {"ClientAliveInterval": 120}
    ami = distros.get_distro("fedora-43").image_type("aarch64", "aws")
    assert (ami.name, ami.filename, ami.exports) == ("generic-ami", "image.raw", ["image"])
    assert {"cloud-init", "qemu-guest-agent"} <= os_chain(ami)[0]


def test_generic_vagrant() -> None:
    d = distros.get_distro("fedora-44")
    it = d.image_type("aarch64", "generic-vagrant-libvirt")
    assert [p["name"] for p in it.pipelines] == ["build", "os", "image", "qcow2", "vagrant", "archive"]
    m = manifest(it)
    assert stage(m, "vagrant", "vagrant")["provider"] == "libvirt"
    assert "vagrant" in stage(m, "os", "users")["users"]
    vbox = d.image_type("x86_64", "generic-vagrant-virtualbox")
    assert stage(manifest(vbox), "vagrant", "vagrant")["provider"] == "virtualbox"


@pytest.mark.parametrize("release, kernel_opt, weak_deps, firewalld", [
    ("fedora-42", "ro", True, True), ("fedora-43", "rw", False, False)])
def test_minimal_raw(release: str, kernel_opt: str, weak_deps: bool, firewalld: bool) -> None:
    d = distros.get_distro(release)
    it = d.image_type("x86_64", "minimal-raw")
    assert (it.name, it.filename, it.exports) == ("minimal-raw-xz", "disk.raw.xz", ["xz"])
    include, exclude = os_chain(it)
    assert {"@core", "fwupd-efi", "initial-setup", "NetworkManager-wifi", "linux-firmware"} <= include
    assert ("firewalld" in exclude) is not firewalld
    assert "grub2-pc" not in include                                   # UEFI only
    assert layout(it.base_partition_table()) == [
        (200, ESP, ("vfat", "/boot/efi")), (2048, XBOOTLDR, ("ext4", "/boot")), (2048, LINUX, ("ext4", "/"))]
    m = manifest(it)
    assert stage(m, "os", "kernel-cmdline")["kernel_opts"].split()[-1] == kernel_opt
    assert ("firewalld.service" in stage(m, "os", "systemd")["enabled_services"]) is firewalld
    assert any(s["include"] and s["install_weak_deps"] is weak_deps
               for s in it.package_sets({})["os"] if "@core" in s["include"])
    arm = d.image_type("aarch64", "minimal-raw-xz").base_partition_table()
    assert (arm.type, arm.start_offset) == ("dos", 16 * MiB)
    assert [(p.type, p.bootable) for p in arm.partitions] == [("06", True), ("83", False), ("83", False)]
    assert {"arm-image-installer", "uboot-images-armv8"} <= os_chain(d.image_type("aarch64", "minimal-raw-xz"))[0]


def test_minimal_raw_zst() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "minimal-raw-zst")
    assert (it.filename, it.exports) == ("disk.raw.zst", ["zstd"])
    m = manifest(it)
    assert stage(m, "zstd", "zstd") == {"filename": "disk.raw.zst"}
    assert "zstd" in it.package_sets({})["build"][0]["include"]


@pytest.mark.parametrize("arch, compat", [("x86_64", ""), ("aarch64", "1.1")])
def test_iot_qcow2(arch: str, compat: str) -> None:
    it = distros.get_distro("fedora-43").image_type(arch, "iot-qcow2-image")
    assert (it.name, it.filename, it.default_size) == ("iot-qcow2", "image.qcow2", 10 * GiB)
    m = manifest(it)
    assert stage(m, "qcow2", "qemu")["format"] == {"type": "qcow2", "compat": compat}
    opts = stage(m, "ostree-deployment", "grub2")["kernel_opts"].split()
    assert opts[-4:] == ["rw", "coreos.no_persist_ip", "ignition.platform.id=qemu", "$ignition_firstboot"]


def test_iot_raw_xz_table() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "iot-raw-image")
    assert (it.name, it.default_size) == ("iot-raw-xz", 6 * GiB)
    table = it.base_partition_table()
    assert table.start_offset == 8 * MiB
    assert layout(table) == [(501, ESP, ("vfat", "/boot/efi")), (2048, LINUX, ("ext4", "/boot")),
                             (2569, LINUX, ("ext4", "/"))]
    assert table.partitions[2].payload.fstab_options == "defaults,ro"
    m = manifest(it)
    # images' relayout puts the offset behind the GPT header: 8 MiB + 16.5 KiB, up to whole MiB
    assert stage(m, "image", "sfdisk")["partitions"][0]["start"] == 9 * MiB // 512
    assert "ignition.platform.id=metal" in stage(m, "ostree-deployment", "grub2")["kernel_opts"]


def test_generic_container() -> None:
    it = distros.get_distro("fedora-43").image_type("s390x", "container")
    include, exclude = os_chain(it)
    assert it.name == "generic-container"
    assert {"yum", "dnf", "fedora-release-container"} <= include and "dnf-yum" not in include
    assert {"libss", "nano", "sudo-python-plugin", "systemd", "kernel"} <= exclude


# --- EL 10 and CentOS Stream as today's definitions have them --------------------------------

@pytest.mark.parametrize("release", ["centos-10", "rhel-10.0", "rhel-10.2"])
def test_el10_types_and_aliases(release: str) -> None:
    d = distros.get_distro(release)
    names = set(d.image_types("x86_64"))
    # gone from today's EL 10 definitions
    assert not {"minimal-raw", "openstack", "gce-rhui", "edge-commit"} & names
    assert {"qcow2", "ami", "gce", "vmdk", "ova", "wsl", "vagrant-libvirt", "image-installer"} <= names
    expected = {"guest-image": "qcow2", "aws": "ami", "gcp": "gce", "vsphere-ova": "ova", "vshpere": "vmdk"}
    for alias, name in expected.items():
        assert d.image_type("x86_64", alias).name == name
    assert ("container-minimal" in names) is release.startswith("centos")


def test_container_minimal() -> None:
    it = distros.get_distro("centos-9").image_type("s390x", "container-minimal")
    assert (it.filename, it.exports) == ("container-minimal.tar", ["container"])
    include, exclude = os_chain(it)
    assert include == {"bash", "coreutils-single", "redhat-release", "rpm", "microdnf"}
    # images' rhel-9 container-minimal excludes less than its rhel-10 one
    assert "coreutils" in exclude and not {"shadow-utils", "tzdata", "libxcrypt"} & exclude
    assert {"shadow-utils", "tzdata", "libxcrypt", "coreutils"} <= os_chain(
        distros.get_distro("centos-10").image_type("s390x", "container-minimal"))[1]
    assert stage(manifest(it), "container", "oci-archive")["filename"] == "container-minimal.tar"


def test_every_el9_release_has_vagrant_boxes_and_ec2() -> None:
    """images' rhel-9 defines vagrant-libvirt/-virtualbox for every release and ec2 for CentOS too."""
    for name in ("centos-9", "rhel-9.0", "rhel-9.4", "rhel-9.6", "centos-10"):
        types = distros.get_distro(name).image_types("x86_64")
        assert {"vagrant-libvirt", "vagrant-virtualbox", "ec2"} <= set(types), name


def test_vagrant_sudoers_mode_is_images_decimal_440() -> None:
    """images writes `mode: 440` (decimal) for the vagrant sudoers file: octal 0670 in its manifests."""
    m = manifest(distros.get_distro("rhel-9.0").image_type("x86_64", "vagrant-libvirt"))
    assert stage(m, "os", "chmod") == {"items": {"/etc/sudoers.d/vagrant": {"mode": "0670"}}}


def test_el8_wsl_and_minimal_raw_on_rhel_only() -> None:
    """images' rhel-8 WSL and minimal raw types; CentOS Stream 8 keeps osbuild-composer 2023's list."""
    for name in ("rhel-8.4", "rhel-8.10"):
        types = distros.get_distro(name).image_types("aarch64")
        assert {"wsl", "minimal-raw"} <= set(types), name
    assert not {"wsl", "minimal-raw"} & set(distros.get_distro("centos-8").image_types("x86_64"))
    wsl = manifest(distros.get_distro("rhel-8.10").image_type("x86_64", "wsl"))
    assert stage(wsl, "os", "wsl.conf") == {"boot": {"systemd": True}}
    assert all(s["type"] != "org.osbuild.selinux" for s in wsl["pipelines"][1]["stages"])
    raw = manifest(distros.get_distro("rhel-8.10").image_type("x86_64", "minimal-raw"))
    assert "legacy" not in stage(raw, "os", "grub2")


def test_fedora_today_first_boot_and_root_account() -> None:
    d = distros.get_distro("fedora-43")
    server = manifest(d.image_type("x86_64", "server-qcow2"))
    assert stage(server, "os", "users") == {"users": {"root": {"password": "!locked"}}}
    assert stage(server, "os", "machine-id") == {"first-boot": "yes"}
    generic = manifest(d.image_type("x86_64", "generic-qcow2"))
    assert stage(generic, "os", "machine-id") == {"first-boot": "yes"}
    assert all(s["type"] != "org.osbuild.users" for p in generic["pipelines"] for s in p["stages"])
    minimal = manifest(d.image_type("x86_64", "minimal-raw-xz"))
    assert all(s["type"] != "org.osbuild.machine-id" for p in minimal["pipelines"] for s in p["stages"])
    # the 2023 releases have neither
    old = manifest(distros.get_distro("fedora-39").image_type("x86_64", "qcow2"))
    assert not {"org.osbuild.machine-id", "org.osbuild.users"} & {s["type"] for p in old["pipelines"]
                                                                   for s in p["stages"]}


# --- Fedora Cloud: btrfs subvolumes ---------------------------------------------------------

ROOT_X86 = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
# images' Fedora definitions write the discoverable root types in lower case
ROOT_X86_FEDORA = ROOT_X86.lower()


def subvolumes(table: PartitionTable) -> list[tuple[str, str, str]]:
    return [(fs.subvol, fs.mountpoint, fs.fstab_options) for fs, _ in table.filesystems() if fs.subvol]


@pytest.mark.parametrize("release, boot_subvolume", [("fedora-43", False), ("fedora-44", True)])
def test_cloud_qcow2_btrfs_layout(release: str, boot_subvolume: bool) -> None:
    it = distros.get_distro(release).image_type("x86_64", "cloud-qcow2")
    table = it.base_partition_table()
    expected = [("root", "/", "subvol=root"), ("home", "/home", "subvol=home"), ("var", "/var", "subvol=var")]
    if boot_subvolume:
        expected.insert(1, ("boot", "/boot", "subvol=boot"))
        assert [p.size // MiB for p in table.partitions[:2]] == [2, 100]
        assert len(table.partitions) == 3
    else:
        assert [(p.size // MiB, p.type) for p in table.partitions[:3]] == [(2, BIOS_BOOT), (100, ESP), (2048, XBOOTLDR)]
    assert subvolumes(table) == expected
    assert table.partitions[-1].type == ROOT_X86_FEDORA
    include, exclude = os_chain(it)
    assert {"@cloud-server-environment", "btrfs-progs", "qemu-guest-agent", "kernel"} <= include
    assert {"firewalld", "fwupd", "*-firmware"} <= exclude

    m = manifest(it)
    volume = stage(m, "image", "mkfs.btrfs")["uuid"]
    assert stage(m, "image", "btrfs.subvol")["subvolumes"] == [{"name": "/" + s[0]} for s in expected]
    fstab = {e["path"]: e for e in stage(m, "os", "fstab")["filesystems"]}
    assert {e["uuid"] for p, e in fstab.items() if p != "/boot/efi" and e["vfs_type"] == "btrfs"} == {volume}
    cmdline = stage(m, "os", "kernel-cmdline")
    assert cmdline["root_fs_uuid"] == volume
    assert cmdline["kernel_opts"] == ("rootflags=subvol=root no_timer-check console=tty1 console=ttyS0,115200n8 "
                                      "systemd.firstboot=off")
    copy = next(s for p in m["pipelines"] if p["name"] == "image" for s in p["stages"]
                if s["type"] == "org.osbuild.copy")
    btrfs_mounts = [mnt for mnt in copy["mounts"] if mnt["type"] == "org.osbuild.btrfs"]
    assert {mnt["source"] for mnt in btrfs_mounts} == {"btrfs-" + volume[:4]}      # one device, shared
    assert sorted(mnt["options"]["subvol"] for mnt in btrfs_mounts) == sorted(s[0] for s in expected)
    inst = stage(m, "image", "grub2.inst")
    assert inst["core"]["filesystem"] == ("btrfs" if boot_subvolume else "ext4")
    assert inst["prefix"]["path"] == ("/boot/grub2" if boot_subvolume else "/grub2")


def test_blueprint_mountpoint_on_btrfs_is_a_compressed_subvolume() -> None:
    it = distros.get_distro("fedora-43").image_type("aarch64", "cloud-qcow2")
    bp = {"customizations": {"filesystem": [{"mountpoint": "/srv", "minsize": 3 * GiB}]}}
    m = manifest(it, bp)
    fstab = {e["path"]: e["options"] for e in stage(m, "os", "fstab")["filesystems"]}
    assert fstab["/srv"] == "subvol=srv,compress=zstd:1"
    assert {"name": "/srv"} in stage(m, "image", "btrfs.subvol")["subvolumes"]


@pytest.mark.parametrize("name, filename, export, extra", [
    ("cloud-ec2", "image.raw.xz", "xz", {"amazon-ec2-utils", "awscli2", "ec2-instance-connect"}),
    ("cloud-azure", "disk.vhd", "vpc", {"WALinuxAgent", "azure-vm-utils", "hyperv-daemons"}),
    ("cloud-gce", "image.tar.gz", "archive", {"google-guest-agent", "google-compute-engine-oslogin"}),
])
def test_cloud_types(name: str, filename: str, export: str, extra: set[str]) -> None:
    d = distros.get_distro("fedora-43")
    assert name in d.image_types("aarch64") and name not in d.image_types("s390x")
    it = d.image_type("x86_64", name)
    assert (it.filename, it.exports) == (filename, [export])
    include, exclude = os_chain(it)
    assert extra | {"@cloud-server-environment"} <= include
    assert ("cloud-init" in exclude) is (name == "cloud-gce")
    services = [s for p in manifest(it)["pipelines"] for s in p["stages"] if s["type"] == "org.osbuild.systemd"]
    assert bool(services) is (name != "cloud-gce")


@pytest.mark.parametrize("release, arch", [("fedora-43", "x86_64"), ("centos-10", "aarch64"), ("rhel-9.6", "x86_64")])
def test_pxe_tar_xz(release: str, arch: str) -> None:
    it = distros.get_distro(release).image_type(arch, "pxe-tar-xz")
    assert (it.filename, it.exports) == ("pxe.tar.xz", ["xz"])
    assert {"dracut-live", "dracut-network", "gawk"} <= os_chain(it)[0]
    m = manifest(it, {"customizations": {"kernel": {"append": "console=ttyS0"}}})
    assert [p["name"] for p in m["pipelines"]] == ["build", "os", "pxe-tree", "tar", "xz"]
    os_stages = [s["type"] for p in m["pipelines"] if p["name"] == "os" for s in p["stages"]]
    # the live modules must be configured before the kernel's initramfs is built
    assert os_stages[:2] == ["org.osbuild.dracut.conf", "org.osbuild.rpm"]
    assert stage(m, "os", "dracut.conf")["config"]["add_dracutmodules"] == ["qemu", "qemu-net", "livenet",
                                                                             "dmsquash-live"]
    copied = [p["to"] for p in stage(m, "pxe-tree", "copy")["paths"]]
    assert copied == ["tree:///vmlinuz", "tree:///initrd.img", "tree:///EFI"]
    squashfs = stage(m, "pxe-tree", "squashfs")
    assert squashfs["filename"] == "rootfs.img" and "boot/efi/.*" in squashfs["exclude_paths"]
    assert set(stage(m, "pxe-tree", "chmod")["items"]) == {"/EFI", "/vmlinuz", "/initrd.img", "/rootfs.img",
                                                           "/grub.cfg", "/README"}
    assert stage(m, "tar", "tar")["filename"] == "image.tar" and stage(m, "xz", "xz")["filename"] == "pxe.tar.xz"


def test_pxe_grub_menu_carries_the_kernel_options() -> None:
    import base64

    it = distros.get_distro("fedora-43").image_type("x86_64", "pxe-tar-xz")
    m = manifest(it, {"customizations": {"kernel": {"append": "console=ttyS0"}}})
    texts = [base64.b64decode(item["data"]).decode() for item in m["sources"]["org.osbuild.inline"]["items"].values()]
    menu = next(t for t in texts if "menuentry" in t)
    assert "root=live:http://HTTP-SERVER/rootfs.img rd.live.image console=ttyS0" in menu


def test_today_containers_use_oci_architecture_names_and_run_config() -> None:
    fedora = stage(manifest(distros.get_distro("fedora-43").image_type("x86_64", "container")),
                   "container", "oci-archive")
    assert fedora["architecture"] == "amd64"
    assert fedora["config"]["Cmd"] == ["/bin/bash"] and fedora["config"]["WorkingDir"] == "/"
    assert fedora["config"]["Labels"]["org.opencontainers.image.name"] == "fedora"
    cs10 = stage(manifest(distros.get_distro("centos-10").image_type("aarch64", "container")), "container", "oci-archive")
    assert cs10["architecture"] == "arm64"
    old = stage(manifest(distros.get_distro("fedora-38").image_type("x86_64", "container")), "container", "oci-archive")
    assert old["config"] == {}


@pytest.mark.parametrize("name", ["minimal-raw-xz", "minimal-raw-zst"])
def test_minimal_raw_mount_units_from_fedora_43(name: str) -> None:
    old = manifest(distros.get_distro("fedora-42").image_type("aarch64", name))
    assert stage(old, "os", "fstab")["filesystems"]
    m = manifest(distros.get_distro("fedora-43").image_type("aarch64", name))
    os_types = [s["type"] for p in m["pipelines"] if p["name"] == "os" for s in p["stages"]]
    assert "org.osbuild.fstab" not in os_types
    units = {s["options"]["filename"]: s["options"] for p in m["pipelines"] if p["name"] == "os"
             for s in p["stages"] if s["type"] == "org.osbuild.systemd.unit.create"}
    assert sorted(units) == ["-.mount", "boot-efi.mount", "boot.mount"]
    root = units["-.mount"]
    assert root["unit-path"] == "etc" and root["config"]["Install"] == {"WantedBy": ["multi-user.target"]}
    assert root["config"]["Mount"]["Where"] == "/" and root["config"]["Mount"]["Type"] == "ext4"
    assert root["config"]["Mount"]["What"].startswith("/dev/disk/by-uuid/")
    esp = units["boot-efi.mount"]["config"]["Mount"]
    volid = esp["What"].split("/")[-1]
    assert esp["Type"] == "vfat" and volid == volid.upper() and len(volid) == 9     # FAT ids keep their case
    systemd_stages = [s["options"] for p in m["pipelines"] if p["name"] == "os" for s in p["stages"]
                      if s["type"] == "org.osbuild.systemd"]
    assert systemd_stages[0] == {"enabled_services": ["-.mount", "boot-efi.mount", "boot.mount"]}
    assert stage(m, "os", "kernel-cmdline")["kernel_opts"].split()[-1] == "rw"


def test_iot_simplified_installer() -> None:
    d = distros.get_distro("fedora-43")
    assert "iot-simplified-installer" not in distros.get_distro("fedora-39").image_types("x86_64")
    it = d.image_type("x86_64", "iot-simplified-installer")
    assert (it.filename, it.exports) == ("simplified-installer.iso", ["bootiso"])
    table = it.base_partition_table()
    assert layout(table)[:2] == [(501, ESP, ("vfat", "/boot/efi")), (2048, XBOOTLDR, ("ext4", "/boot"))]
    luks = table.partitions[2].payload
    assert isinstance(luks, LUKSContainer) and luks.clevis == {"pin": "null", "policy": "{}", "remove_passphrase": True}
    vg = luks.payload
    assert isinstance(vg, VolumeGroup) and [(lv.name, lv.size // GiB, lv.payload.type, lv.payload.fstab_options)
                                            for lv in vg.volumes] == [("rootlv", 8, "ext4", "defaults,ro")]
    bp = {"customizations": {"installation_device": "/dev/vda"}}
    chain = it.package_sets(bp, options_for(it))["coi-tree"]
    assert {"coreos-installer", "coreos-installer-dracut", "fdo-init", "clevis-luks", "shim-x64"} <= {
        p for s in chain for p in s["include"]}
    m = manifest(it, bp)
    assert stage(m, "bootiso", "xorrisofs")["volid"] == "Fedora-43-IoT-x86_64"
    assert "ignition.platform.id=metal" in stage(m, "ostree-deployment", "grub2")["kernel_opts"]


@pytest.mark.parametrize("release, bootc, nss_out", [("centos-10", True, False), ("rhel-10.1", True, False),
                                                    ("rhel-9.6", False, True), ("centos-9", False, True)])
def test_el_qcow2_package_set_today(release: str, bootc: bool, nss_out: bool) -> None:
    include, exclude = os_chain(distros.get_distro(release).image_type("x86_64", "guest-image"))
    assert ("system-reinstall-bootc" in include) is bootc
    assert ("nss" in exclude) is nss_out
    assert {"@core", "cloud-init", "qemu-guest-agent", "cockpit-ws"} <= include
    assert {"firewalld", "plymouth", "langpacks-*"} <= exclude


@pytest.mark.parametrize("release", ["fedora-40", "fedora-43"])
def test_generic_default_table_today(release: str) -> None:
    table = distros.get_distro(release).image_type("x86_64", "qcow2").base_partition_table()
    assert layout(table) == [(1, BIOS_BOOT, None), (200, ESP, ("vfat", "/boot/efi")), (2048, LINUX, ("ext4", "/boot")),
                             (2048, LINUX, ("ext4", "/"))]
    assert table.partitions[1].payload.label == "ESP"


@pytest.mark.parametrize("release, name, label", [
    ("fedora-43", "netinst", "Fedora-43-Everything-x86_64"),
    # images' server-network-installer is its everything one with fedora-release-server
    ("fedora-44", "server-network-installer", "Fedora-44-Everything-x86_64"),
    ("centos-10", "network-installer", "CentOS-Stream-10-BaseOS-x86_64"),
])
def test_network_installers(release: str, name: str, label: str) -> None:
    it = distros.get_distro(release).image_type("x86_64", name)
    assert (it.filename, it.exports) == ("netinst.iso", ["bootiso"])
    assert [p["name"] for p in it.pipelines] == ["build", "anaconda-tree", "rootfs-image", "efiboot-tree",
                                                 "bootiso-tree", "bootiso"]
    chain = it.package_sets({})["anaconda-tree"]
    include = {p for s in chain for p in s["include"]}
    assert {"anaconda", "anaconda-install-img-deps", "kernel", "dracut-network"} <= include
    assert ("fedora-release-server" in include) is (name == "server-network-installer")
    m = manifest(it)
    # no payload and, without customizations, no kickstart: anaconda asks
    tree = [s["type"] for p in m["pipelines"] if p["name"] == "bootiso-tree" for s in p["stages"]]
    assert "org.osbuild.tar" not in tree and "org.osbuild.kickstart" not in tree
    # today's ISOs boot BIOS machines with grub2 (images' Grub2X86Boot) and squash the installer
    # tree directly (no rootfs-image pipeline); Fedora's network installers use erofs
    assert stage(m, "bootiso-tree", "grub2.iso.legacy")["kernel"]["opts"] == [f"inst.stage2=hd:LABEL={label}"]
    assert "rootfs-image" not in [p["name"] for p in m["pipelines"]]
    assert ("org.osbuild.erofs" in tree) is release.startswith("fedora")
    assert stage(m, "bootiso", "xorrisofs")["volid"] == label


def test_fedora_network_installer_kickstart_only_for_accounts() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "everything-network-installer")
    m = manifest(it, {"customizations": {"user": [{"name": "alice", "password": "$6$x"}]}})
    assert stage(m, "bootiso-tree", "kickstart") == {"path": "/osbuild.ks", "users": {"alice": {"password": "$6$x"}}}
    assert stage(m, "bootiso-tree", "grub2.iso.legacy")["kernel"]["opts"][-1] == (
        "inst.ks=hd:LABEL=Fedora-43-Everything-x86_64:/osbuild.ks")
    el = distros.get_distro("rhel-10.0").image_type("x86_64", "network-installer")
    with pytest.raises(ValueError, match="allowed: Locale, FIPS"):
        el.check({"customizations": {"user": [{"name": "alice"}]}})


def test_minimal_installer_installs_the_minimal_raw_set() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "image-installer")
    assert it.name == "minimal-installer"
    sets = it.package_sets({})
    assert {"@core", "fwupd-efi", "initial-setup", "NetworkManager-wifi"} <= {p for s in sets["os"] for p in s["include"]}
    # images' minimal-installer asks its Fedora installer set (no anaconda-webui; webui comes by the
    # kernel options) plus the installer platform's firmware
    anaconda_tree = {p for s in sets["anaconda-tree"] for p in s["include"]}
    assert {"metacity", "xrdb", "linux-firmware", "shim-ia32"} <= anaconda_tree
    assert "anaconda-webui" not in anaconda_tree
    assert stage(manifest(it), "bootiso", "xorrisofs")["volid"] == "Fedora-43-Unknown-x86_64"
    old = distros.get_distro("fedora-39").image_type("x86_64", "image-installer")
    assert "fwupd-efi" not in {p for s in old.package_sets({})["os"] for p in s["include"]}


def test_workstation_live_installer_label() -> None:
    it = distros.get_distro("fedora-44").image_type("aarch64", "live-installer")
    assert it.name == "workstation-live-installer"
    assert stage(manifest(it), "bootiso", "xorrisofs")["volid"] == "Fedora-44-Workstation-aarch64"


def test_iot_installer_label() -> None:
    it = distros.get_distro("fedora-43").image_type("x86_64", "fedora-iot-installer")
    assert stage(manifest(it), "bootiso", "xorrisofs")["volid"] == "Fedora-43-IoT-x86_64"


def uki_packages(it: Any, uki_direct: str) -> dict[str, list[dict[str, Any]]]:
    pkgs = fake_packages(it.arch, list(it.package_sets({})))
    for n, (name, version) in enumerate([("shim-x64", "15.8"), ("uki-direct", uki_direct),
                                         ("kernel-uki-virt", "6.12.0")]):
        pkgs["os"].append(dict(pkgs["os"][0], name=name, version=version, release="3.el10",
                               checksum=f"sha256:{n + 1:064x}"))
    return pkgs


@pytest.mark.parametrize("name", ["ec2-cvm", "azure-cvm"])
def test_confidential_vm_types_boot_a_uki(name: str) -> None:
    import base64

    assert name not in distros.get_distro("rhel-9.5").image_types("x86_64")
    assert name not in distros.get_distro("centos-10").image_types("x86_64")
    it = distros.get_distro("rhel-10.1").image_type("x86_64", name)
    assert it.default_size == 32 * GiB
    assert layout(it.base_partition_table()) == [(512, ESP, ("vfat", "/boot/efi")),
                                                 (5120, ROOT_X86, ("ext4", "/"))]
    include, exclude = os_chain(it)
    assert {"kernel-uki-virt", "uki-direct", "shim-x64", "python3-dnf-plugin-versionlock"} <= include
    # the hmac stage runs from the build root (images' OS.getBuildPackages), not in the tree
    assert "libkcapi-hmaccalc" not in include
    assert "libkcapi-hmaccalc" in {n for s in it.package_sets({})["build"] for n in s["include"]}
    assert {"grub2-tools", "grubby"} <= exclude and "kernel" not in include
    m = it.manifest({}, uki_packages(it, "24.11"), REPOS, seed=5)
    types = [s["type"] for p in m["pipelines"] for s in p["stages"]]
    assert not {"org.osbuild.grub2", "org.osbuild.grub2.inst", "org.osbuild.kernel-cmdline", "org.osbuild.fix-bls"} & set(types)
    assert stage(m, "os", "rpm")["kernel_install_env"] == {"boot_root": "/boot/efi"}
    assert stage(m, "os", "dnf4.versionlock") == {"add": ["shim-x64-0:15.8-3.el10"]}
    uki = "/boot/efi/EFI/Linux/ffffffffffffffffffffffffffffffff-6.12.0-3.el10.x86_64.efi"
    assert stage(m, "os", "hmac") == {"paths": [uki], "algorithm": "sha512"}     # uki-direct older than 25.3
    csv = [base64.b64decode(i["data"]) for i in m["sources"]["org.osbuild.inline"]["items"].values()]
    assert ("shimx64.efi,redhat,\\EFI\\Linux\\ffffffffffffffffffffffffffffffff-6.12.0-3.el10.x86_64.efi ,"
            "UKI bootentry\n").encode("utf-16-le") in csv
    newer = it.manifest({}, uki_packages(it, "25.3"), REPOS, seed=5)
    assert "org.osbuild.hmac" not in {s["type"] for p in newer["pipelines"] for s in p["stages"]}


@pytest.mark.parametrize("release, rhel", [("rhel-10.0", True), ("centos-10", False)])
def test_el10_wsl(release: str, rhel: bool) -> None:
    it = distros.get_distro(release).image_type("aarch64", "wsl")
    assert (it.filename, it.exports) == ("image.wsl", ["xz"])
    include, exclude = os_chain(it)
    assert {"openssh-server", "systemd", "sudo", "dnf"} <= include
    assert ("wsl-setup" in include) is not rhel and ("subscription-manager" in include) is rhel
    assert "redhat-release-eula" in exclude
    m = manifest(it)
    assert stage(m, "os", "systemd")["enabled_services"] == ["sshd.service"]
    types = {s["type"] for p in m["pipelines"] for s in p["stages"]}
    assert ("org.osbuild.wsl.conf" in types) is rhel
    if rhel:
        assert stage(m, "os", "wsl.conf") == {"boot": {"systemd": True}}
        assert stage(m, "os", "wsl-distribution.conf")["oobe"] == {"default_uid": 1000,
                                                                   "default_name": "RedHatEnterpriseLinux-10.0"}
    assert stage(m, "xz", "xz")["filename"] == "image.wsl"
    # EL 9 has the same image in images' rhel-9 definitions (tests/distros/test_images_stages.py)
    assert distros.get_distro("rhel-9.6").image_type("x86_64", "wsl").filename == "image.wsl"


def test_fedora_41_wsl_boots_systemd_through_wsl_conf() -> None:
    m = manifest(distros.get_distro("fedora-41").image_type("x86_64", "wsl"))
    assert stage(m, "os", "wsl.conf") == {"boot": {"systemd": True}}
    m43 = manifest(distros.get_distro("fedora-43").image_type("x86_64", "wsl"))
    assert "org.osbuild.wsl.conf" not in {s["type"] for p in m43["pipelines"] for s in p["stages"]}


@pytest.mark.parametrize("name, hana", [("azure-sap-rhui", True), ("azure-sapapps-rhui", False)])
def test_azure_sap_rhui(name: str, hana: bool) -> None:
    assert name not in distros.get_distro("centos-10").image_types("x86_64")
    assert name not in distros.get_distro("rhel-10.0").image_types("aarch64")
    it = distros.get_distro("rhel-10.0").image_type("x86_64", name)
    include, exclude = os_chain(it)
    assert {"@Server", "uuidd", "libnsl", "WALinuxAgent"} <= include and "gtk2" not in include
    assert ("tuned-profiles-sap-hana" in include) is hana and ("rhel-system-roles-sap" in include) is hana
    assert "gtk2" in os_chain(distros.get_distro("rhel-9.6").image_type("x86_64", name))[0]
    m = manifest(it)
    assert stage(m, "os", "selinux.config") == {"state": "permissive"}
    assert stage(m, "os", "sysctld")["filename"] == "sap.conf"
    types = {s["type"] for p in m["pipelines"] for s in p["stages"]}
    assert ("org.osbuild.tuned" in types) is hana


@pytest.mark.parametrize("name, ref, export", [("kinoite-qcow2", "kinoite", "qcow2"),
                                               ("silverblue-raw-xz", "silverblue", "xz")])
def test_atomic_desktop_disks(name: str, ref: str, export: str) -> None:
    it = distros.get_distro("fedora-43").image_type("aarch64", name)
    assert it.exports == [export] and it.default_size == 10 * GiB
    sources = it.ostree_sources({}, {"ostree": {"url": "http://127.0.0.1:9/repo"}})
    assert sources["ostree-deployment"][0].ref == f"fedora/43/aarch64/{ref}"
    m = manifest(it)
    deploy = stage(m, "ostree-deployment", "ostree.deploy")
    assert deploy["osname"] == "fedora" and deploy["remote"] == "fedora"
    assert deploy["kernel_opts"][-2:] == ["ignition.platform.id=qemu", "$ignition_firstboot"]
    # images configures no remote on Atomic desktop disks (their types do not use the request's URL)
    assert "org.osbuild.ostree.remotes" not in [s["type"] for p in m["pipelines"] for s in p["stages"]]
