"""The shape of the definitions under `distros/defs/`: every key the engine reads, with its type.

The YAML is loaded into plain dicts, so a misspelt key (`no_blss`, `rpm_option`, `image_confg`,
`ostre`) would otherwise be ignored and silently change the manifest.  `validate_family` and
`validate_distros` walk the loaded data (anchors and `<<` merges already expanded) against the
specs below and raise `DefinitionError` naming the file, the path to the key and the key, with the
closest known key as a hint.  `conditions` are checked wherever a mapping may carry them: `when`
keys, and `merge`/`append`/`replace` bodies against the spec of the node they change.

Stage options the engine passes to osbuild unchanged (`sysconfig`, `cloud_init`, `rhsm`, ...) are
`Opaque` here: osbuild's own stage schemas check them (tests/distros/test_schemas.py).
"""

from __future__ import annotations

import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from distros.definitions import DefinitionError

WHEN_KEYS = {"distro", "not_distro", "arch", "version_lt", "version_ge", "version_eq"}
CONDITION_KEYS = {"when", "merge", "append", "replace"}
ARCHES = ("x86_64", "aarch64", "ppc64le", "s390x")


@dataclass(frozen=True)
class Opaque:
    """Anything (passed through to osbuild or to another validator)."""


@dataclass(frozen=True)
class Scalar:
    types: tuple[type, ...]

    def name(self) -> str:
        return " or ".join(t.__name__ for t in self.types)


@dataclass(frozen=True)
class ListOf:
    item: "Spec"


@dataclass(frozen=True)
class MapOf:
    """Free keys (names chosen by the data: image types, pipelines, mountpoints), one value spec."""

    value: "Spec"


@dataclass
class Record:
    """Known keys only; `conditions` allowed.  `arch_keyed`: the arch names may stand for a
    per-arch Record of the same fields (`platform`, a partition table)."""

    fields: dict[str, "Spec"] = field(default_factory=dict)
    arch_keyed: bool = False
    # more keys a node may have, decided by the node (a pipeline's kind declares its own)
    extra: Callable[[dict[str, Any]], set[str] | None] | None = None


Spec = Opaque | Scalar | ListOf | MapOf | Record

STR, BOOL, INT = Scalar((str,)), Scalar((bool,)), Scalar((int,))
SIZE = Scalar((int, str))                 # 10 GiB, 1048576
STRS = ListOf(STR)
ANY = Opaque()


# --- image config ------------------------------------------------------------------------
# keys osbuild-composer/images name; CONFIG_STAGES values are stage options (Opaque)
_STAGE_OPTION_KEYS = ("sysconfig", "systemd_logind", "cloud_init", "modprobe", "dracut_conf", "systemd_unit",
                      "systemd_unit_create", "authselect", "selinux_config", "tuned", "tmpfilesd", "pam_limits_conf",
                      "sysctld", "dnf_config", "dnf_automatic_config", "yum_repos", "yum_config",
                      "gcp_guest_agent_config", "sshd_config", "network_manager", "authconfig", "pwquality", "rhsm",
                      "waagent_config", "udev_rules", "chrony", "firewall", "shell_init", "wsl_conf",
                      "wsl_distribution_conf")

# an image config's files: `mode` is a number, as images' (an os.FileMode decoded from JSON)
FILE_NODE = Record({"path": STR, "data": STR, "mode": INT, "user": Scalar((str, int)),
                    "group": Scalar((str, int)), "ensure_parents": BOOL})
USER = Record({"name": STR, "key": STR, "password": STR, "groups": STRS, "uid": INT, "gid": INT, "home": STR,
               "shell": STR, "description": STR})

