"""osbuild-composer's golden cases and osbuild's schemas under ../shared, for the distros and
installers tests: one place that knows where they are, how a case is read, and what "reproduced"
means, so both areas check their cases the same way (and skip the same way when ../shared is absent).
"""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
GOLDEN_DIR = SHARED / "golden" / "dev"
SCHEMA_DIR = SHARED / "reference" / "osbuild-schemas"


@pytest.fixture
def golden_dir() -> Path:
    if not GOLDEN_DIR.is_dir():
        pytest.skip("../shared/golden/dev is not present")
    return GOLDEN_DIR


@pytest.fixture
def schema_dir() -> Path:
    if not SCHEMA_DIR.is_dir():
        pytest.skip("../shared/reference/osbuild-schemas is not present")
    return SCHEMA_DIR


def load_case(path: Path) -> dict:
    with lzma.open(path) as f:
        return json.load(f)


def expected_manifest(data: dict) -> dict:
    """What the engine must write for a case: osbuild-composer's July-2023 manifest exactly for
    releases osbuild/images no longer defines (Fedora 37-39, CentOS Stream 8); for the others
    (the `centos_9` and `rhel_92` cases) that manifest with osbuild/images' current differences
    applied, each one listed in `images_changes`."""
    import distros

    manifest = data["manifest"]
    definition = distros.get_distro(data["compose-request"]["distro"]).definition
    if definition.follows == "images":
        manifest = images_changes(manifest)
        if "." not in definition.version:
            _boot_of_one_gib(manifest)
    return manifest


BOOT_2023_SECTORS = 500 * 1024 * 1024 // 512
BOOT_TODAY_SECTORS = 1024 * 1024 * 1024 // 512
ROOT_MIN_SECTORS = 3 * 1024 * 1024 * 1024 // 512
GPT_FOOTER_SECTORS = 33


