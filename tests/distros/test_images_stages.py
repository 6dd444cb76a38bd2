"""Stage options of today's image types as osbuild/images writes them (issue 11, classes 2-8, 10).

Each test names the images code (commit 1146ec23cd9c) it was reviewed against. Releases images
no longer defines (Fedora 37-39, CentOS Stream 8) keep osbuild-composer's July-2023 options.
"""

from __future__ import annotations

from pathlib import Path
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


def kernel_opts(m: dict[str, Any]) -> str:
    (cmdline,) = stages_of(m, "kernel-cmdline")
    return cmdline["kernel_opts"]


@pytest.mark.parametrize("distro,arch,expected", [
    # images compares CentOS Stream as the newest minor (9.999): the 9.8+ options
    ("centos-9", "x86_64", "ro console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"),
    ("centos-9", "aarch64", "ro console=ttyAMA0"),
    ("rhel-9.4", "x86_64", "ro loglevel=3 console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"),
    ("rhel-9.6", "x86_64", "ro loglevel=3 console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300 "
                           "nvme_core.io_timeout=240"),
    ("rhel-9.7", "x86_64", "ro console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300 nvme_core.io_timeout=240"),
    ("rhel-9.8", "x86_64", "ro console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"),
    ("rhel-9.2", "aarch64", "ro loglevel=3 console=ttyAMA0"),
    ("rhel-9.6", "aarch64", "ro loglevel=3 console=ttyAMA0 nvme_core.io_timeout=240"),
    ("rhel-9.8", "aarch64", "ro console=ttyAMA0"),
    ("centos-10", "x86_64", "ro console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"),
    ("rhel-10.1", "x86_64", "ro nvme_core.io_timeout=240 console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"),
    ("rhel-10.2", "aarch64", "ro console=ttyAMA0"),
    ("rhel-10.0", "aarch64", "ro loglevel=3 nvme_core.io_timeout=240 console=ttyAMA0")])
def test_azure_kernel_options_per_version(distro: str, arch: str, expected: str) -> None:
    """images rhel-9/rhel-10 `azure_image_config_base` conditions (loglevel=3 kept below 9.6 and on 10.0)."""
    assert kernel_opts(manifest(distro, arch, "vhd")) == expected


AZURE_GRUB2 = {"default": "saved", "disable_recovery": True, "disable_submenu": True,
               "distributor": "$(sed 's, release .*$,,g' /etc/system-release)"}
SERIAL = "serial --speed=115200 --unit=0 --word=8 --parity=no --stop=1"


@pytest.mark.parametrize("distro,image_type", [("centos-9", "vhd"), ("rhel-9.6", "azure-rhui"),
                                               ("rhel-10.0", "azure-sap-rhui"), ("centos-10", "vhd")])
def test_azure_grub2_config(distro: str, image_type: str) -> None:
    """images `azure_common_grub2_config` + the per-arch terminal (`pkg/osbuild/grub2_stage.go` GRUB2Config order)."""
    (grub2,) = stages_of(manifest(distro, "x86_64", image_type), "grub2")
    assert list(grub2["config"].items()) == list({
        **AZURE_GRUB2, "terminal": ["serial"], "terminal_input": ["serial"], "terminal_output": ["serial"],
        "timeout": 10, "timeout_style": "countdown", "serial": SERIAL}.items())
    if image_type != "azure-sap-rhui":
        (grub2,) = stages_of(manifest(distro, "aarch64", image_type), "grub2")
        assert grub2["config"] == {**AZURE_GRUB2, "terminal": ["console"], "timeout": 10,
                                   "timeout_style": "countdown", "serial": SERIAL}


FIVE = ["amdgpu", "intel_cstate", "floppy", "nouveau", "skx_edac"]


