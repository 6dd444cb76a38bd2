"""Installer and ostree manifests validate against osbuild's schemas (../shared, skipped without).

The golden requests of this area and the simplified installer with FDO root certificates and an
embedded ignition config (inline sources) are generated and checked with the same validator as
the distros area's every-image-type test.
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

import distros
from distros.cases import manifest_for_case
from tests.distros.test_schemas import fake_packages, validate_manifest
from tests.installers.test_golden import CASES

COMMIT = {"Ref": "rhel/9/x86_64/edge", "URL": "http://127.0.0.1:9/repo", "Checksum": "ab" * 32}


@pytest.mark.parametrize("case", CASES)
def test_golden_requests_validate(golden_dir: Path, schema_dir: Path, case: str) -> None:
    with lzma.open(golden_dir / f"{case}.json.xz") as f:
        validate_manifest(manifest_for_case(json.load(f)))


@pytest.mark.parametrize("distro", ["centos-9", "rhel-9.6"])
def test_simplified_installer_with_fdo_and_ignition_validates(schema_dir: Path, distro: str) -> None:
    it = distros.get_distro(distro).image_type("x86_64", "edge-simplified-installer")
    bp = {"customizations": {
        "installation_device": "/dev/nvme0n1",
        "fdo": {"manufacturing_server_url": "http://127.0.0.1:8080", "diun_pub_key_root_certs": "CERT"},
        "ignition": {"embedded": {"config": "eyJpZ25pdGlvbiI6IHt9fQ=="}},
        "user": [{"name": "core", "key": "ssh-ed25519 AAAA core", "groups": ["wheel"]}],
    }}
    options = {"ostree": {"url": COMMIT["URL"]}, "ostree_commits": {"ostree-deployment": [COMMIT]}}
    sets = it.package_sets(bp, options)
    manifest = it.manifest(bp, fake_packages("x86_64", list(sets)), [], options, seed=5)
    validate_manifest(manifest)
    assert len(manifest["sources"]["org.osbuild.inline"]["items"]) == 2
    names = [p["name"] for p in manifest["pipelines"]]
    assert names == ["build", "ostree-deployment", "image", "xz", "coi-tree", "efiboot-tree", "bootiso-tree", "bootiso"]
    deployment = manifest["pipelines"][1]
    users = [s for s in deployment["stages"] if s["type"] == "org.osbuild.users"]
    assert users[0]["options"]["users"]["core"]["key"] == "ssh-ed25519 AAAA core"


OSTREE_BLUEPRINT = {
    "name": "edge-everything",
    "packages": [{"name": "tmux", "version": "*"}],
    "customizations": {
        "hostname": "edge1",
        "user": [{"name": "alice", "password": "$6$salt$hash", "key": "ssh-ed25519 AAAA alice", "groups": ["wheel"]},
                 {"name": "root", "key": "ssh-ed25519 AAAA root"}],
        "group": [{"name": "ops", "gid": 1500}],
        "timezone": {"timezone": "Europe/Prague", "ntpservers": ["ntp.example.com"]},
        "locale": {"languages": ["cs_CZ.UTF-8"], "keyboard": "cz"},
        "services": {"enabled": ["podman.socket"]},
        "directories": [{"path": "/etc/edge", "mode": "0750"}],
        "files": [{"path": "/etc/edge/app.conf", "data": "x=1\n", "mode": "0640"}],
    },
}


@pytest.mark.parametrize("distro,name", [("centos-9", "edge-commit"), ("rhel-9.2", "edge-container"),
                                         ("fedora-38", "iot-commit"), ("centos-9", "edge-installer"),
                                         ("centos-9", "image-installer"), ("fedora-42", "iot-installer")])
def test_ostree_and_installer_types_with_accounts_and_files_validate(schema_dir: Path, distro: str, name: str) -> None:
    it = distros.get_distro(distro).image_type("x86_64", name)
    bp = OSTREE_BLUEPRINT
    if name.endswith("installer"):
        bp = {"customizations": {k: OSTREE_BLUEPRINT["customizations"][k] for k in ("user", "group")}}
    options = {"ostree": {"url": COMMIT["URL"], "ref": COMMIT["Ref"]},
               "ostree_commits": {p: [COMMIT] for p in ("os", "bootiso-tree")}}
    sets = it.package_sets(bp, options)
    manifest = it.manifest(bp, fake_packages("x86_64", list(sets)), [], options, seed=9)
    validate_manifest(manifest)
    stages = [s for p in manifest["pipelines"] for s in p["stages"]]
    types = [s["type"] for s in stages]
    if name.endswith("installer"):
        kickstart = next(s for s in stages if s["type"] == "org.osbuild.kickstart")["options"]
        assert set(kickstart["users"]) == {"alice", "root"} and "ops" in kickstart["groups"]
        # the installed payload gets its accounts from the kickstart only
        assert "org.osbuild.users" not in [s["type"] for p in manifest["pipelines"] if p["name"] == "os"
                                           for s in p["stages"]]
    else:
        users = next(s for s in stages if s["type"] == "org.osbuild.users")["options"]["users"]
        assert "key" not in users["alice"] and "org.osbuild.first-boot" in types
        first_boot = next(s for s in stages if s["type"] == "org.osbuild.first-boot")["options"]["commands"]
        assert first_boot[0] == "mkdir -p /var/home/alice/.ssh" and "mkdir -p /var/roothome/.ssh" in first_boot
        os_types = [s["type"] for p in manifest["pipelines"] if p["name"] == "os" for s in p["stages"]]
        # an edge commit from 9.8 (CentOS Stream 9 too) ends with bootupd's update metadata, which
        # osbuild's schema of org.osbuild.bootupd.gen-metadata (no options) accepts (validated above)
        if distro == "centos-9" and name == "edge-commit":
            assert os_types[-1] == "org.osbuild.bootupd.gen-metadata"
            os_types = os_types[:-1]
        assert os_types[0] == "org.osbuild.ostree.passwd" and os_types[-1] == "org.osbuild.ostree.preptree"
        assert manifest["sources"]["org.osbuild.ostree"]["items"] == {COMMIT["Checksum"]: {"remote": {"url": COMMIT["URL"]}}}
