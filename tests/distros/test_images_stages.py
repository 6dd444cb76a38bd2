"""Stage options of today's image types as osbuild/images writes them (issue 11, classes 2-8, 10).

Each test names the images code (commit 1146ec23cd9c) it was reviewed against. Releases images
no longer defines (Fedora 37-39, CentOS Stream 8) keep osbuild-composer's July-2023 options.
"""

from __future__ import annotations

from typing import Any

import pytest

import distros
from tests.distros.test_schemas import fake_packages

KEY_A = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nA\n-----END PGP PUBLIC KEY BLOCK-----\n"
KEY_B = "-----BEGIN PGP PUBLIC KEY BLOCK-----\nB\n-----END PGP PUBLIC KEY BLOCK-----\n"
# two repositories of one release share a key (BaseOS + AppStream), listed in "wrong" order
TWO_REPOS = [{"name": "baseos", "baseurl": "https://example.com/baseos", "gpgkeys": [KEY_B, KEY_A], "check_gpg": True},
             {"name": "appstream", "baseurl": "https://example.com/appstream", "gpgkeys": [KEY_B], "check_gpg": True}]


def manifest(distro: str, arch: str, image_type: str, bp: dict[str, Any] | None = None,
             repos: list[dict[str, Any]] = TWO_REPOS) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type(arch, image_type)
    return it.manifest(bp or {}, fake_packages(arch, list(it.package_sets(bp or {}))), repos, {}, 0)


def stages_of(m: dict[str, Any], type_: str, pipeline: str = "os") -> list[dict[str, Any]]:
    p = next(p for p in m["pipelines"] if p["name"] == pipeline)
    return [s.get("options") for s in p["stages"] if s["type"] == f"org.osbuild.{type_}"]


@pytest.mark.parametrize("distro", ["centos-9", "rhel-9.2", "rhel-8.10", "rhel-10.0", "fedora-43"])
def test_rpm_gpgkeys_are_deduplicated_and_sorted(distro: str) -> None:
    """images `pkg/osbuild/rpm_stage.go` GPGKeysForPackages: each key once, sorted."""
    m = manifest(distro, "x86_64", "qcow2" if not distro.startswith("fedora") else "generic-qcow2")
    for pipeline in ("build", "os"):
        assert stages_of(m, "rpm", pipeline)[0]["gpgkeys"] == [KEY_A, KEY_B]


def test_july_2023_releases_keep_one_key_per_repository_entry() -> None:
    m = manifest("fedora-38", "x86_64", "qcow2")
    assert stages_of(m, "rpm")[0]["gpgkeys"] == [KEY_B, KEY_A, KEY_B]


@pytest.mark.parametrize("distro,image_type,var", [
    ("rhel-9.6", "ami", "NM_CLOUD_SETUP_EC2"), ("rhel-8.10", "ami", "NM_CLOUD_SETUP_EC2"),
    ("centos-9", "vhd", "NM_CLOUD_SETUP_AZURE"), ("rhel-10.0", "azure-rhui", "NM_CLOUD_SETUP_AZURE"),
    ("rhel-8.10", "azure-rhui", "NM_CLOUD_SETUP_AZURE")])
def test_unit_dropin_environment_is_a_key_value_list(distro: str, image_type: str, var: str) -> None:
    """images' YAML (`service: environment: [{key, value}]`) and `pkg/osbuild/systemd_unit_stage.go`."""
    (unit,) = stages_of(manifest(distro, "x86_64", image_type), "systemd.unit")
    assert unit["config"] == {"Service": {"Environment": [{"key": var, "value": "yes"}]}}


def test_centos_stream_8_keeps_the_environment_string() -> None:
    (unit,) = stages_of(manifest("centos-8", "x86_64", "ami"), "systemd.unit")
    assert unit["config"] == {"Service": {"Environment": "NM_CLOUD_SETUP_EC2=yes"}}


RHEL_CLOUD = [("rhel-9.0", "ami"), ("rhel-9.6", "ami"), ("rhel-10.0", "ami"), ("rhel-9.2", "vhd"), ("rhel-10.1", "vhd"),
              ("rhel-9.4", "gce"), ("rhel-10.0", "gce"), ("rhel-9.0", "ec2"), ("rhel-9.6", "ec2-ha"),
              ("rhel-9.6", "azure-rhui"), ("rhel-10.0", "azure-rhui"), ("rhel-9.6", "gce-rhui"),
              ("rhel-8.10", "ami"), ("rhel-8.4", "vhd"), ("rhel-8.10", "gce")]


@pytest.mark.parametrize("distro,image_type", RHEL_CLOUD)
def test_no_rhsm_stage_where_images_sets_no_rhsm_config(distro: str, image_type: str) -> None:
    """images' rhel-9/rhel-10 YAML has `rhsm_config` only on qcow2; rhel-8's on ec2* before 8.7,
    azure-rhui and gce-rhui (`pkg/distro/generic/images.go` osCustomizations: the no-subscription entry)."""
    assert stages_of(manifest(distro, "x86_64", image_type), "rhsm") == []


@pytest.mark.parametrize("distro,image_type,expected", [
    ("rhel-9.6", "qcow2", {"dnf-plugins": {"product-id": {"enabled": False}, "subscription-manager": {"enabled": False}}}),
    ("rhel-8.6", "ec2", {"subscription-manager": {"rhsm": {"manage_repos": False},
                                                  "rhsmcertd": {"auto_registration": True}}}),
    ("rhel-8.10", "gce-rhui", {"subscription-manager": {"rhsm": {"manage_repos": False},
                                                        "rhsmcertd": {"auto_registration": True}}})])
def test_rhsm_stage_where_images_configures_it(distro: str, image_type: str, expected: dict[str, Any]) -> None:
    assert stages_of(manifest(distro, "x86_64", image_type), "rhsm") == [expected]