@pytest.mark.parametrize("distro,modules,today,udev,refclock", [
    ("centos-9", FIVE, False, False, True),
    ("rhel-9.4", FIVE, False, True, False),
    ("rhel-9.6", FIVE + ["intel_uncore", "acpi_cpufreq"], True, False, True),
    ("centos-10", FIVE + ["intel_uncore", "acpi_cpufreq"], True, False, True)])
def test_azure_modprobe_udev_and_network_manager(distro: str, modules: list[str], today: bool, udev: bool,
                                                 refclock: bool) -> None:
    """images rhel-9 "rhel-9.6+ adds the dataloss warning" (RHEL only), "sriov udev rules ... 9.6+"
    and "chrony is added in rhel-9.6+" (CentOS Stream 9 compares as 9.999), rhel-10's base."""
    m = manifest(distro, "x86_64", "vhd")
    assert [c["modulename"] for st in stages_of(m, "modprobe") for c in st["commands"]
            if c["modulename"] != "lbm-nouveau"] == modules
    # WALinuxAgent ships the SR-IOV rule from 9.6; NetworkManager leaves the Mellanox VFs alone
    assert bool(stages_of(m, "udev.rules")) is udev
    assert stages_of(m, "nm.conf") == ([{"path": "/etc/NetworkManager/conf.d/99-azure-unmanaged-devices.conf",
                                          "settings": {"keyfile": {"unmanaged-devices": ["driver:mlx4_core",
                                                                                         "driver:mlx5_core"]}}}]
                                        if today else [])
    clock = {"refclocks": [{"driver": {"name": "PHC", "path": "/dev/ptp_hyperv"}, "poll": 3, "dpoll": -2, "offset": 0}]}
    assert stages_of(m, "chrony") == ([clock] if refclock else [])


@pytest.mark.parametrize("distro,arch,image_type,expected", [
    ("rhel-9.2", "x86_64", "ami", "console=tty0 console=ttyS0,115200n8 net.ifnames=0 nvme_core.io_timeout=4294967295"),
    ("centos-9", "x86_64", "ami", "console=tty0 console=ttyS0,115200n8 net.ifnames=0 nvme_core.io_timeout=4294967295"),
    ("rhel-9.6", "x86_64", "ec2", "console=tty0 console=ttyS0,115200n8 net.ifnames=0 nvme_core.io_timeout=4294967295"),
    ("rhel-9.6", "aarch64", "ec2", "console=ttyS0,115200n8 console=tty0 net.ifnames=0 nvme_core.io_timeout=4294967295"),
    ("rhel-9.6", "x86_64", "ec2-sap", "console=ttyS0,115200n8 console=tty0 net.ifnames=0 "
                                      "nvme_core.io_timeout=4294967295 processor.max_cstate=1 intel_idle.max_cstate=1"),
    ("rhel-10.0", "x86_64", "ami", "console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295"),
    ("rhel-10.0", "aarch64", "ec2", "console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295"),
    ("rhel-10.1", "x86_64", "ec2-sap", "console=tty0 console=ttyS0,115200n8 nvme_core.io_timeout=4294967295 "
                                       "processor.max_cstate=1 intel_idle.max_cstate=1"),
    ("rhel-8.10", "x86_64", "ami", "console=tty0 console=ttyS0,115200n8 net.ifnames=0 rd.blacklist=nouveau "
                                   "nvme_core.io_timeout=4294967295 crashkernel=auto"),
    ("rhel-8.6", "aarch64", "ec2", "console=tty0 console=ttyS0,115200n8 net.ifnames=0 rd.blacklist=nouveau "
                                   "nvme_core.io_timeout=4294967295 iommu.strict=0 crashkernel=auto"),
    # CentOS Stream 8 is no longer defined by images: osbuild-composer's July-2023 order
    ("centos-8", "x86_64", "ami", "console=ttyS0,115200n8 console=tty0 net.ifnames=0 rd.blacklist=nouveau "
                                  "nvme_core.io_timeout=4294967295 crashkernel=auto")])
