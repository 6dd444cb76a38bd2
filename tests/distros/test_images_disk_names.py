"""Device, mount, volume-group and logical-volume names of disk images (issue 11, class 1).

Reviewed against osbuild/images 1146ec23cd9c: `pkg/osbuild/device.go` (deviceName, getDevices,
pathEscape, genOsbuildMount, GenMountsDevicesFromPT: names are the systemd-escaped mountpoint, the
VG's own name, mounts sorted by target), `pkg/osbuild/copy_stage.go` (copy to `mount://-/`),
`pkg/disk/lvm.go` (lvname, genLVName) and `pkg/disk/disk.go` (genUniqueString: `base`, then
`base00`, `base01`, ...), `pkg/disk/partition_table.go` addLVMPartition (unnamed VGs `vg00`, ...).
Releases images no longer defines keep osbuild-composer's July-2023 names.
"""

from __future__ import annotations

from typing import Any

import pytest

import distros
from distros.stages import path_escape
from tests.distros.test_schemas import REPOS, fake_packages

ROOT_HOME = {"customizations": {"filesystem": [{"mountpoint": "/root", "minsize": "1 GiB"},
                                               {"mountpoint": "/var/log", "minsize": "1 GiB"}]}}


def manifest(distro: str, arch: str, image_type: str, bp: dict[str, Any]) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type(arch, image_type)
    return it.manifest(bp, fake_packages(arch, list(it.package_sets(bp))), REPOS, {}, 0)


def copy_stage(m: dict[str, Any]) -> dict[str, Any]:
    image = next(p for p in m["pipelines"] if p["name"] == "image")
    return next(s for s in image["stages"] if s["type"] == "org.osbuild.copy")


@pytest.mark.parametrize("path,name", [("/", "-"), ("", "-"), ("/boot/efi", "boot-efi"), ("/var/log", "var-log"),
                                       ("/root", "root"), ("/srv/my-data", "srv-my\\x2ddata"),
                                       ("/a\\b", "a\\x5cb")])
def test_path_escape_is_systemd_escape_path(path: str, name: str) -> None:
    assert path_escape(path) == name


@pytest.mark.parametrize("distro,arch", [("centos-9", "x86_64"), ("rhel-9.6", "aarch64"), ("rhel-10.0", "x86_64"),
                                         ("rhel-8.10", "x86_64")])
def test_root_home_gets_its_own_volume_and_mount(distro: str, arch: str) -> None:
    """/root used to share the device and mount name `root` with `/`, so the /root volume was
    mounted as the root filesystem; images names them `-` and `root`."""
    m = manifest(distro, arch, "qcow2", ROOT_HOME)
    copy = copy_stage(m)
    assert copy["options"]["paths"] == [{"from": "input://root-tree/", "to": "mount://-/"}]
    mounts = {mt["target"]: mt for mt in copy["mounts"]}
    assert mounts["/"]["name"] == mounts["/"]["source"] == "-"
    assert mounts["/root"]["name"] == mounts["/root"]["source"] == "root"
    assert mounts["/var/log"]["source"] == "var-log"
    assert [mt["target"] for mt in copy["mounts"]] == sorted(mounts)
    devices = copy["devices"]
    assert devices["-"] == {"type": "org.osbuild.lvm2.lv", "parent": "rootvg", "options": {"volume": "rootlv"}}
    assert devices["root"] == {"type": "org.osbuild.lvm2.lv", "parent": "rootvg", "options": {"volume": "rootlv00"}}
    assert devices["var-log"]["options"] == {"volume": "var_loglv"}
    assert devices["rootvg"]["type"] == "org.osbuild.loopback"
    image = next(p for p in m["pipelines"] if p["name"] == "image")
    create = next(s for s in image["stages"] if s["type"] == "org.osbuild.lvm2.create")
    assert [v["name"] for v in create["options"]["volumes"]] == ["rootlv", "rootlv00", "var_loglv"]


def test_july_2023_releases_keep_their_names_without_the_clash() -> None:
    """Fedora 38 keeps osbuild-composer's names (`root`, `rootvgvg`); a /root next to / is
    numbered instead of taking the root filesystem's name."""
    copy = copy_stage(manifest("fedora-38", "x86_64", "qcow2", ROOT_HOME))
    assert copy["options"]["paths"] == [{"from": "input://root-tree/", "to": "mount://root/"}]
    mounts = {mt["target"]: mt["source"] for mt in copy["mounts"]}
    assert mounts == {"/": "root", "/boot": "boot", "/boot/efi": "boot.efi", "/root": "root00", "/var/log": "var.log"}
    assert copy["devices"]["root"]["options"] == {"volume": "rootlv"}
    assert copy["devices"]["root00"]["options"] == {"volume": "rootlv00"}
    assert copy["devices"]["root"]["parent"] == "rootvgvg"


def test_unnamed_disk_customization_groups_are_numbered_from_00() -> None:
    bp = {"customizations": {"disk": {"partitions": [
        {"type": "lvm", "minsize": "2 GiB", "logical_volumes": [{"mountpoint": "/", "minsize": "2 GiB"}]},
        {"type": "lvm", "minsize": "1 GiB", "logical_volumes": [{"mountpoint": "/data", "minsize": "1 GiB"}]},
        {"type": "lvm", "name": "named", "minsize": "1 GiB",
         "logical_volumes": [{"mountpoint": "/srv", "minsize": "1 GiB"}]}]}}}
    copy = copy_stage(manifest("centos-9", "x86_64", "qcow2", bp))
    devices = copy["devices"]
    assert devices["-"]["parent"] == "vg00" and devices["data"]["parent"] == "vg01"
    assert devices["srv"]["parent"] == "named"
    assert {devices[n]["type"] for n in ("vg00", "vg01", "named")} == {"org.osbuild.loopback"}
