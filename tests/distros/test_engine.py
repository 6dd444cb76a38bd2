"""The engine on small hand-made definitions: nothing from ../shared is needed."""

from __future__ import annotations

from typing import Any

import pytest

import distros
from distros.compare import diff, normalize
from distros.definitions import DefinitionError, Target, parse_size, resolve
from distros.engine import PIPELINE_KINDS, PipelineKind, pipeline_kind

DISTROS_YAML = """
distros:
  - name: "toy-{minor}"
    minors: [1, 2]
    aliases: ["toy{minor}"]
    family: toy
    version: "{minor}"
    product: Toy
    os_version: "{minor}"
    release_version: "{minor}"
    module_platform_id: "platform:toy{minor}"
    vendor: toy
    runner: "org.osbuild.toy{minor}"
    default_fs_type: ext4
    arches: [x86_64, aarch64]
    image_types: toy.yaml
    build_packages: [rpm, tar]
    image_config:
      locale: C.UTF-8
      timezone: UTC
      selinux: targeted
"""

TOY_YAML = """
platforms:
  x86_64: {bootloader: grub2, bios: i386-pc, uefi: true, packages: [grub2-pc], build_packages: [grub2-pc]}
  aarch64: {bootloader: grub2, uefi: true, packages: [grub2-efi-aa64]}

partition_tables:
  small:
    type: gpt
    uuid: 11111111-2222-3333-4444-555555555555
    partitions:
      - {size: 1 MiB, bootable: true, type: 21686148-6449-6E6F-744E-656564454649, uuid: AAAAAAAA-2222-3333-4444-555555555555}
      - {size: 100 MiB, type: 0FC63DAF-8483-4772-8E79-3D69D8477DE4,
         payload: {type: ext4, mountpoint: /boot, label: boot}}
      - {size: 1 GiB, type: 0FC63DAF-8483-4772-8E79-3D69D8477DE4,
         payload: {mountpoint: /, label: root}}

image_types:
  disk:
    filename: disk.qcow2
    mime_type: application/x-qemu-disk
    default_size: 2 GiB
    bootable: true
    arches: [x86_64, aarch64]
    partition_table: small
    pipelines:
      - {name: build, kind: build}
      - {name: os, kind: os}
      - {name: image, kind: disk, filename: disk.img}
      - {name: qcow2, kind: qemu, input: image, format: {type: qcow2, compat: "1.1"}}
    exports: [qcow2]
    image_config:
      kernel_options: [ro]
      default_target: multi-user.target
      conditions:
        - when: {version_ge: "2"}
          merge: {hostname: newer}
    package_sets:
      os:
        - include: ["@core", bash]
          exclude: [plymouth]
          conditions:
            - when: {arch: aarch64}
              append: {include: [arm-only]}
  tarball:
    filename: root.tar
    mime_type: application/x-tar
    arches: [x86_64]
    pipelines:
      - {name: build, kind: build}
      - {name: os, kind: os}
      - {name: archive, kind: tar}
    exports: [archive]
    package_sets:
      os: [{include: [bash]}]
  custom:
    filename: out.txt
    arches: [x86_64]
    pipelines:
      - {name: build, kind: build}
      - {name: os, kind: os}
      - {name: note, kind: toy-note, text: hello}
    exports: [note]
    package_sets:
      os: [{include: [bash]}]
"""


@pytest.fixture(scope="module")
def toy(tmp_path_factory: pytest.TempPathFactory) -> dict[str, distros.Distro]:
    d = tmp_path_factory.mktemp("defs")
    (d / "distros.yaml").write_text(DISTROS_YAML)
    (d / "toy.yaml").write_text(TOY_YAML)
    return distros.load(d)


def pkg(name: str, arch: str = "x86_64", n: int = 0) -> dict[str, Any]:
    return {"name": name, "epoch": 0, "version": "1.0", "release": "1", "arch": arch,
            "remote_location": f"https://example.com/{name}.rpm", "checksum": f"sha256:{n:064x}",
            "check_gpg": True}