def test_ec2_kernel_options(distro: str, arch: str, image_type: str, expected: str) -> None:
    """images rhel-9 `ec2_image_config` ("x86_64/aarch64 specific kopts"), rhel-10 `ami_image_config`,
    rhel-8 `ami_image_config` and the ec2-sap overrides (amiSapKernelOptions)."""
    m = manifest(distro, arch, image_type)
    cmdline = stages_of(m, "kernel-cmdline")
    assert (cmdline[0]["kernel_opts"] if cmdline else stages_of(m, "grub2")[0]["kernel_opts"]) == expected


@pytest.mark.parametrize("distro", ["rhel-9.0", "rhel-9.6", "rhel-10.0"])
def test_rhel_wsl_boots_systemd(distro: str) -> None:
    """images rhel-9/rhel-10 `wsl` ("wsl config for rhel"): an xz'd image.wsl with wsl.conf and
    wsl-distribution.conf, sshd enabled, no SELinux labelling."""
    it = distros.get_distro(distro).image_type("x86_64", "wsl")
    assert (it.filename, it.exports) == ("image.wsl", ["xz"])
    m = manifest(distro, "x86_64", "wsl")
    assert stages_of(m, "wsl.conf") == [{"boot": {"systemd": True}}]
    (dist,) = stages_of(m, "wsl-distribution.conf")
    assert dist["oobe"] == {"default_uid": 1000, "default_name": f"RedHatEnterpriseLinux-{distro[5:]}"}
    assert stages_of(m, "systemd") == [{"enabled_services": ["sshd.service"]}]
    assert stages_of(m, "selinux") == []


def test_centos_wsl_has_no_rhel_configuration() -> None:
    m = manifest("centos-9", "x86_64", "wsl")
    assert stages_of(m, "wsl.conf") == [] and stages_of(m, "cloud-init") == []
    assert stages_of(m, "locale") == [{"language": "en_US.UTF-8"}]


GRUB_BOOT_SUCCESS = {"unit": "grub-boot-success.timer", "dropin": "10-disable-if-greenboot.conf",
                     "config": {"Unit": {"ConditionPathExists": "!/usr/libexec/greenboot/greenboot"}},
                     "unit-type": "global"}


@pytest.mark.parametrize("distro,arch", [("rhel-9.0", "x86_64"), ("rhel-9.6", "aarch64"), ("centos-9", "x86_64")])
def test_minimal_raw_disables_grub_boot_success_under_greenboot(distro: str, arch: str) -> None:
    """images rhel-9 `minimal-raw` image_config systemd_dropin (also edge_commit_image_config)."""
    assert stages_of(manifest(distro, arch, "minimal-raw"), "systemd.unit") == [GRUB_BOOT_SUCCESS]


@pytest.mark.parametrize("distro,image_type", [("rhel-9.6", "oci"), ("rhel-9.6", "vagrant-libvirt"),
                                               ("rhel-10.0", "vagrant-virtualbox"), ("rhel-10.2", "oci")])
def test_qcow2_derived_types_keep_qcow2s_rhsm_settings(distro: str, image_type: str) -> None:
    """images: oci and vagrant-* take `qcow2_image_config` ("tweak the rhsm config on rhel")."""
    assert stages_of(manifest(distro, "x86_64", image_type), "rhsm") == [
        {"dnf-plugins": {"product-id": {"enabled": False}, "subscription-manager": {"enabled": False}}}]


@pytest.mark.parametrize("image_type", ["ami", "ec2", "ec2-sap"])
def test_el10_ec2_blacklists_i2c_piix4(image_type: str) -> None:
    """images rhel-10 `ami_image_config` modprobe."""
    m = manifest("rhel-10.0", "x86_64", image_type)
    assert [c["modulename"] for st in stages_of(m, "modprobe") for c in st["commands"]] == [
        "nouveau", "amdgpu", "i2c_piix4"]


