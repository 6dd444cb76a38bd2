"""Fedora ELN 11 (`eln-11`): the EL image types as osbuild/images' eln.yaml and eln-11/ define
them, checked on facts written by hand here from those definitions (not read from ../shared)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

import distros
from tests.distros.test_today_types import manifest, os_chain, stage

REPO_FILE = Path(__file__).resolve().parents[2] / "repositories" / "eln-11.json"

# images' scoreboard types for ELN (x86_64)
ELN_TYPES = {"ami", "azure", "container", "container-minimal", "ec2", "gce", "image-installer",
             "network-installer", "oci", "ova", "pxe-tar-xz", "qcow2", "tar", "vagrant-libvirt",
             "vagrant-virtualbox", "vhd", "vmdk", "wsl"}


def test_release_facts_and_repositories() -> None:
    d = distros.get_distro("eln-11")
    assert (d.definition.family, d.definition.version, d.product) == ("eln", "11", "Fedora ELN")
    assert (d.runner, d.module_platform_id, d.vendor) == ("org.osbuild.rhel11", "platform:eln11", "fedora")
    assert "eln-11" in distros.list_distros()
    repos = json.loads(REPO_FILE.read_text())
    assert set(repos) == {"x86_64", "aarch64", "ppc64le", "s390x"}
    for arch, entries in repos.items():
        assert [r["name"] for r in entries] == ["baseos", "appstream"]
        assert all(f"repo=eln-{r['name']}-1&arch={arch}" in r["metalink"] and r["check_gpg"] for r in entries)


def test_types_offered() -> None:
    names = set(distros.get_distro("eln-11").image_types("x86_64"))
    assert ELN_TYPES <= names
    # RHEL-only variants stay RHEL-only
    assert not {"ec2-ha", "ec2-sap", "azure-rhui", "ec2-cvm", "azure-cvm"} & names


def test_dnf5_plugins_and_todays_firmware_split() -> None:
    d = distros.get_distro("eln-11")
    for name in ("qcow2", "ami", "vhd", "container"):
        include, exclude = os_chain(d.image_type("x86_64", name))
        assert "dnf5-plugins" in include and not {"dnf-utils", "yum-utils", "python3-dnf-plugins-core"} & include
        assert "redhat-release-eula" not in include
        assert not any(p.startswith("iwl1") for p in exclude)
    _, exclude = os_chain(d.image_type("x86_64", "qcow2"))
    assert {"iwlegacy-firmware", "iwlwifi-dvm-firmware", "iwlwifi-mvm-firmware"} <= exclude
    # the container keeps SASL/LDAP and libevent in, unlike EL 10's
    _, exclude = os_chain(d.image_type("x86_64", "container"))
    assert not {"cyrus-sasl-lib", "libevent", "openldap"} & exclude


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_wsl_without_sshd_or_wsl_conf(arch: str) -> None:
    it = distros.get_distro("eln-11").image_type(arch, "wsl")
    m = manifest(it)
    types = [s["type"] for p in m["pipelines"] if p["name"] == "os" for s in p["stages"]]
    assert "org.osbuild.wsl.conf" not in types and "org.osbuild.systemd" not in types
    assert stage(m, "os", "cloud-init")["filename"] == "99_wsl.cfg"


def test_ami_services_and_build_root() -> None:
    it = distros.get_distro("eln-11").image_type("x86_64", "ami")
    m = manifest(it)
    services = stage(m, "os", "systemd")["enabled_services"]
    assert "cloud-init-network" in services and "cloud-init" not in services
    assert stage(m, "os", "locale")["language"] == "C.UTF-8"
    assert stage(m, "os", "dracut.conf")["filename"] == "ec2.conf"