PACKAGES = {"build": [pkg("rpm", n=1), pkg("tar", n=2)],
            "os": [pkg("bash", n=3), pkg("kernel", n=4)]}
REPOS = [{"name": "r", "baseurl": "https://example.com/", "gpgkey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nk\n"},
         {"name": "nokey", "baseurl": "https://example.com/2", "gpgkeys": ["https://example.com/key"]}]


def stage_types(pipeline: dict[str, Any]) -> list[str]:
    return [s["type"].removeprefix("org.osbuild.") for s in pipeline["stages"]]


def test_sizes_and_conditions() -> None:
    assert parse_size("10 GiB") == 10 * 1024**3
    assert parse_size("500 MiB") == 500 * 1024**2
    assert parse_size(42) == 42
    with pytest.raises(DefinitionError):
        parse_size("ten")
    node = {"a": 1, "l": [1], "conditions": [
        {"when": {"distro": "rhel", "version_lt": "9.3"}, "merge": {"a": 2}},
        {"when": {"arch": ["aarch64"]}, "append": {"l": [2]}},
        {"when": {"not_distro": "rhel"}, "replace": {"gone": True}},
    ]}
    assert resolve(node, Target("rhel", "9.2", "x86_64")) == {"a": 2, "l": [1]}
    assert resolve(node, Target("rhel", "9.10", "aarch64")) == {"a": 1, "l": [1, 2]}
    assert resolve(node, Target("centos", "9", "x86_64")) == {"gone": True}


def test_a_reused_list_of_conditions_is_spliced_in() -> None:
    """`conditions: [*shared, {...}]` (YAML cannot join lists) evaluates the shared ones in place,
    as images' `<<: *named_conditions` does; the schema checks the nested ones too."""
    shared = [{"when": {"distro": "rhel"}, "merge": {"a": 2}}, {"when": {"arch": "aarch64"}, "append": {"l": [2]}}]
    node = {"a": 1, "l": [1], "conditions": [shared, {"when": {"version_ge": "10"}, "merge": {"a": 3}}]}
    assert resolve(node, Target("rhel", "9.6", "aarch64")) == {"a": 2, "l": [1, 2]}
    assert resolve(node, Target("rhel", "10.0", "x86_64")) == {"a": 3, "l": [1]}
    assert resolve(node, Target("centos", "9", "x86_64")) == {"a": 1, "l": [1]}


def test_distro_expansion_and_lookup(toy: dict[str, distros.Distro]) -> None:
    assert sorted(toy) == ["toy-1", "toy-2"]
    d = toy["toy-2"]
    assert d.runner == "org.osbuild.toy2"
    assert d.image_types("x86_64") == ["custom", "disk", "tarball"]
    assert d.image_types("aarch64") == ["disk"]
    with pytest.raises(distros.UnknownImageType):
        d.image_type("aarch64", "tarball")
    with pytest.raises(distros.UnknownArch):
        d.image_types("s390x")
    it = d.image_type("x86_64", "disk")
    assert (it.filename, it.mime_type, it.default_size, it.exports) == (
        "disk.qcow2", "application/x-qemu-disk", 2 * 1024**3, ["qcow2"])


def test_package_sets_are_chains(toy: dict[str, distros.Distro]) -> None:
    bp = {"packages": [{"name": "tmux", "version": "*"}, {"name": "vim", "version": "9.0"}],
          "groups": [{"name": "web"}], "customizations": {"kernel": {"name": "kernel-rt"}}}
    sets = toy["toy-1"].image_type("aarch64", "disk").package_sets(bp)
    assert list(sets) == ["build", "os"]
    base, extra, blueprint = sets["os"]
    # images installs the partition table's tools (ext4 here) into the OS as well
    assert base["include"] == ["grub2-efi-aa64", "e2fsprogs", "@core", "bash", "arm-only", "kernel-rt"]
    assert base["exclude"] == ["plymouth"] and base["install_weak_deps"] is True
    assert extra == {"include": ["selinux-policy-targeted"], "exclude": [], "install_weak_deps": False}
    assert blueprint["include"] == ["tmux", "vim-9.0", "@web"]
    build = sets["build"][0]["include"]
    assert {"rpm", "tar", "e2fsprogs", "qemu-img"} <= set(build)


