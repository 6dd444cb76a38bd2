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