@pytest.mark.parametrize("distro,expected", [
    ("rhel-9.6", {"servers": [{"hostname": "time.example.com"}]}),
    # osbuild-composer kept the image's leapsectz next to the blueprint's servers
    ("centos-8", {"servers": [{"hostname": "time.example.com"}], "leapsectz": ""})])
def test_blueprint_ntp_servers_replace_the_chrony_configuration(distro: str, expected: dict[str, Any]) -> None:
    """images `pkg/distro/generic/images.go` osCustomizations: ntpservers make a new ChronyStageOptions."""
    bp = {"customizations": {"timezone": {"ntpservers": ["time.example.com"]}}}
    assert stages_of(manifest(distro, "x86_64", "ami", bp), "chrony") == [expected]


JSON_TAILORING = {"customizations": {
    "files": [{"path": "/oscap_data/tailoring.json", "data": '{"profiles": []}'}],
    "openscap": {"profile_id": "xccdf_org.ssgproject.content_profile_cis",
                 "datastream": "/usr/share/xml/scap/ssg/content/ssg-rhel9-ds.xml",
                 "json_tailoring": {"profile_id": "xccdf_org.ssgproject.content_profile_cis_osbuild_tailoring",
                                    "filepath": "/oscap_data/tailoring.json"}}}}


def test_openscap_json_tailoring_from_a_file_in_the_tree() -> None:
    """images `pkg/customizations/oscap` (addJsonConfigs, DataDir), `pkg/osbuild/oscap_autotailor_stage.go`
    (AutotailorJSONConfig), `pkg/policies` CustomFilesPolicies (/oscap_data is allowed)."""
    m = manifest("rhel-9.4", "x86_64", "ami", JSON_TAILORING)
    assert stages_of(m, "mkdir") == [{"paths": [{"path": "/oscap_data", "parents": True, "exist_ok": True}]}]
    assert stages_of(m, "oscap.autotailor") == [{"filepath": "/oscap_data/tailoring.xml", "config": {
        "tailored_profile_id": "xccdf_org.ssgproject.content_profile_cis_osbuild_tailoring",
        "datastream": "/usr/share/xml/scap/ssg/content/ssg-rhel9-ds.xml", "tailoring_file": "/oscap_data/tailoring.json"}}]
    (remediation,) = stages_of(m, "oscap.remediation")
    assert list(remediation["config"].items()) == [
        ("datastream", "/usr/share/xml/scap/ssg/content/ssg-rhel9-ds.xml"),
        ("profile_id", "xccdf_org.ssgproject.content_profile_cis_osbuild_tailoring"),
        ("tailoring", "/oscap_data/tailoring.xml"), ("compress_results", True)]
    (tailor,) = stages_of(m, "oscap.autotailor")
    assert list(tailor["config"]) == ["tailored_profile_id", "datastream", "tailoring_file"]
    # OS.getBuildPackages: any tailoring config (a JSON file too) needs openscap-utils in the build root
    sets = distros.get_distro("rhel-9.4").image_type("x86_64", "ami").package_sets(JSON_TAILORING)
    assert "openscap-utils" in [name for chain in sets["build"] for name in chain.get("include", [])]
    types = [s["type"] for s in next(p for p in m["pipelines"] if p["name"] == "os")["stages"]]
    # the data directory and the file come before remediation
    assert types.index("org.osbuild.mkdir") < types.index("org.osbuild.copy") < types.index("org.osbuild.oscap.autotailor")


def test_openscap_rule_tailoring_in_images_field_order() -> None:
    bp = {"customizations": {"openscap": {"profile_id": "xccdf_org.ssgproject.content_profile_cis",
                                          "tailoring": {"selected": ["a"], "unselected": ["b"]}}}}
    (tailor,) = stages_of(manifest("centos-9", "aarch64", "qcow2", bp), "oscap.autotailor")
    assert list(tailor["config"]) == ["new_profile", "datastream", "profile_id", "selected", "unselected"]