def test_disk_manifest_shape(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-2"].image_type("x86_64", "disk")
    m = it.manifest({}, PACKAGES, REPOS, None, seed=1)
    names = [p["name"] for p in m["pipelines"]]
    assert names == ["build", "os", "image", "qcow2"]
    build, os_, image, qcow2 = m["pipelines"]
    assert build["runner"] == "org.osbuild.toy2" and "build" not in build
    assert stage_types(build) == ["rpm", "selinux"]
    # only inline keys reach the rpm stage
    assert build["stages"][0]["options"]["gpgkeys"] == [REPOS[0]["gpgkey"]]
    assert stage_types(os_) == ["kernel-cmdline", "rpm", "fix-bls", "locale", "hostname", "timezone",
                                "fstab", "grub2", "systemd", "selinux"]
    assert os_["stages"][4]["options"] == {"hostname": "newer"}      # version condition
    grub = os_["stages"][7]["options"]
    assert grub["legacy"] == "i386-pc" and grub["uefi"] == {"vendor": "toy", "unified": True}
    assert grub["saved_entry"] == "ffffffffffffffffffffffffffffffff-1.0-1.x86_64"
    assert stage_types(image) == ["truncate", "sfdisk", "mkfs.ext4", "mkfs.ext4", "copy", "grub2.inst"]
    sf = image["stages"][1]["options"]
    # 1 MiB header, BIOS boot, /boot, then / — grown to the 3 GiB that / and /usr need, past the
    # 2 GiB default — up to the end of the disk minus the GPT footer (disk rounded up to 1 MiB)
    disk_sectors = (102 + 3072 + 1) * 2048
    assert [(p["start"], p["size"]) for p in sf["partitions"]] == [
        (2048, 2048), (4096, 204800), (208896, disk_sectors - 208896 - 33)]
    assert image["stages"][0]["options"]["size"] == str(disk_sectors * 512)
    inst = image["stages"][-1]["options"]
    assert inst["prefix"] == {"type": "partition", "partlabel": "gpt", "number": 1, "path": "/grub2"}
    assert qcow2["stages"][0]["inputs"]["image"]["references"] == {"name:image": {"file": "disk.img"}}
    assert sorted(m["sources"]["org.osbuild.curl"]["items"]) == sorted(
        p["checksum"] for ps in PACKAGES.values() for p in ps)


def test_seed_determines_uuids(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-2"].image_type("x86_64", "disk")
    a = it.manifest({}, PACKAGES, REPOS, None, seed=1)
    b = it.manifest({}, PACKAGES, REPOS, None, seed=1)
    c = it.manifest({}, PACKAGES, REPOS, None, seed=2)
    assert a == b
    assert a != c
    assert diff(a, c) == ""          # the same image up to its random identifiers
    assert normalize(a) == normalize(c)


def test_filesystem_customization_converts_to_lvm(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "disk")
    bp = {"customizations": {"filesystem": [{"mountpoint": "/var/log", "minsize": 3 * 1024**3},
                                            {"mountpoint": "/boot", "minsize": 300 * 1024**2}]}}
    m = it.manifest(bp, PACKAGES, REPOS, None, seed=3)
    image = m["pipelines"][2]
    # the toy follows osbuild/images: the added mountpoint gets the distribution's default
    # filesystem (ext4 here; NewPartitionTable's defaultFs); osbuild-composer 2023 made it XFS
    assert stage_types(image) == ["truncate", "sfdisk", "lvm2.create", "mkfs.ext4", "mkfs.ext4",
                                  "mkfs.ext4", "copy", "lvm2.metadata", "grub2.inst"]
    volumes = image["stages"][2]["options"]["volumes"]
    assert volumes == [{"name": "rootlv", "size": f"{3 * 1024**3}B"},
                       {"name": "var_loglv", "size": f"{3 * 1024**3}B"}]
    parts = image["stages"][1]["options"]["partitions"]
    # /boot asked for 300 MiB: images' clampFSSize makes a customized /boot at least 500 MB
    assert parts[1]["size"] == 524288000 // 512
    assert parts[2]["type"] == "E6D6D379-F507-44C2-A23C-238F2A3DF928"
    # the image grew past its 2 GiB default to hold 6 GiB of volumes
    assert int(image["stages"][0]["options"]["size"]) > 6 * 1024**3
    copy = image["stages"][6]
    assert [mt["target"] for mt in copy["mounts"]] == ["/", "/boot", "/var/log"]
    # images names devices and mounts after the escaped mountpoint, the VG device after the VG
    assert copy["devices"]["var-log"] == {"type": "org.osbuild.lvm2.lv", "parent": "rootvg",
                                          "options": {"volume": "var_loglv"}}
    fstab = m["pipelines"][1]["stages"][-4]["options"]["filesystems"]
    assert [f["path"] for f in fstab] == ["/", "/boot", "/var/log"]


def test_raw_partitioning_mode_adds_partitions(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "disk")
    bp = {"customizations": {"filesystem": [{"mountpoint": "/data", "minsize": 1024**3}]}}
    m = it.manifest(bp, PACKAGES, REPOS, {"partitioning_mode": "raw"}, seed=3)
    image = m["pipelines"][2]
    assert "lvm2.create" not in stage_types(image)
    assert len(image["stages"][1]["options"]["partitions"]) == 4


def test_customizations_become_stages(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "tarball")
    bp = {"customizations": {
        "hostname": "h", "timezone": {"timezone": "Europe/Prague", "ntpservers": ["ntp.example.com"]},
        "locale": {"languages": ["cs_CZ.UTF-8"], "keyboard": "cz"},
        "user": [{"name": "bob", "password": "plain", "groups": ["wheel"]}],
        "group": [{"name": "ops", "gid": 2000}],
        "firewall": {"ports": ["22:tcp"], "services": {"enabled": ["http"]}},
        "services": {"enabled": ["sshd"], "masked": ["kdump"]},
        "directories": [{"path": "/etc/x", "mode": "0700", "ensure_parents": True}],
        "files": [{"path": "/etc/x/a", "data": "hi", "user": "bob"}],
    }}
    m = it.manifest(bp, PACKAGES, REPOS, None, seed=5)
    os_ = m["pipelines"][1]
    assert stage_types(os_) == ["rpm", "fix-bls", "locale", "keymap", "hostname", "timezone", "chrony",
                                "groups", "users", "firewall", "mkdir", "chmod", "copy", "chown",
                                "systemd", "selinux"]
    users = os_["stages"][8]["options"]["users"]["bob"]
    assert users["password"].startswith("$6$") and users["groups"] == ["wheel"]
    assert os_["stages"][9]["options"] == {"ports": ["22:tcp"], "enabled_services": ["http"]}
    assert os_["stages"][10]["options"] == {"paths": [{"path": "/etc/x", "parents": True}]}
    copy = os_["stages"][12]
    (checksum,) = m["sources"]["org.osbuild.inline"]["items"]
    assert copy["options"]["paths"][0]["to"] == "tree:///etc/x/a"
    assert checksum in copy["options"]["paths"][0]["from"]
    assert os_["stages"][14]["options"] == {"enabled_services": ["sshd"], "masked_services": ["kdump"]}
    assert m["pipelines"][2]["stages"][0]["options"] == {"filename": "root.tar"}
    assert m["pipelines"][0]["stages"][1]["options"]["labels"]["/usr/bin/tar"]


def test_new_pipeline_kind_is_data_plus_a_class(toy: dict[str, distros.Distro]) -> None:
    @pipeline_kind("toy-note")
    class Note(PipelineKind):
        spec_keys = frozenset({"text"})

        def serialize(self, ctx: Any, spec: dict[str, Any]) -> dict[str, Any]:
            return {"name": spec["name"], "build": "name:build",
                    "stages": [{"type": "org.osbuild.noop", "options": {"text": spec["text"]}}]}

    try:
        m = toy["toy-1"].image_type("x86_64", "custom").manifest({}, PACKAGES, REPOS, None, 0)
        assert m["pipelines"][-1]["stages"][0]["options"] == {"text": "hello"}
    finally:
        PIPELINE_KINDS.pop("toy-note")


def test_unknown_names() -> None:
    with pytest.raises(distros.UnknownDistro):
        distros.get_distro("nope-1")
    assert distros.get_distro("rhel-92").name == "rhel-9.2"
    assert "centos-9" in distros.list_distros()
    with pytest.raises(distros.UnknownImageType):
        distros.get_distro("centos-9").image_type("x86_64", "nope")
    assert distros.get_distro("centos-9").image_type("x86_64", "guest-image").name == "qcow2"


def test_shipped_definitions_cover_the_distros() -> None:
    for name in distros.list_distros():
        d = distros.get_distro(name)
        for arch in d.arches():
            for t in d.image_types(arch):
                it = d.image_type(arch, t)
                assert it.filename and it.exports and it.mime_type
                assert {s["name"] for s in it.pipelines} >= set(it.exports), (name, arch, t)


@pytest.mark.parametrize("mountpoint, ok", [
    ("/", True), ("/boot", True), ("/var/log", True), ("/opt/app", True), ("/data", True),
    ("/etc", False), ("/boot/efi", True), ("/boot/firmware", True), ("/var/run", False), ("/usr/local", False),
    ("/usr/", False), ("/proc/x", False), ("relative", False), ("/a/../b", False),
])
def test_mountpoint_policy(toy: dict[str, distros.Distro], mountpoint: str, ok: bool) -> None:
    """The toy releases follow osbuild/images: its MountpointPolicies (pkg/policies) decide;
    osbuild-composer's 2023 policy is pinned in tests/distros/test_disk_customizations.py."""
    from distros.partition import PartitioningError

    it = toy["toy-1"].image_type("x86_64", "disk")
    bp = {"customizations": {"filesystem": [{"mountpoint": mountpoint, "minsize": "1 GiB"}]}}
    if ok:
        it.manifest(bp, PACKAGES, REPOS, None, 0)
    else:
        with pytest.raises(PartitioningError, match="not supported"):
            it.manifest(bp, PACKAGES, REPOS, None, 0)


def test_requested_size_and_alignment() -> None:
    it = distros.get_distro("centos-9").image_type("x86_64", "vhd")
    pkgs = {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]}
    m = it.manifest({}, pkgs, REPOS, {"size": 5 * 1024**3 + 1}, 0)
    truncate = m["pipelines"][2]["stages"][0]["options"]
    assert int(truncate["size"]) == 5 * 1024**3 + 1024**2       # rounded up to a whole MiB for Azure


def test_blueprint_partitioning_mode(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "disk")
    bp = {"customizations": {"partitioning_mode": "lvm"}}
    image = it.manifest(bp, PACKAGES, REPOS, None, 0)["pipelines"][2]
    assert "lvm2.create" in stage_types(image)
    from distros.partition import PartitioningError

    with pytest.raises(PartitioningError):
        it.manifest({"customizations": {"partitioning_mode": "zfs"}}, PACKAGES, REPOS, None, 0)


def test_rhsm_repositories_fetch_with_secrets(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "tarball")
    packages = {"build": [dict(pkg("rpm", n=1), repo_id="cdn")], "os": [dict(pkg("bash", n=2), repo_id="open")]}
    repos = [{"id": "cdn", "baseurl": "https://cdn.example.com/", "rhsm": True},
             {"id": "open", "baseurl": "https://example.com/"}]
    items = it.manifest({}, packages, repos, None, 0)["sources"]["org.osbuild.curl"]["items"]
    assert items[packages["build"][0]["checksum"]] == {"url": "https://example.com/rpm.rpm",
                                                         "secrets": {"name": "org.osbuild.rhsm"}}
    assert items[packages["os"][0]["checksum"]] == {"url": "https://example.com/bash.rpm"}


@pytest.mark.parametrize("kind, path, ok", [
    ("files", "/etc/app.conf", True), ("files", "/root/.bashrc", True), ("files", "/usr/local/bin/x", True),
    ("files", "/etc/fstab", False), ("files", "/etc/passwd", False), ("files", "/usr/bin/x", False),
    ("directories", "/etc/app.d", True), ("directories", "/etc/../x", False),
    # images' policies for non-ostree types (pkg/policies): anywhere but the system's own trees
    ("directories", "/var/x", True), ("directories", "/var/tmp/x", False), ("files", "/oscap_data/tailoring.xml", True),
    ("files", "/usr/local/share/x", True), ("files", "/boot/x", False), ("directories", "/usr/x", False),
])
def test_file_and_directory_policy(toy: dict[str, distros.Distro], kind: str, path: str, ok: bool) -> None:
    from distros.customizations import CustomizationError

    it = toy["toy-1"].image_type("x86_64", "tarball")
    bp = {"customizations": {kind: [{"path": path, "data": "x"} if kind == "files" else {"path": path}]}}
    if ok:
        it.manifest(bp, PACKAGES, REPOS, None, 0)
    else:
        with pytest.raises(CustomizationError, match="not allowed"):
            it.manifest(bp, PACKAGES, REPOS, None, 0)


@pytest.mark.parametrize("arch, os_tail, image_stages", [
    ("ppc64le", ["fstab", "grub2"], ["truncate", "sfdisk", "mkfs.xfs", "mkfs.xfs", "copy", "grub2.inst"]),
    ("s390x", ["fstab", "zipl"], ["truncate", "sfdisk", "mkfs.xfs", "mkfs.xfs", "copy", "zipl.inst"]),
    ("aarch64", ["fstab", "grub2"], ["truncate", "sfdisk", "mkfs.fat", "mkfs.xfs", "mkfs.xfs", "copy"]),
])
def test_boot_code_per_arch(arch: str, os_tail: list[str], image_stages: list[str]) -> None:
    it = distros.get_distro("centos-9").image_type(arch, "qcow2")
    pkgs = {"build": [pkg("rpm", arch, 1)], "os": [pkg("kernel", arch, 2)]}
    m = it.manifest({}, pkgs, REPOS, None, 0)
    os_, image = m["pipelines"][1], m["pipelines"][2]
    types = stage_types(os_)
    assert types[0] == "kernel-cmdline"
    assert types[types.index("fstab"):types.index("fstab") + 2] == os_tail
    assert stage_types(image) == image_stages
    if arch == "ppc64le":
        sf = image["stages"][1]["options"]
        assert sf["label"] == "dos" and sf["partitions"][0] == {"bootable": True, "size": 8192, "start": 2048,
                                                                "type": "41"}
        inst = image["stages"][-1]["options"]
        assert inst["platform"] == "powerpc-ieee1275" and inst["location"] == 2048
        grub = next(s for s in os_["stages"] if s["type"] == "org.osbuild.grub2")["options"]
        assert grub["legacy"] == "powerpc-ieee1275" and "uefi" not in grub
    if arch == "s390x":
        inst = image["stages"][-1]
        assert inst["options"]["kernel"] == "1.0-1.s390x"
        assert "disk" in inst["devices"]


def test_boot_requested_where_the_table_has_none() -> None:
    """EL 10 has no /boot: asking for one (auto-lvm) gets exactly one, at the requested size."""
    it = distros.get_distro("centos-10").image_type("x86_64", "qcow2")
    bp = {"customizations": {"filesystem": [{"mountpoint": "/boot", "minsize": "1 GiB"}]}}
    m = it.manifest(bp, {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]}, REPOS, None, 0)
    fstab = next(s for s in m["pipelines"][1]["stages"] if s["type"] == "org.osbuild.fstab")
    paths = [f["path"] for f in fstab["options"]["filesystems"]]
    assert paths.count("/boot") == 1
    parts = m["pipelines"][2]["stages"][1]["options"]["partitions"]
    assert 1024**3 // 512 in [p["size"] for p in parts]


