"""RHEL 7.9 as osbuild/images' rhel-7 defines it, checked on expectations written by hand here:
grub2 without BLS (legacy menu entries), GPT written by sgdisk, authconfig and a forced relabel."""

from __future__ import annotations

from typing import Any

import distros
from tests.distros.test_schemas import REPOS, fake_packages, options_for


def manifest(name: str, packages: dict[str, list[dict[str, Any]]] | None = None) -> dict[str, Any]:
    it = distros.get_distro("rhel-7.9").image_type("x86_64", name)
    sets = it.package_sets({}, options_for(it))
    return it.manifest({}, packages or fake_packages("x86_64", list(sets)), REPOS, options_for(it), seed=3)


def stages(m: dict[str, Any], pipeline: str) -> list[dict[str, Any]]:
    return next(p["stages"] for p in m["pipelines"] if p["name"] == pipeline)


def options(m: dict[str, Any], pipeline: str, kind: str) -> dict[str, Any]:
    return next(s["options"] for s in stages(m, pipeline) if s["type"] == f"org.osbuild.{kind}")


def test_rhel7_offers_images_types_on_x86_64_only() -> None:
    d = distros.get_distro("rhel-7.9")
    assert d.arches() == ["x86_64"]
    assert sorted(d.image_types("x86_64")) == ["azure-rhui", "ec2", "qcow2"]


def test_legacy_grub_menu_entry_names_product_and_kernel() -> None:
    m = manifest("qcow2")
    types = [s["type"] for s in stages(m, "os")]
    assert "org.osbuild.grub2" not in types and "org.osbuild.fix-bls" not in types
    assert "org.osbuild.kernel-cmdline" not in types      # options live in grub.cfg only
    grub = options(m, "os", "grub2.legacy")
    assert list(grub) == ["rootfs", "entries", "bios", "uefi", "bootfs", "config"]
    assert grub["entries"] == [{"default": True, "id": "76a22bf4-f153-4541-b6c7-0332c0dfaeac",
                                "kernel": "6.1.0-1.test.x86_64",
                                "product": {"name": "Red Hat Enterprise Linux", "version": "7.9", "nick": "Maipo"}}]
    assert grub["bios"] == {"platform": "i386-pc"} and grub["uefi"] == {"vendor": "redhat"}
    assert grub["config"]["cmdline"].startswith("console=tty0 ")
    assert list(grub["config"]) == ["distributor", "cmdline"]


def test_rescue_entry_when_dracut_config_rescue_is_installed() -> None:
    it = distros.get_distro("rhel-7.9").image_type("x86_64", "qcow2")
    packages = fake_packages("x86_64", list(it.package_sets({}, options_for(it))))
    packages["os"].append(dict(packages["os"][2], name="dracut-config-rescue"))
    entries = options(manifest("qcow2", packages), "os", "grub2.legacy")["entries"]
    assert [e["kernel"] for e in entries] == ["6.1.0-1.test.x86_64", "0-rescue-" + "f" * 32]


def test_azure_grub_config_keeps_images_field_order() -> None:
    config = options(manifest("azure-rhui"), "os", "grub2.legacy")["config"]
    assert list(config) == ["distributor", "terminal_input", "terminal_output", "timeout", "serial", "cmdline"]


def test_sgdisk_partitions_the_disk_and_gdisk_joins_the_build_root() -> None:
    m = manifest("ec2")
    image = [s["type"] for s in stages(m, "image")]
    assert "org.osbuild.sgdisk" in image and "org.osbuild.sfdisk" not in image
    sg = options(m, "image", "sgdisk")
    assert sg["uuid"] == "d209c89e-ea5e-4fbd-b161-b461cce297e0"
    assert [p["size"] for p in sg["partitions"]] == [2048, 20967391]   # BIOS boot, root to the end
    assert all(p["uuid"] == p["uuid"].lower() for p in sg["partitions"])
    it = distros.get_distro("rhel-7.9").image_type("x86_64", "ec2")
    assert "gdisk" in it.package_sets({}, options_for(it))["build"][0]["include"]


def test_authconfig_with_defaults_and_forced_relabel() -> None:
    m = manifest("azure-rhui")
    assert options(m, "os", "authconfig") == {}
    assert options(m, "os", "selinux")["force_autorelabel"] is True
    assert options(m, "vpc", "qemu")["format"] == {"type": "vpc", "force_size": False}
    assert options(m, "os", "rhsm")["yum-plugins"] == {"subscription-manager": {"enabled": False}}