IMAGE_CONFIG = Record({
    **{key: ANY for key in _STAGE_OPTION_KEYS},
    "locale": STR, "timezone": STR, "hostname": STR, "keyboard": Record({"keymap": STR, "x11_layouts": STRS}),
    "default_kernel": STR, "kernel_options": STRS, "kernel_options_bootloader": BOOL,
    # osbuild/images' GRUB2Config fields (pkg/osbuild/grub2_stage.go)
    "grub2_config": Record({"default": STR, "disable_recovery": BOOL, "disable_submenu": BOOL, "distributor": STR,
                            "terminal": STRS, "terminal_input": STRS, "terminal_output": STRS, "timeout": INT,
                            "timeout_style": STR, "serial": STR}),
    "enabled_services": STRS, "disabled_services": STRS, "masked_services": STRS, "default_target": STR,
    "selinux": STR, "exclude_docs": BOOL, "install_weak_deps": BOOL, "rhsm_facts": BOOL,
    "lock_root_user": BOOL, "machine_id_uninitialized": BOOL, "bootupd_gen_metadata": BOOL,
    "versionlock_packages": STRS,
    "selinux_force_relabel": BOOL,
    "users": ListOf(USER), "files": ListOf(FILE_NODE), "gpgkey_files": STRS, "oscap_datastream": STR,
    # systemd presets written into the tree (images' `presets`: units ignition/FDO enable on first boot)
    "presets": ListOf(Record({"name": STR, "state": STR})),
})

# --- partition tables ----------------------------------------------------------------------
_FS = {"type": STR, "mountpoint": STR, "label": STR, "uuid": STR, "fstab_options": STR, "fstab_freq": INT,
       "fstab_passno": INT}
FILESYSTEM = Record(dict(_FS))
LOGICAL_VOLUME = Record({"name": STR, "size": SIZE, "payload": FILESYSTEM})
# one Record for every payload kind (kind: lvm | btrfs | luks, or a filesystem)
PAYLOAD = Record({**_FS, "kind": STR, "name": STR, "description": STR, "volumes": ListOf(LOGICAL_VOLUME),
                  "subvolumes": ListOf(Record({"name": STR, "mountpoint": STR, "compress": STR})),
                  "cipher": STR, "passphrase": STR,
                  "pbkdf": Record({"method": STR, "memory": INT, "iterations": INT, "parallelism": INT}),
                  "clevis": Record({"pin": STR, "policy": STR, "remove_passphrase": BOOL})})
PAYLOAD.fields["payload"] = PAYLOAD        # LUKS holds a payload of its own
PARTITION = Record({"size": SIZE, "type": STR, "uuid": STR, "bootable": BOOL, "payload": PAYLOAD})
PARTITION_TABLE = Record({"type": STR, "uuid": STR, "size": SIZE, "start_offset": SIZE,
                          "partitions": ListOf(PARTITION)}, arch_keyed=True)

# --- platforms -----------------------------------------------------------------------------
PLATFORM = Record({"bootloader": STR, "bios": STR, "uefi": BOOL, "uefi_unified": BOOL, "uefi_vendor": STR,
                   "packages": STRS, "build_packages": STRS, "boot_files": ListOf(STRS)}, arch_keyed=True)

# --- image types ---------------------------------------------------------------------------
def _kind_keys(node: dict[str, Any]) -> set[str] | None:
    """Keys a pipeline kind reads beyond the built-in kinds' (PipelineKind.spec_keys); None for a
    kind not registered (yet): the engine refuses an unknown kind when the type is used."""
    from distros.engine import PIPELINE_KINDS, kind_of

    try:
        kind = kind_of(node)          # registers the built-in kinds
    except DefinitionError:
        return None
    return set(getattr(kind, "spec_keys", ())) if node.get("kind") in PIPELINE_KINDS else None


PIPELINE = Record({"name": STR, "kind": STR, "filename": STR, "input": STR, "tree": STR, "format": ANY,
                   "options": ANY, "config": ANY, "ostree": BOOL, "installer_payload": BOOL, "payload": STR,
                   "simplified": BOOL, "size": SIZE, "provider": STR, "oci_arch_names": ANY,
                   "etc_group_members": STRS}, extra=_kind_keys)