def test_mountpoint_policy_applies_to_archives_too(toy: dict[str, distros.Distro]) -> None:
    from distros.partition import PartitioningError

    it = toy["toy-1"].image_type("x86_64", "tarball")
    it.manifest({"customizations": {"filesystem": [{"mountpoint": "/var", "minsize": 1}]}}, PACKAGES, REPOS)
    with pytest.raises(PartitioningError, match="not supported"):
        it.package_sets({"customizations": {"filesystem": [{"mountpoint": "/etc", "minsize": 1}]}})


def test_request_errors_render_as_weldr_errors(toy: dict[str, distros.Distro]) -> None:
    it = toy["toy-1"].image_type("x86_64", "disk")
    with pytest.raises(distros.RequestError) as info:
        it.check({"customizations": {"files": [{"path": "/etc/passwd", "data": "x"}]}})
    assert info.value.api_id == "ManifestCreationFailed"
    assert info.value.api_message.startswith("failed to initialize osbuild manifest: ")
    with pytest.raises(distros.RequestError):
        it.check({"customizations": {"filesystem": [{"mountpoint": "/proc", "minsize": 1}]}})
    assert it.check({"customizations": {"filesystem": [{"mountpoint": "/srv", "minsize": 1}]}}) == []


def test_ca_certificates_become_trust_anchors(toy: dict[str, distros.Distro]) -> None:
    from distros.customizations import CustomizationError
    from tests.distros.test_schemas import TEST_CA as pem

    it = toy["toy-1"].image_type("x86_64", "tarball")
    m = it.manifest({"customizations": {"cacerts": {"pem_certs": [pem]}}}, PACKAGES, REPOS, None, 0)
    os_ = m["pipelines"][1]
    types = stage_types(os_)
    assert types[-3:] == ["chown", "pki.update-ca-trust", "selinux"]
    copy = next(s for s in os_["stages"] if s["type"] == "org.osbuild.copy")
    # named after the certificate's serial number, as images names it
    assert copy["options"]["paths"][0]["to"] == ("tree:///etc/pki/ca-trust/source/anchors/"
                                                 "27894af897dd2423607045716438a725f28a6d0b.pem")
    assert "org.osbuild.chmod" not in types and "options" not in os_["stages"][-2]
    with pytest.raises(CustomizationError):
        it.manifest({"customizations": {"cacerts": {"pem_certs": ["nope"]}}}, PACKAGES, REPOS, None, 0)