def test_openscap_data_files_stay_refused_on_july_2023_releases() -> None:
    from distros.customizations import CustomizationError

    with pytest.raises(CustomizationError, match="not allowed"):
        manifest("fedora-38", "x86_64", "qcow2", JSON_TAILORING)


def test_openscap_two_tailorings_are_refused() -> None:
    from distros.customizations import CustomizationError

    bp = {"customizations": {"openscap": {**JSON_TAILORING["customizations"]["openscap"],
                                          "tailoring": {"selected": ["a"]}}}}
    with pytest.raises(CustomizationError, match="only one type"):
        manifest("rhel-9.6", "x86_64", "qcow2", bp)


@pytest.mark.parametrize("image_type", ["vhd", "azure-rhui", "azure-sap-rhui"])
def test_rhel8_azure_grub2_and_loglevel(image_type: str) -> None:
    """images rhel-8 `vhd_image_config` (grub2_config, kernel_options with loglevel=3); CentOS
    Stream 8 keeps osbuild-composer's July-2023 grub2 configuration."""
    (grub2,) = stages_of(manifest("rhel-8.10", "x86_64", image_type), "grub2")
    assert grub2["config"] == {**AZURE_GRUB2, "terminal": ["serial", "console"], "timeout": 10,
                               "timeout_style": "countdown", "serial": SERIAL}
    assert grub2["kernel_opts"] == "ro loglevel=3 crashkernel=auto console=tty1 console=ttyS0 earlyprintk=ttyS0 rootdelay=300"
    (old,) = stages_of(manifest("centos-8", "x86_64", "vhd"), "grub2")
    assert old["config"] == {"default": "saved", "terminal_input": ["serial", "console"],
                             "terminal_output": ["serial", "console"], "timeout": 10, "serial": SERIAL}


@pytest.mark.parametrize("image_type", ["ami", "ec2", "ec2-ha", "ec2-sap"])
def test_rhel_ec2_before_9_3_boots_bios_only(image_type: str) -> None:
    """images rhel-9 ec2 (and ami, its copy): platforms_override "Keep the RHEL EC2 x86_64 images
    before 9.3 BIOS-only" and ec2_partition_tables_override (no ESP)."""
    old = manifest("rhel-9.2", "x86_64", image_type)
    assert [o["platform"] for o in stages_of(old, "grub2.inst", "image")] == ["i386-pc"]
    (grub2,) = stages_of(old, "grub2")
    assert "uefi" not in grub2
    assert "/boot/efi" not in [f["path"] for f in stages_of(old, "fstab")[0]["filesystems"]]
    (grub2,) = stages_of(manifest("rhel-9.4", "x86_64", image_type), "grub2")
    assert "uefi" in grub2


def test_dracut_configuration_comes_first_last_configured_first() -> None:
    """images `pkg/manifest/os.go` serialize: each dracut.conf stage is prepended (prependStage)."""
    os_ = next(p for p in manifest("rhel-9.6", "x86_64", "ami")["pipelines"] if p["name"] == "os")
    firsts = [(s["type"], s.get("options", {}).get("filename")) for s in os_["stages"][:4]]
    assert firsts == [("org.osbuild.kernel-cmdline", None), ("org.osbuild.dracut.conf", "ec2.conf"),
                      ("org.osbuild.dracut.conf", "sgdisk.conf"), ("org.osbuild.rpm", None)]