PACKAGE_SET = Record({"include": STRS, "exclude": STRS})
INSTALLER = Record({"variant": STR, "os_name": STR, "live": BOOL, "netinst": BOOL, "users_module": STR,
                    "anaconda_modules": STRS, "additional_dracut_modules": STRS, "additional_drivers": STRS,
                    "squashfs_compression": STR, "kickstart_in_iso_root": BOOL, "kernel_opts": ANY, "kernel": STR,
                    # images' installer_config (distros/pipelines/installers.py reads it)
                    "today": ANY})
OSTREE = Record({"ignition_platform": STR, "ref": STR, "remote": STR, "remote_url": STR, "remote_content_url": STR,
                 "remote_gpgkey_paths": STRS, "os_name": STR, "keyboard": STR, "locale": STR, "kernel_opts": ANY,
                 "sysroot_readonly": BOOL, "ignition": BOOL, "lock_root_user": BOOL, "use_remotes": BOOL})
REQUEST_RULES = Record({"allowed": STRS, "kernel_append": BOOL, "requires_url": BOOL, "containers": BOOL,
                        "deprecated_accounts": BOOL, "installation_device": BOOL})
IMAGE_TYPE = Record({
    "name": STR, "aliases": STRS, "filename": STR, "mime_type": STR, "default_size": SIZE, "size_align": SIZE,
    "arches": STRS, "bootable": BOOL, "partition_table": STR, "platform": PLATFORM,
    "pipelines": ListOf(PIPELINE), "exports": STRS, "package_sets": MapOf(ListOf(PACKAGE_SET)),
    "image_config": IMAGE_CONFIG, "required_sizes": MapOf(SIZE), "iso_label": STR, "mount_configuration": STR,
    "dracut_conf_first": BOOL, "rpm_options": ANY, "no_bls": BOOL, "disabled": BOOL, "rpm_ostree": BOOL,
    "partitioning_tool": STR,
    "boot_iso": BOOL, "request_rules": REQUEST_RULES, "ostree": OSTREE, "installer": INSTALLER,
    # images' iso_config (distros/isoboot.py reads it)
    "iso": ANY,
})

FAMILY_FILE = Record({"platforms": MapOf(PLATFORM), "partition_tables": MapOf(PARTITION_TABLE),
                      "image_types": MapOf(IMAGE_TYPE)})

# --- distros.yaml --------------------------------------------------------------------------
DISTRO_FIELDS: dict[str, Spec] = {
    "name": STR, "aliases": STRS, "family": STR, "version": Scalar((str, int)), "product": STR, "codename": STR,
    "os_version": Scalar((str, int)), "release_version": Scalar((str, int)), "module_platform_id": STR,
    "vendor": STR, "runner": STR, "runner_build_packages": STRS, "iso_label": STR, "default_fs_type": STR,
    "arches": STRS, "image_types": STR, "build_packages": STRS, "image_config": IMAGE_CONFIG,
    "host_build_root": BOOL, "follows": STR, "minors": ListOf(INT),
    # images' rpmkeys distro tweak (DistroDef.rpmkeys)
    "rpmkeys": Record({"binary_path": STR, "ignore_build_import_failures": BOOL}),
}
DISTRO = Record({**DISTRO_FIELDS, "per_minor": MapOf(Record(dict(DISTRO_FIELDS)))})
DISTROS_FILE = Record({"distros": ListOf(DISTRO)})


# --- the walk ------------------------------------------------------------------------------
def validate_family(data: dict[str, Any], filename: str) -> None:
    _check(FAMILY_FILE, _public(data), filename, "")


def validate_distros(data: dict[str, Any], filename: str) -> None:
    _check(DISTROS_FILE, _public(data), filename, "")


def _public(data: dict[str, Any]) -> dict[str, Any]:
    # `.name:` keys only hold YAML anchors; their content is checked where it is used
    if not isinstance(data, dict):
        return data
    return {k: v for k, v in data.items() if not str(k).startswith(".")}