def test_blueprint_rhsm_config_overrides_the_image_type() -> None:
    it = distros.get_distro("rhel-9.2").image_type("x86_64", "qcow2")
    bp = {"customizations": {"rhsm": {"config": {
        "dnf_plugins": {"product_id": {"enabled": True}},
        "subscription_manager": {"rhsm": {"manage_repos": True}, "rhsmcertd": {"auto_registration": True}}}}}}
    m = it.manifest(bp, {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]}, REPOS, None, 0)
    rhsm = next(s for s in m["pipelines"][1]["stages"] if s["type"] == "org.osbuild.rhsm")["options"]
    assert rhsm == {"dnf-plugins": {"product-id": {"enabled": True}, "subscription-manager": {"enabled": False}},
                    "subscription-manager": {"rhsm": {"manage_repos": True},
                                             "rhsmcertd": {"auto_registration": True}}}


def test_blueprint_disk_layout() -> None:
    it = distros.get_distro("centos-9").image_type("x86_64", "qcow2")
    disk = {"minsize": "12 GiB", "partitions": [
        {"type": "plain", "mountpoint": "/data", "fs_type": "ext4", "minsize": "1 GiB"},
        {"type": "lvm", "name": "mainvg", "minsize": "6 GiB", "logical_volumes": [
            {"name": "rootlv", "mountpoint": "/", "fs_type": "xfs", "minsize": "3 GiB", "label": "root"},
            {"mountpoint": "/home", "minsize": "1 GiB"}]}]}
    m = it.manifest({"customizations": {"disk": disk}}, {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]},
                    REPOS, None, 0)
    image = m["pipelines"][2]
    assert int(image["stages"][0]["options"]["size"]) == 12 * 1024**3
    parts = image["stages"][1]["options"]["partitions"]
    assert [p["type"] for p in parts] == ["21686148-6449-6E6F-744E-656564454649",        # BIOS boot
                                         "C12A7328-F81F-11D2-BA4B-00A0C93EC93B",          # ESP
                                         "BC13C2FF-59E6-4262-A352-B275FD6F7172",          # XBOOTLDR /boot (root on LVM)
                                         "0FC63DAF-8483-4772-8E79-3D69D8477DE4",          # /data
                                         "E6D6D379-F507-44C2-A23C-238F2A3DF928"]          # mainvg
    assert image["stages"][2]["options"]["volumes"] == [{"name": "rootlv", "size": f"{3 * 1024**3}B"},
                                                        {"name": "homelv", "size": f"{1024**3}B"}]
    fstab = next(s for s in m["pipelines"][1]["stages"] if s["type"] == "org.osbuild.fstab")
    assert {f["path"]: f["vfs_type"] for f in fstab["options"]["filesystems"]} == {
        "/": "xfs", "/boot": "xfs", "/data": "ext4", "/home": "xfs", "/boot/efi": "vfat"}
    # no / in the blueprint: images (EnsureRootFilesystem) appends a root partition, labelled root
    m = it.manifest({"customizations": {"disk": {"partitions": [{"type": "plain", "mountpoint": "/data"}]}}},
                    {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]}, REPOS, None, 0)
    parts = m["pipelines"][2]["stages"][1]["options"]["partitions"]
    assert parts[-1]["type"] == "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709"
    from distros.partition import PartitioningError

    with pytest.raises(PartitioningError, match="not supported"):
        it.manifest({"customizations": {"disk": {"partitions": [{"type": "plain", "mountpoint": "/etc"}]}}},
                    {"os": []}, REPOS, None, 0)