def _boot_of_one_gib(manifest: dict) -> None:
    """images compares CentOS Stream 9 as 9.999 (`pkg/distro/defs/loader.go`
    versionStringForVerCmp), so its tables have rhel-9's 1 GiB /boot where osbuild-composer's 2023
    cases had 500 MiB: the partitions behind /boot move by the difference and the last one (the
    root) shrinks by it; where that leaves the root below its 3 GiB minimum (`/` and `/usr`), the
    root keeps the minimum and the disk grows, to a whole MiB behind the GPT footer. Every stage's
    copy of a partition's geometry follows."""
    grow = BOOT_TODAY_SECTORS - BOOT_2023_SECTORS
    moves: dict[tuple[int, int], tuple[int, int]] = {}
    disk_sizes: dict[str, str] = {}
    for pipeline in manifest["pipelines"]:
        for st in pipeline.get("stages") or []:
            parts = st.get("options", {}).get("partitions") if st["type"] == "org.osbuild.sfdisk" else None
            if not parts or not any(p.get("size") == BOOT_2023_SECTORS for p in parts):
                continue
            at = next(i for i, p in enumerate(parts) if p.get("size") == BOOT_2023_SECTORS)
            for i, part in enumerate(parts[at:], start=at):
                old = (part["start"], part["size"])
                if i == at:
                    part["size"] += grow
                else:
                    part["start"] += grow
                    if i == len(parts) - 1:
                        part["size"] -= grow
                        if part["size"] < ROOT_MIN_SECTORS:
                            end = -(-(part["start"] + ROOT_MIN_SECTORS + GPT_FOOTER_SECTORS) // 2048) * 2048
                            part["size"] = end - GPT_FOOTER_SECTORS - part["start"]
                            disk_sizes[str((old[0] + old[1] + GPT_FOOTER_SECTORS) * 512)] = str(end * 512)
                moves[old] = (part["start"], part["size"])

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if node.get("filename") == "disk.img" and node.get("size") in disk_sizes:
                node["size"] = disk_sizes[node["size"]]
            if (node.get("start"), node.get("size")) in moves:
                node["start"], node["size"] = moves[(node["start"], node["size"])]
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(manifest)


def images_changes(manifest: dict) -> dict:
    """osbuild-composer's July-2023 manifest as osbuild/images' code writes it today (issue 11):

    - devices and mounts are named after the systemd-escaped mountpoint (`/` is `-`, `/boot/efi`
      is `boot-efi`) and a volume group's device after the group (`rootvg`, not `rootvgvg`);
      images' `pkg/osbuild/device.go` (deviceName, pathEscape, GenMountsDevicesFromPT), and the
      copy stage writes to `mount://-/` (`pkg/osbuild/copy_stage.go`);
    - rpm stages import each armored key once, sorted (`pkg/osbuild/rpm_stage.go` GPGKeysForPackages);
    - systemd unit drop-ins write `Environment` as a list of `{key, value}` (images' YAML and
      `pkg/osbuild/systemd_unit_stage.go` EnvironmentVariable), not as one `KEY=value` string;
    - images' rhel-9/rhel-10 definitions set no `rhsm_config` on the cloud types (only qcow2's
      dnf plugins), so the rhsm stage turning on rhsmcertd `auto_registration` goes;
    - Azure (`azure_image_config_base` of images' rhel-9 YAML): the intel_cstate and skx_edac
      blacklists, grub2 without recovery entries and submenus, counting down on the serial terminal
      only (`azure_common_grub2_config`); images compares CentOS Stream 9 as 9.999, so it gets the
      9.6+ chrony PTP refclock and loses the SR-IOV udev rule (RHEL before 9.6 would get
      `loglevel=3` instead);
    - RHEL for Edge commits and containers get the drop-in keeping grub's boot-success timer off
      where greenboot runs (`edge_commit_image_config` systemd_dropin);
    - dracut configurations go first, the last configured first (`pkg/manifest/os.go` prependStage),
      only behind the kernel-cmdline stage;
    - qcow2 (`qcow2_image_config`) has no `no_timer_check` kernel option;
    - EC2 on x86_64 (`ec2_image_config` "x86_64 specific kopts"): `console=tty0` first and no
      `rd.blacklist=nouveau` (the modprobe blacklist stays);
    - the tar image's archive keeps numeric owners (`pkg/image/archive.go`: NumericOwner);
    - the grub2 stage asks for `compat_version` 2 (`pkg/osbuild/grub2_stage.go` NewGrub2StageOptions);
    - the ESP of the default EL 9 table is labelled `ESP` (rhel-9 `default_partition_table_part_efi`);
    - rpm stages of an ostree commit's tree turn dracut off (`pkg/manifest/os.go`: rpm-ostree
      builds the initramfs itself);
    - OCI archives name the architecture as Go does (`pkg/manifest/oci_container.go`: GoArch);
    - ostree deployments (`pkg/manifest/ostree_deployment.go`): the os is initialised before the
      pull, under images' `rhel-edge` os name (rhel-9 `ostree_edge`);
    - the groups stage runs groupadd with `force` (`pkg/osbuild/groups_stage.go`);
    - `/boot` of the default EL 9 table is 1 GiB, not 500 MiB (rhel-9 `default_partition_table_part_boot`):
      the partitions behind it move and `/` (the last one, filling the disk) gives up the space;
    - an edge commit's tree ends with bootupd's update metadata after the ostree preparation
      (rhel-9 `edge_commit_image_config` bootupd_gen_metadata, from 9.8 and on CentOS Stream 9,
      the only golden release with an edge commit; `pkg/image/ostree_archive.go` reads it for
      the commit archive only, not for the edge container).
    """
    import copy as copymod

    from distros.stages import path_escape

    out = copymod.deepcopy(manifest)
    _kernel_options_and_azure(out, azure="10-rh-enable-for-azure.conf" in json.dumps(manifest))
    for pipeline in out["pipelines"]:
        _dracut_conf_first(pipeline)
        if pipeline["name"] == "image":
            _el9_boot_1gib(pipeline)
        if pipeline["name"] == "ostree-deployment":
            _today_deployment(pipeline)
    if any(p["name"] == "ostree-commit" for p in out["pipelines"]):
        _grub_boot_success_dropin(next(p for p in out["pipelines"] if p["name"] == "os"))
    if any(p["name"] == "commit-archive" for p in out["pipelines"]):
        _bootupd_gen_metadata(next(p for p in out["pipelines"] if p["name"] == "os"))
    for pipeline in out["pipelines"]:
        if "stages" in pipeline:
            pipeline["stages"] = [st for st in pipeline["stages"] if not (
                st["type"] == "org.osbuild.rhsm" and "rhsmcertd" in st["options"].get("subscription-manager", {}))]
        for st in pipeline.get("stages") or []:
            service = st.get("options", {}).get("config", {}).get("Service", {})
            if st["type"] == "org.osbuild.systemd.unit" and isinstance(service.get("Environment"), str):
                key, _, value = service["Environment"].partition("=")
                service["Environment"] = [{"key": key, "value": value}]
            if st["type"] == "org.osbuild.mkfs.fat" and pipeline["name"] == "image" and "label" not in st["options"]:
                st["options"]["label"] = "ESP"
            if st["type"] == "org.osbuild.grub2":
                st["options"] = {"compat_version": 2, **st["options"]}
            if st["type"] == "org.osbuild.tar" and pipeline["name"] == "archive" and \
                    st["options"].get("filename") == "root.tar.xz":
                st["options"]["numeric-owner"] = True
            if st["type"] == "org.osbuild.rpm" and st.get("options", {}).get("ostree_booted"):
                st["options"]["disable_dracut"] = True
            if st["type"] == "org.osbuild.groups":
                st["options"] = {**st["options"], "force": True}
            if st["type"] == "org.osbuild.oci-archive":
                st["options"]["architecture"] = GO_ARCH.get(st["options"]["architecture"], st["options"]["architecture"])
            if st["type"] == "org.osbuild.rpm" and "gpgkeys" in st.get("options", {}):
                st["options"]["gpgkeys"] = sorted(set(st["options"]["gpgkeys"]))
            partitions = [d for d in (st.get("devices") or {}).values()
                          if d.get("type") == "org.osbuild.loopback" and "start" in d.get("options", {})]
            if not partitions:          # only stages on a partitioned disk image
                continue
            renames: dict[str, str] = {}
            for dev in (st.get("devices") or {}).values():
                parent = dev.get("parent", "")
                if dev.get("type") == "org.osbuild.lvm2.lv" and parent.endswith("vg"):
                    renames[parent] = parent[:-2]
            for mount in st.get("mounts") or []:
                if mount["type"] != "org.osbuild.btrfs":
                    renames[mount["source"]] = path_escape(mount["target"])
                mount["name"] = path_escape(mount["target"])
            if not renames:
                continue
            st["devices"] = dict(sorted((renames.get(k, k), v) for k, v in st["devices"].items()))
            for dev in st["devices"].values():
                if "parent" in dev:
                    dev["parent"] = renames.get(dev["parent"], dev["parent"])
            for mount in st.get("mounts") or []:
                mount["source"] = renames.get(mount["source"], mount["source"])
            for path in (st.get("options") or {}).get("paths") or []:
                for key in ("from", "to"):
                    for old, new in renames.items():
                        if path[key].startswith(f"mount://{old}/"):
                            path[key] = f"mount://{new}/" + path[key][len(f"mount://{old}/"):]
                            break
    return out


GO_ARCH = {"x86_64": "amd64", "aarch64": "arm64"}
QCOW2_2023 = "console=tty0 console=ttyS0,115200n8 no_timer_check "
EC2_2023 = "console=ttyS0,115200n8 console=tty0 net.ifnames=0 rd.blacklist=nouveau "
EC2_TODAY = "console=tty0 console=ttyS0,115200n8 net.ifnames=0 "


def _kernel_options_and_azure(manifest: dict, azure: bool) -> None:
    def blacklist(name: str, module: str) -> dict:
        return {"type": "org.osbuild.modprobe",
                "options": {"filename": name, "commands": [{"command": "blacklist", "modulename": module}]}}

    for pipeline in manifest["pipelines"]:
        stages = []
        for st in pipeline.get("stages") or []:
            opts = st.get("options", {})
            if isinstance(opts.get("kernel_opts"), str) and opts["kernel_opts"].startswith(QCOW2_2023):
                opts["kernel_opts"] = opts["kernel_opts"].replace(" no_timer_check", "", 1)
            if isinstance(opts.get("kernel_opts"), str) and opts["kernel_opts"].startswith(EC2_2023):
                opts["kernel_opts"] = EC2_TODAY + opts["kernel_opts"][len(EC2_2023):]
            if azure and st["type"] == "org.osbuild.udev.rules":
                continue
            if st["type"] == "org.osbuild.grub2" and azure:
                opts["config"] = {"default": opts["config"]["default"], "disable_recovery": True,
                                  "disable_submenu": True,
                                  "distributor": "$(sed 's, release .*$,,g' /etc/system-release)",
                                  "terminal": ["serial"], "terminal_input": ["serial"], "terminal_output": ["serial"],
                                  "timeout": 10, "timeout_style": "countdown", "serial": opts["config"]["serial"]}
            stages.append(st)
            if azure and st["type"] == "org.osbuild.timezone":
                stages.append({"type": "org.osbuild.chrony", "options": {"refclocks": [
                    {"driver": {"name": "PHC", "path": "/dev/ptp_hyperv"}, "poll": 3, "dpoll": -2, "offset": 0}]}})
            if azure and st["type"] == "org.osbuild.modprobe" and opts["filename"] == "blacklist-amdgpu.conf":
                stages.append(blacklist("blacklist-intel-cstate.conf", "intel_cstate"))
            if azure and st["type"] == "org.osbuild.modprobe" and opts["filename"] == "blacklist-nouveau.conf":
                stages.append(blacklist("blacklist-skylake-edac.conf", "skx_edac"))
        if "stages" in pipeline:
            pipeline["stages"] = stages


BOOT_2023_SECTORS = 500 * 2048      # 500 MiB in 512-byte sectors
BOOT_TODAY_SECTORS = 1024 * 2048    # 1 GiB
# images' default required directory sizes (/ 1 GiB and /usr 2 GiB) both land on /
ROOT_MIN_SECTORS = 3 * 1024 * 2048
GPT_FOOTER_SECTORS = 33


def _el9_boot_1gib(pipeline: dict) -> None:
    stages = pipeline["stages"]
    sfdisk = next((st for st in stages if st["type"] == "org.osbuild.sfdisk"), None)
    boot_starts = {dev["options"]["start"] for st in stages if st["options"].get("label") == "boot"
                   for dev in (st.get("devices") or {}).values() if "start" in dev.get("options", {})}
    if sfdisk is None:
        return
    parts = sfdisk["options"]["partitions"]
    boot = next((i for i, p in enumerate(parts)
                 if p["start"] in boot_starts and p["size"] == BOOT_2023_SECTORS), None)
    if boot is None:
        return
    delta = BOOT_TODAY_SECTORS - BOOT_2023_SECTORS
    moved: dict[tuple[int, int], tuple[int, int]] = {}
    for i, p in enumerate(parts[boot:], start=boot):
        old = (p["start"], p["size"])
        p["start"] += delta if i > boot else 0
        p["size"] += delta if i == boot else (-delta if i == len(parts) - 1 else 0)
        if i == len(parts) - 1 and p["size"] < ROOT_MIN_SECTORS:
            # the disk grows (whole MiB) so that / keeps its minimum, GPT's backup header behind it
            footer = GPT_FOOTER_SECTORS if sfdisk["options"]["label"] == "gpt" else 0
            end = -(-(p["start"] + ROOT_MIN_SECTORS + footer) // 2048) * 2048
            p["size"] = end - p["start"] - footer
            for st in stages:
                if st["type"] == "org.osbuild.truncate":
                    st["options"]["size"] = str(end * 512)
        moved[old] = (p["start"], p["size"])
    for st in stages:
        for dev in (st.get("devices") or {}).values():
            opts = dev.get("options", {})
            if (opts.get("start"), opts.get("size")) in moved:
                opts["start"], opts["size"] = moved[(opts["start"], opts["size"])]


def _today_deployment(pipeline: dict) -> None:
    stages = pipeline["stages"]
    early = [st for st in stages if st["type"] in ("org.osbuild.ostree.os-init", "org.osbuild.mkdir")][:2]
    rest = [st for st in stages if not any(st is e for e in early)]
    pipeline["stages"] = rest[:1] + early + rest[1:]
    text = json.dumps(pipeline).replace('"osname": "redhat"', '"osname": "rhel-edge"')
    pipeline.update(json.loads(text))


def _dracut_conf_first(pipeline: dict) -> None:
    stages = pipeline.get("stages") or []
    confs = [st for st in stages if st["type"] == "org.osbuild.dracut.conf"]
    if not confs:
        return
    rest = [st for st in stages if st["type"] != "org.osbuild.dracut.conf"]
    at = 1 if rest and rest[0]["type"] == "org.osbuild.kernel-cmdline" else 0
    pipeline["stages"] = rest[:at] + confs[::-1] + rest[at:]


def _grub_boot_success_dropin(pipeline: dict) -> None:
    before = {"org.osbuild." + t for t in ("sysconfig", "systemd-logind", "cloud-init", "modprobe", "dracut.conf")}
    at = max(i for i, st in enumerate(pipeline["stages"]) if st["type"] in before) + 1
    pipeline["stages"].insert(at, {"type": "org.osbuild.systemd.unit", "options": {
        "unit": "grub-boot-success.timer", "dropin": "10-disable-if-greenboot.conf",
        "config": {"Unit": {"ConditionPathExists": "!/usr/libexec/greenboot/greenboot"}}, "unit-type": "global"}})


def _bootupd_gen_metadata(pipeline: dict) -> None:
    at = next(i for i, st in enumerate(pipeline["stages"]) if st["type"] == "org.osbuild.ostree.preptree") + 1
    pipeline["stages"].insert(at, {"type": "org.osbuild.bootupd.gen-metadata"})


def assert_golden_manifest(golden_dir: Path, case: str) -> None:
    """The engine writes the manifest osbuild-composer wrote for the case's request and packages
    (seeded random values compared up to consistent renaming by distros.compare), with
    osbuild/images' current changes where the release follows images (`expected_manifest`)."""
    from distros.cases import manifest_for_case
    from distros.compare import diff

    data = load_case(golden_dir / f"{case}.json.xz")
    difference = diff(expected_manifest(data), manifest_for_case(data))
    assert not difference, f"{case}: generated manifest differs\n{difference[:6000]}"