@pytest.mark.parametrize("distro,arch,table", [
    ("rhel-8.6", "x86_64", [(2048, "21686148-6449-6E6F-744E-656564454649"), (4194304, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")]),
    ("rhel-8.10", "x86_64", [(2048, "21686148-6449-6E6F-744E-656564454649"), (409600, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"),
                             (20557791, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")]),
    ("rhel-8.10", "aarch64", [(409600, "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"), (2097152, "0FC63DAF-8483-4772-8E79-3D69D8477DE4"),
                              (18462687, "0FC63DAF-8483-4772-8E79-3D69D8477DE4")])])
def test_rhel8_ami_partition_table_is_its_ec2_one(distro: str, arch: str, table: list[tuple[int, str]]) -> None:
    """images rhel-8 `ami` (ec2_partition_tables, ec2_partition_tables_override, platforms_override)."""
    (sfdisk,) = stages_of(manifest(distro, arch, "ami"), "sfdisk", "image")
    got = [(p["size"], p["type"]) for p in sfdisk["partitions"]]
    assert got[:-1] == table[:-1] and got[-1][1] == table[-1][1]


@pytest.mark.parametrize("distro,arch,image_type,expected", [
    ("centos-9", "x86_64", "edge-commit", True), ("centos-9", "aarch64", "edge-commit", True),
    ("rhel-9.8", "x86_64", "edge-commit", True), ("rhel-9.6", "x86_64", "edge-commit", False),
    ("rhel-8.10", "x86_64", "edge-commit", False), ("centos-9", "x86_64", "edge-container", False)])
def test_edge_commit_generates_bootupd_metadata_from_9_8(schema_dir: Path, distro: str, arch: str,
                                                         image_type: str, expected: bool) -> None:
    """images rhel-9 `edge_commit_image_config` (bootupd_gen_metadata, off below 9.8; CentOS Stream
    9 counts as 9.999), read by `pkg/image/ostree_archive.go` for the commit archive only; the stage
    follows ostree.preptree (`pkg/manifest/os.go`) and passes osbuild's schema."""
    from tests.distros.test_schemas import validate_manifest

    m = manifest(distro, arch, image_type)
    os_ = next(p for p in m["pipelines"] if p["name"] == "os")
    types = [s["type"] for s in os_["stages"]]
    assert ("org.osbuild.bootupd.gen-metadata" in types) is expected
    if expected:
        assert types[-2:] == ["org.osbuild.ostree.preptree", "org.osbuild.bootupd.gen-metadata"]
        assert os_["stages"][-1] == {"type": "org.osbuild.bootupd.gen-metadata"}
    validate_manifest(m)


def test_ostree_parent_commit_is_checked_out_for_passwd_and_keys_come_on_first_boot() -> None:
    """images `pkg/manifest/os.go`: the passwd stage reads the parent commit checked out
    (`NewOSTreePasswdStage`: ostree.checkout input); `pkg/osbuild/first_boot_stage.go` omits a false
    `wait_for_network`."""
    commit = {"ref": "rhel/9/x86_64/edge", "url": "http://example.com/repo", "checksum": "ab" * 32}
    bp = {"customizations": {"user": [{"name": "osbuild", "key": "ssh-ed25519 AAAA osbuild"}]}}
    it = distros.get_distro("rhel-9.6").image_type("x86_64", "edge-commit")
    options = {"ostree": {"ref": commit["ref"], "url": commit["url"]}, "ostree_commits": {"os": [commit]}}
    m = it.manifest(bp, fake_packages("x86_64", list(it.package_sets(bp, options))), TWO_REPOS, options, 0)
    os_ = next(p for p in m["pipelines"] if p["name"] == "os")
    assert os_["stages"][0] == {"type": "org.osbuild.ostree.passwd", "inputs": {"commits": {
        "type": "org.osbuild.ostree.checkout", "origin": "org.osbuild.source", "references": ["ab" * 32]}}}
    (first_boot,) = stages_of(m, "first-boot")
    assert "wait_for_network" not in first_boot
    assert first_boot["commands"][0] == "mkdir -p /var/home/osbuild/.ssh"


@pytest.mark.parametrize("distro,image_type", [("rhel-9.2", "qcow2"), ("rhel-8.10", "ami"), ("rhel-10.0", "ami")])
def test_rhsm_facts_name_no_openscap_profile_from_the_blueprint(distro: str, image_type: str) -> None:
    """images `pkg/manifest/os.go`: the profile fact comes from the caller's ImageOptions.Facts (osbuild-
    composer's cloud API), never from the blueprint; a Weldr compose passes the API type alone."""
    bp = {"customizations": {"openscap": {"profile_id": "xccdf_org.ssgproject.content_profile_cis"}}}
    (facts,) = stages_of(manifest(distro, "x86_64", image_type, bp), "rhsm.facts")
    assert facts == {"facts": {"image-builder.osbuild-composer.api-type": "weldr"}}


@pytest.mark.parametrize("distro,warning", [("centos-9", False), ("rhel-9.4", False), ("rhel-9.6", True),
                                            ("rhel-10.0", True), ("centos-10", True), ("eln-11", False)])
def test_azure_resource_disk_warning(distro: str, warning: bool) -> None:
    """images rhel-9 "rhel-9.6+ adds the dataloss warning" (RHEL only), rhel-10's
    azure_image_config_base (every EL 10; ELN's base has none): the script at the same path and mode,
    the same unit, enabled last.  The script itself is ours (decided deviation)."""
    m = manifest(distro, "x86_64", "vhd")
    script = "/usr/local/sbin/temp-disk-dataloss-warning"
    units = [u for u in stages_of(m, "systemd.unit.create") if u["filename"] == "temp-disk-dataloss-warning.service"]
    copied = [p for c in stages_of(m, "copy") for p in c["paths"] if p["to"] == f"tree://{script}"]
    (systemd,) = stages_of(m, "systemd")
    assert bool(units) is bool(copied) is warning
    assert (systemd["enabled_services"][-1] == "temp-disk-dataloss-warning.service") is warning
    if warning:
        assert units[0] == {"filename": "temp-disk-dataloss-warning.service", "unit-type": "system",
                            "unit-path": "etc", "config": {
                                "Unit": {"Description": "Azure temporary resource disk dataloss warning file creation",
                                         "After": ["multi-user.target", "cloud-final.service"]},
                                "Service": {"Type": "oneshot", "ExecStart": [script],
                                            "StandardOutput": "journal+console"},
                                "Install": {"WantedBy": ["default.target"]}}}
        assert {"items": {script: {"mode": "0755"}}} in stages_of(m, "chmod")


@pytest.mark.parametrize("distro,locale,zone", [("rhel-9.6", "en_US.UTF-8", "Etc/UTC"),
                                                ("centos-9", "en_US.UTF-8", "Etc/UTC"),
                                                ("rhel-10.0", "C.UTF-8", "UTC"), ("eln-11", "C.UTF-8", "UTC")])
def test_azure_locale_and_time_zone(distro: str, locale: str, zone: str) -> None:
    """images rhel-9 image_config_vhd sets them; rhel-10's and ELN's Azure config leave the distro's."""
    m = manifest(distro, "x86_64", "azure-rhui" if distro.startswith("rhel") else "vhd")
    assert stages_of(m, "locale") == [{"language": locale}]
    assert stages_of(m, "timezone") == [{"zone": zone}]


@pytest.mark.parametrize("distro,keys", [("rhel-9.6", ["/etc/pki/rpm-gpg/RPM-GPG-KEY-redhat-release"]),
                                         ("rhel-10.0", None)])
def test_azure_cvm_rhel_key(distro: str, keys: list[str] | None) -> None:
    """images rhel-9 azure-cvm merges the base conditions (the RHEL key among them); rhel-10's
    azure-cvm has conditions of its own in their place."""
    rpm = stages_of(manifest(distro, "x86_64", "azure-cvm"), "rpm")[0]
    assert rpm.get("gpgkeys.fromtree") == keys


@pytest.mark.parametrize("distro,image_type,pinned", [("rhel-8.8", "azure-sap-rhui", True),
                                                      ("rhel-8.10", "azure-sap-rhui", False),
                                                      ("rhel-8.8", "ec2-sap", True), ("rhel-8.10", "ec2-sap", False)])
def test_el8_sap_releasever(distro: str, image_type: str, pinned: bool) -> None:
    """images rhel-8 sap_image_config: "rhel-8.9 and below needs to set the release ver in dnf config"."""
    version = distro.removeprefix("rhel-")
    expected = [{"variables": [{"name": "releasever", "value": version}]}] if pinned else []
    assert stages_of(manifest(distro, "x86_64", image_type), "dnf.config") == expected


@pytest.mark.parametrize("distro,image_type", [("rhel-9.0", "vagrant-libvirt"), ("rhel-10.0", "vagrant-virtualbox"),
                                               ("fedora-43", "generic-vagrant-libvirt")])
def test_vagrant_sudoers_mode_as_images_reads_it(distro: str, image_type: str) -> None:
    """images' YAML says `mode: 440`, a number its loader takes as the mode itself (0o670, written
    with %#o); we follow it on purpose."""
    m = manifest(distro, "x86_64", image_type)
    assert {"items": {"/etc/sudoers.d/vagrant": {"mode": "0670"}}} in stages_of(m, "chmod")


def test_blueprint_file_from_a_local_uri(tmp_path: Path) -> None:
    """images `pkg/customizations/fsnode/file.go` (NewFileForURI: the local file's mode unless the
    blueprint gives one, no owner from it), `pkg/osbuild/fsnode.go` (sha256 of the file's content) and
    `pkg/osbuild/source.go` (a curl item with the `file:` URL)."""
    import hashlib
    import os

    local = tmp_path / "motd"
    local.write_bytes(b"hello\n")
    os.chmod(local, 0o640)
    bp = {"customizations": {"files": [{"path": "/etc/motd", "uri": f"file://{local}"},
                                       {"path": "/etc/issue", "uri": str(local), "mode": "0644"}]}}
    it = distros.get_distro("rhel-9.6").image_type("x86_64", "ami")
    options = {"local_file_uris": True}
    m = it.manifest(bp, fake_packages("x86_64", list(it.package_sets(bp, options))), TWO_REPOS, options, 0)
    digest = hashlib.sha256(b"hello\n").hexdigest()
    (copy,) = stages_of(m, "copy")
    assert [p["from"] for p in copy["paths"]] == [f"input://file-{digest}/sha256:{digest}"] * 2
    assert stages_of(m, "chmod")[-1] == {"items": {"/etc/issue": {"mode": "0644"}, "/etc/motd": {"mode": "0640"}}}
    assert m["sources"]["org.osbuild.curl"]["items"][f"sha256:{digest}"] == {"url": f"file:{local}"}
    assert f"sha256:{digest}" not in m["sources"].get("org.osbuild.inline", {}).get("items", {})


@pytest.mark.parametrize("uri,options,message", [
    ("file:///etc/hostname", {}, "not supported here"),
    ("https://example.com/motd", {"local_file_uris": True}, "unsupported scheme"),
    ("file:///nonexistent/motd", {"local_file_uris": True}, "cannot include blueprint file")])
def test_blueprint_file_uris_the_service_refuses(uri: str, options: dict[str, Any], message: str) -> None:
    """The service reads no host file for a client (off unless the caller allows local files, as
    images' command-line tools do); images takes `file:` URIs of regular files only."""
    from distros.customizations import CustomizationError

    bp = {"customizations": {"files": [{"path": "/etc/motd", "uri": uri}]}}
    it = distros.get_distro("rhel-9.6").image_type("x86_64", "ami")
    with pytest.raises(CustomizationError, match=message):
        it.manifest(bp, fake_packages("x86_64", list(it.package_sets(bp, options))), TWO_REPOS, options, 0)