def test_release_facts_and_shell_init_in_image_config() -> None:
    pkgs = {"build": [pkg("rpm", n=1)], "os": [pkg("kernel", n=2)]}
    sap = distros.get_distro("rhel-9.2").image_type("x86_64", "ec2-sap").manifest({}, pkgs, REPOS, None, 0)
    dnf = next(s for s in sap["pipelines"][1]["stages"] if s["type"] == "org.osbuild.dnf.config")
    assert dnf["options"] == {"variables": [{"name": "releasever", "value": "9.2"}]}
    eap = distros.get_distro("rhel-8.8").image_type("x86_64", "azure-eap7-rhui").manifest({}, pkgs, REPOS, None, 0)
    types = stage_types(eap["pipelines"][1])
    assert types[types.index("systemd") + 1] == "shell.init"
    # and the type exists only from 8.6, on RHEL only
    with pytest.raises(distros.UnknownImageType):
        distros.get_distro("rhel-8.4").image_type("x86_64", "azure-eap7-rhui")
    with pytest.raises(distros.UnknownImageType):
        distros.get_distro("centos-8").image_type("x86_64", "azure-rhui")


def test_blueprint_enabled_modules_reach_the_os_package_set():
    """A blueprint's enabled module streams travel with its packages to the depsolver."""
    it = distros.get_distro("centos-9").image_type("x86_64", "qcow2")
    blueprint = {"name": "m", "packages": [{"name": "nginx", "version": "*"}],
                 "enabled_modules": [{"name": "nginx", "stream": "1.22"}]}
    last = it.package_sets(blueprint)["os"][-1]
    assert "nginx" in last["include"] and last["enable_modules"] == ["nginx:1.22"]
    assert all("enable_modules" not in s for s in it.package_sets({"name": "m"})["os"])
