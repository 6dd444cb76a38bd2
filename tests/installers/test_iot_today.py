"""Today's Fedora IoT ostree types: iot-commit, iot-container and iot-bootable-container.

Fedora 40+ follow osbuild/images' definitions (a FIPS-capable initramfs, ignition/FDO presets,
bootupd metadata in commits, the machine-id the tree ships kept); the bootable container wraps the
commit as an OCI image with a bootc install configuration.  Fedora 37-39 keep the July-2023 commit.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

import distros
from distros.definitions import DefinitionError
from tests.distros.test_schemas import fake_packages, validate_manifest

PRESETS = [{"name": "ignition-firstboot-complete.service", "state": "enable"},
           {"name": "coreos-ignition-write-issues.service", "state": "enable"},
           {"name": "fdo-client-linuxapp.service", "state": "enable"}]


def _manifest(release: str, arch: str, name: str, blueprint: dict[str, Any] | None = None) -> dict[str, Any]:
    it = distros.get_distro(release).image_type(arch, name)
    bp = blueprint or {}
    sets = it.package_sets(bp, {})
    return it.manifest(bp, fake_packages(arch, list(sets)), [], {}, seed=3)


def _pipeline(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in manifest["pipelines"] if p["name"] == name)


def _stage_types(pipeline: dict[str, Any]) -> list[str]:
    return [s["type"].removeprefix("org.osbuild.") for s in pipeline["stages"]]


def _options(pipeline: dict[str, Any], type_: str) -> list[Any]:
    return [s.get("options") for s in pipeline["stages"] if s["type"] == f"org.osbuild.{type_}"]


@pytest.mark.parametrize("arch", ["x86_64", "aarch64"])
def test_today_commit_has_fips_dracut_presets_and_bootupd_metadata(arch: str) -> None:
    os_tree = _pipeline(_manifest("fedora-43", arch, "iot-commit"), "os")
    types = _stage_types(os_tree)
    # the initramfs configuration is in the tree before the kernel installs
    assert types[0] == "dracut.conf"
    assert _options(os_tree, "dracut.conf") == [{"filename": "40-fips.conf", "config": {"add_dracutmodules": ["fips"]}}]
    assert _options(os_tree, "systemd.preset") == [{"presets": PRESETS}]
    assert types.index("systemd") < types.index("systemd.preset") < types.index("selinux")
    # the commit keeps the machine-id its packages ship; bootupd's metadata is generated last
    assert "machine-id" not in types
    assert types[-2:] == ["ostree.preptree", "bootupd.gen-metadata"]


def test_today_commit_package_set_and_services_follow_the_release() -> None:
    d42, d43, d44 = (distros.get_distro(f"fedora-{v}") for v in (42, 43, 44))
    chains = {v: d.image_type("x86_64", "iot-commit").package_sets({}, {})["os"][0]
              for v, d in ((42, d42), (43, d43), (44, d44))}
    assert {"basesystem", "ssh-key-dir"} <= set(chains[42]["include"])
    assert "filesystem" in chains[43]["include"] and "basesystem" not in chains[43]["include"]
    assert "ssh-key-dir" in chains[43]["include"] and "ssh-key-dir" not in chains[44]["include"]
    # commits install no weak dependencies; the installer platform's firmware comes along
    assert all(c["install_weak_deps"] is False for c in chains.values())
    assert {"bootupd", "greenboot", "iwlwifi-mvm-firmware", "shim-ia32"} <= set(chains[43]["include"])
    services = {v: _options(_pipeline(_manifest(f"fedora-{v}", "x86_64", "iot-commit"), "os"), "systemd")[0]
                for v in (42, 43)}
    assert services[43]["enabled_services"] == ["NetworkManager.service", "firewalld.service", "sshd.service",
                                                "greenboot-healthcheck", "bootloader-update"]
    assert "greenboot-grub2-set-counter" in services[42]["enabled_services"]


def test_today_commit_build_root_has_the_32_bit_uefi_tools_only() -> None:
    build = distros.get_distro("fedora-43").image_type("x86_64", "iot-commit").package_sets({}, {})["build"]
    names = {n for pset in build for n in pset["include"]}
    assert {"shim-ia32", "grub2-efi-ia32", "grub2-efi-ia32-cdboot", "rpm-ostree"} <= names
    # images' installer platform replaces the BIOS platform's build packages
    assert "grub2-pc" not in names


def test_today_container_has_presets_weak_deps_and_no_bootupd_stage() -> None:
    it = distros.get_distro("fedora-44").image_type("x86_64", "iot-container")
    assert it.package_sets({}, {})["os"][0]["install_weak_deps"] is True
    os_tree = _pipeline(_manifest("fedora-44", "x86_64", "iot-container"), "os")
    types = _stage_types(os_tree)
    assert _options(os_tree, "systemd.preset") == [{"presets": PRESETS}]
    assert types[0] == "dracut.conf" and types[-1] == "ostree.preptree"
    assert "bootupd.gen-metadata" not in types and "machine-id" not in types


def test_july_2023_commit_is_unchanged() -> None:
    types = _stage_types(_pipeline(_manifest("fedora-39", "x86_64", "iot-commit"), "os"))
    assert not {"dracut.conf", "systemd.preset", "bootupd.gen-metadata"} & set(types)
    assert types[-1] == "ostree.preptree"
    assert "iot-bootable-container" not in distros.get_distro("fedora-39").image_types("x86_64")


@pytest.mark.parametrize("arch", ["x86_64", "aarch64", "ppc64le", "s390x"])
def test_bootable_container_encapsulates_the_commit(arch: str) -> None:
    d = distros.get_distro("fedora-43")
    assert "iot-bootable-container" in d.image_types(arch)
    it = d.image_type(arch, "iot-bootable-container")
    assert (it.filename, it.exports) == ("iot-bootable-container.tar", ["ostree-encapsulate"])
    manifest = _manifest("fedora-43", arch, "iot-bootable-container")
    assert [p["name"] for p in manifest["pipelines"]] == ["build", "os", "ostree-commit", "ostree-encapsulate"]
    os_tree = _pipeline(manifest, "os")
    assert _stage_types(os_tree)[-3:] == ["ostree.preptree", "bootupd.gen-metadata", "bootc.install.config"]
    assert _options(os_tree, "bootc.install.config") == [
        {"filename": "20-fedora.toml", "config": {"install": {"filesystem": {"root": {"type": "ext4"}}}}}]
    assert "machine-id" not in _stage_types(os_tree)
    commit = _options(_pipeline(manifest, "ostree-commit"), "ostree.commit")[0]
    assert commit["ref"] == f"fedora/43/{arch}/iot"
    encapsulate = _pipeline(manifest, "ostree-encapsulate")["stages"]
    assert encapsulate == [{"type": "org.osbuild.ostree.encapsulate",
                            "inputs": {"commit": {"type": "org.osbuild.ostree", "origin": "org.osbuild.pipeline",
                                                  "references": ["name:ostree-commit"]}},
                            "options": {"filename": "iot-bootable-container.tar"}}]
    sets = it.package_sets({}, {})
    assert sets["os"][0]["install_weak_deps"] is False
    assert {"bootc", "bootupd", "rpm-ostree", "kernel"} <= set(sets["os"][0]["include"])
    build = {n for pset in sets["build"] for n in pset["include"]}
    assert {"rpm-ostree", "python3-pyyaml", "python3-tomli-w"} <= build


def test_bootable_container_validates(schema_dir: Path) -> None:
    for arch in ("x86_64", "s390x"):
        bp = {"customizations": {"user": [{"name": "core", "key": "ssh-ed25519 AAAA core", "groups": ["wheel"]}]}}
        validate_manifest(_manifest("fedora-44", arch, "iot-bootable-container", bp))


def test_bootc_install_config_needs_an_ostree_tree() -> None:
    # a copy: the release's definitions are shared
    it = copy.deepcopy(distros.get_distro("fedora-43").image_type("x86_64", "iot-bootable-container"))
    it.data["pipelines"] = [dict(s, ostree=False) if s["name"] == "os" else s for s in it.pipelines]
    with pytest.raises(DefinitionError, match="bootc_install_config needs an ostree tree"):
        it.manifest({}, fake_packages("x86_64", ["build", "os"]), [], {}, seed=1)
