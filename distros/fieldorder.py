"""Key order of osbuild stage options as osbuild/images' Go structs write them.

JSON objects are unordered, but a manifest is hashed and compared byte for byte (images' test
manifests, osbuild's pipeline ids are not affected).  Go writes a struct's fields in declaration
order and a map's keys sorted; the engine builds its dicts in whatever order reads best.  This
table names, per stage type, the objects whose order images fixes: a list of field names (the
struct's declaration order; fields not listed keep their place after the listed ones) or
`SORTED` (a Go map).  Paths are keys from the stage, `[]` stepping into every list element.
"""

from __future__ import annotations

from typing import Any

SORTED = "sorted"
Order = list[str] | str

# stage type -> path -> order
STAGE_ORDER: dict[str, dict[tuple[str, ...], Order]] = {
    "org.osbuild.rpm": {
        ("options",): ["dbpath", "gpgkeys", "gpgkeys.fromtree", "disable_dracut", "exclude", "ostree_booted",
                       "kernel_install_env", "install_langs", "rpmkeys"],
    },
    "org.osbuild.grub2": {
        ("options",): ["compat_version", "root_fs_uuid", "boot_fs_uuid", "kernel_opts", "legacy", "uefi",
                       "saved_entry", "greenboot", "write_cmdline", "config", "ignition"],
        ("options", "uefi"): ["vendor", "install", "unified"],
    },
    "org.osbuild.kickstart": {
        ("options", "network", "[]"): ["activate", "bootproto", "device", "onboot", "ip", "ipv6", "gateway",
                                       "ipv6gateway", "nameservers", "netmask", "hostname", "essid", "wpakey"],
    },
    "org.osbuild.chmod": {("options", "items"): SORTED},
    "org.osbuild.chown": {("options", "items"): SORTED},
    "org.osbuild.dracut.conf": {
        ("options", "config"): ["compress", "dracutmodules", "add_dracutmodules", "omit_dracutmodules", "drivers",
                                "add_drivers", "force_drivers", "filesystems", "install_items",
                                "early_microcode", "reproducible"],
    },
    "org.osbuild.tar": {("options",): ["filename", "format", "compression", "acls", "selinux", "xattrs",
                                       "root-node", "paths", "transform", "numeric-owner"]},
    "org.osbuild.squashfs": {("options",): ["filename", "exclude_paths", "compression"]},
    "org.osbuild.skopeo": {("inputs", "images", "references"): SORTED},
    "org.osbuild.oscap.autotailor": {
        # AutotailorKeyValueConfig, or AutotailorJSONConfig (tailored_profile_id, datastream, tailoring_file)
        ("options", "config"): ["new_profile", "tailored_profile_id", "datastream", "profile_id", "tailoring_file",
                                "selected", "unselected"],
    },
    "org.osbuild.vagrant": {("options",): ["provider", "virtualbox", "synced_folders"]},
    "org.osbuild.oci-archive": {("options", "config", "Labels"): SORTED},
}


def _ordered(d: dict[str, Any], order: Order) -> dict[str, Any]:
    if order == SORTED:
        return dict(sorted(d.items()))
    rank = {k: i for i, k in enumerate(order)}
    return dict(sorted(d.items(), key=lambda kv: rank.get(kv[0], len(rank))))


def _apply(node: Any, path: tuple[str, ...], order: Order) -> Any:
    if not path:
        return _ordered(node, order) if isinstance(node, dict) else node
    head, rest = path[0], path[1:]
    if head == "[]":
        if isinstance(node, list):
            return [_apply(x, rest, order) for x in node]
        return node
    if isinstance(node, dict) and head in node:
        node = dict(node)
        node[head] = _apply(node[head], rest, order)
    return node


def order_stage(stage: dict[str, Any]) -> dict[str, Any]:
    for path, order in STAGE_ORDER.get(stage.get("type", ""), {}).items():
        stage = _apply(stage, path, order)
    return stage


def order_manifest(manifest: dict[str, Any]) -> dict[str, Any]:
    """The manifest with every listed object in images' key order (a new dict; stages copied
    only where something moves)."""
    pipelines = []
    for p in manifest.get("pipelines") or []:
        if p.get("stages"):
            p = dict(p, stages=[order_stage(s) for s in p["stages"]])
        pipelines.append(p)
    return dict(manifest, pipelines=pipelines)