def _fail(filename: str, path: str, message: str) -> None:
    raise DefinitionError(f"{filename}: {path or '(top)'}: {message}")


def _check(spec: Spec, node: Any, filename: str, path: str) -> None:
    if isinstance(spec, Opaque):
        return
    if node is None:
        return                      # an absent value (or a condition clearing one)
    if isinstance(spec, Scalar):
        if not isinstance(node, spec.types) or (isinstance(node, bool) and bool not in spec.types):
            _fail(filename, path, f"expected {spec.name()}, got {type(node).__name__} {node!r}")
        return
    if isinstance(spec, ListOf):
        if not isinstance(node, list):
            _fail(filename, path, f"expected a list, got {type(node).__name__}")
        for i, item in enumerate(node):
            _check(spec.item, item, filename, f"{path}[{i}]")
        return
    if not isinstance(node, dict):
        _fail(filename, path, f"expected a mapping, got {type(node).__name__} {node!r}")
    if isinstance(spec, MapOf):
        for key, value in node.items():
            if key == "conditions":
                # a map's conditions merge (or append) entries of the map's value type
                _check_conditions(Record({}, extra=lambda _node: None), value, filename, _join(path, key))
                for i, cond in enumerate(value):
                    for verb in ("merge", "append"):
                        for k, v in ((cond or {}).get(verb) or {}).items():
                            _check(spec.value, v, filename, f"{path}.conditions[{i}].{verb}.{k}")
                continue
            _check(spec.value, value, filename, _join(path, key))
        return
    _check_record(spec, node, filename, path)


def _check_record(spec: Record, node: dict[str, Any], filename: str, path: str) -> None:
    extra: set[str] | None = set()
    if spec.extra is not None:
        extra = spec.extra(node)
    for key, value in node.items():
        here = _join(path, key)
        if key == "conditions":
            _check_conditions(spec, value, filename, here)
        elif key in spec.fields:
            _check(spec.fields[key], value, filename, here)
        elif spec.arch_keyed and key in ARCHES:
            _check(Record(spec.fields), value, filename, here)
        elif extra is None or key in extra:
            continue
        else:
            known = sorted(spec.fields) + (list(ARCHES) if spec.arch_keyed else [])
            hint = difflib.get_close_matches(str(key), known, n=1)
            _fail(filename, path, f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))


def _check_conditions(spec: Record, conditions: Any, filename: str, path: str) -> None:
    if not isinstance(conditions, list):
        _fail(filename, path, "expected a list of {when, merge|append|replace}")
    for i, cond in enumerate(conditions):
        if isinstance(cond, list):  # a reused list of conditions, spliced in by the resolver
            _check_conditions(spec, cond, filename, f"{path}[{i}]")
            continue
        here = f"{path}[{i}]"
        if not isinstance(cond, dict):
            _fail(filename, here, "expected a mapping {when, merge|append|replace}")
        for key in cond:
            if key not in CONDITION_KEYS:
                hint = difflib.get_close_matches(str(key), sorted(CONDITION_KEYS), n=1)
                _fail(filename, here, f"unknown key {key!r}" + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        for key in cond.get("when") or {}:
            if key not in WHEN_KEYS:
                hint = difflib.get_close_matches(str(key), sorted(WHEN_KEYS), n=1)
                _fail(filename, f"{here}.when", f"unknown condition {key!r}"
                      + (f" (did you mean {hint[0]!r}?)" if hint else ""))
        if "merge" in cond:
            _check_record(spec, cond["merge"] or {}, filename, f"{here}.merge")
        if "append" in cond:
            _check_record(spec, cond["append"] or {}, filename, f"{here}.append")
        if "replace" in cond:
            _check(spec, cond["replace"], filename, f"{here}.replace")


def _join(path: str, key: Any) -> str:
    return f"{path}.{key}" if path else str(key)
