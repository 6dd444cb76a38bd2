"""Load the distro and image-type definitions (YAML under `distros/defs/`) and resolve them.

The facts of an image type — package sets, partition tables, image configuration, which
pipelines it is made of — are data so that a new image type or distro release is mostly a new
YAML entry.  Definitions may carry `conditions` anywhere: a list of `{when: {...}, <action>: ...}`
entries that are evaluated for one (distro, arch) before the engine sees the data.

Condition `when` keys (all must hold): `distro` (distro family name such as `rhel`, `centos`,
`fedora`, or a list of them), `not_distro`, `arch` (name or list), `version_lt`, `version_ge`,
`version_eq` (dotted versions compared numerically; for `version_lt`/`version_ge` a release without
a minor version, such as CentOS Stream 9, counts as newer than every minor release of its major).  Actions: `merge` (shallow dict update),
`append` (extend the lists of a dict, key by key), `replace` (the whole node is replaced).
A list inside `conditions` stands for its entries, so one anchored list of conditions can be
reused and extended (`conditions: [*shared, {when: ...}]`), as images merges its named conditions.
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

DEFS_DIR = Path(__file__).parent / "defs"

_SIZE_UNITS = {
    "b": 1, "kb": 1000, "mb": 1000**2, "gb": 1000**3, "tb": 1000**4,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4,
}


class DefinitionError(Exception):
    """The YAML definitions are inconsistent (a bug in the data, not in a request)."""


def parse_size(value: int | str) -> int:
    """Sizes are written as `10 GiB`/`500 MiB` in the data; the engine works in bytes."""
    if isinstance(value, int):
        return value
    m = re.fullmatch(r"\s*(\d+)\s*([A-Za-z]*)\s*", str(value))
    if not m:
        raise DefinitionError(f"bad size {value!r}")
    unit = (m.group(2) or "b").lower()
    if unit not in _SIZE_UNITS:
        raise DefinitionError(f"bad size unit in {value!r}")
    return int(m.group(1)) * _SIZE_UNITS[unit]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", str(version)))


ROLLING_MINOR = 999


def ordering_version(version: str) -> tuple[int, ...]:
    """The version `version_lt`/`version_ge` compare: a release without a minor version
    (CentOS Stream 9, ELN 11, Fedora) is rolling, so it sorts after every minor release of its
    major (osbuild/images compares `centos-9` as 9.999); `version_eq` compares the plain version."""
    parts = version_tuple(version)
    return parts + (ROLLING_MINOR,) if len(parts) == 1 else parts


@dataclass(frozen=True)
class Target:
    """What conditions are evaluated against."""

    family: str        # "rhel", "centos", "fedora", "test"
    version: str       # "9.2", "9", "38"
    arch: str

    def matches(self, when: dict[str, Any]) -> bool:
        for key, want in when.items():
            wants = want if isinstance(want, list) else [want]
            if key == "distro":
                ok = self.family in wants
            elif key == "not_distro":
                ok = self.family not in wants
            elif key == "arch":
                ok = self.arch in wants
            elif key == "version_lt":
                ok = ordering_version(self.version) < version_tuple(want)
            elif key == "version_ge":
                ok = ordering_version(self.version) >= version_tuple(want)
            elif key == "version_eq":
                ok = any(version_tuple(self.version) == version_tuple(w) for w in wants)
            else:
                raise DefinitionError(f"unknown condition key {key!r}")
            if not ok:
                return False
        return True


def flat_conditions(conditions: list[Any]) -> list[Any]:
    """The conditions of a `conditions` list with nested lists (reused anchors) spliced in."""
    out: list[Any] = []
    for cond in conditions:
        out += flat_conditions(cond) if isinstance(cond, list) else [cond]
    return out


def resolve(node: Any, target: Target) -> Any:
    """Return a deep copy of `node` with every `conditions` list applied for `target`."""
    if isinstance(node, list):
        return [resolve(item, target) for item in node]
    if not isinstance(node, dict):
        return node
    result = {k: resolve(v, target) for k, v in node.items() if k != "conditions"}
    for cond in flat_conditions(node.get("conditions") or []):
        if not target.matches(cond.get("when", {})):
            continue
        if "replace" in cond:
            return resolve(cond["replace"], target)
        for k, v in (resolve(cond.get("merge") or {}, target)).items():
            result[k] = v
        for k, v in (resolve(cond.get("append") or {}, target)).items():
            result[k] = list(result.get(k) or []) + list(v)
    return result


@dataclass
class DistroDef:
    """One distro release as the data describes it (already expanded from templates)."""

    name: str
    family: str
    version: str
    product: str
    os_version: str
    release_version: str
    module_platform_id: str
    vendor: str
    runner: str
    default_fs_type: str
    arches: list[str]
    image_types_file: str
    aliases: list[str] = field(default_factory=list)
    build_packages: list[str] = field(default_factory=list)
    # osbuild/images' runner packages (the build root of releases following images starts with them)
    runner_build_packages: list[str] = field(default_factory=list)
    # images' rpmkeys tweak: `binary_path` (rpm stages outside the build root use that rpmkeys,
    # pqrpm joins the build root), `ignore_build_import_failures` (the build root's rpm stage)
    rpmkeys: dict[str, Any] = field(default_factory=dict)
    image_config: dict[str, Any] = field(default_factory=dict)
    host_build_root: bool = False
    # whose manifests the release reproduces where the two differ in naming and stage details
    # (device/mount names, gpgkey order, drop-in shapes): osbuild/images' current code, or the
    # July-2023 osbuild-composer output of releases images no longer defines
    follows: str = "images"
    # the release's code name (RHEL 7 "Maipo"): legacy grub menu entries name the product with it
    codename: str = ""
    raw: dict[str, Any] = field(default_factory=dict)


def _expand(entry: dict[str, Any]) -> list[dict[str, Any]]:
    """A distro entry with `minors:` stands for one release per minor version."""
    minors = entry.get("minors")
    if not minors:
        return [entry]
    out = []
    for minor in minors:
        def sub(v: Any, minor: int = minor) -> Any:
            if isinstance(v, str):
                return v.replace("{minor}", str(minor))
            if isinstance(v, list):
                return [sub(x) for x in v]
            if isinstance(v, dict):
                return {k: sub(x) for k, x in v.items()}
            return v
        e = sub({k: v for k, v in entry.items() if k != "minors"})
        # per-release overrides, e.g. a newer runner or extra arches
        e.update(entry.get("per_minor", {}).get(minor, {}))
        e.pop("per_minor", None)
        out.append(e)
    return out


@lru_cache(maxsize=4)
def load_distros(defs_dir: Path = DEFS_DIR) -> dict[str, DistroDef]:
    from distros.schema import validate_distros

    data = yaml.safe_load((defs_dir / "distros.yaml").read_text())
    # unknown keys (typos) and wrong types are definition errors naming file and key
    validate_distros(data, "distros.yaml")
    distros: dict[str, DistroDef] = {}
    for entry in data["distros"]:
        for e in _expand(entry):
            d = DistroDef(
                name=e["name"], family=e["family"], version=str(e["version"]),
                product=e["product"], os_version=str(e["os_version"]),
                release_version=str(e["release_version"]),
                module_platform_id=e.get("module_platform_id", ""), vendor=e["vendor"],
                runner=e["runner"], default_fs_type=e.get("default_fs_type", "xfs"),
                arches=list(e["arches"]), image_types_file=e["image_types"],
                aliases=list(e.get("aliases", [])),
                build_packages=list(e.get("build_packages", [])),
                runner_build_packages=list(e.get("runner_build_packages", [])),
                rpmkeys=dict(e.get("rpmkeys") or {}),
                image_config=e.get("image_config", {}),
                host_build_root=bool(e.get("host_build_root", False)),
                follows=str(e.get("follows", "images")), codename=e.get("codename", ""), raw=e,
            )
            distros[d.name] = d
    return distros


@lru_cache(maxsize=16)
def load_image_types_file(name: str, defs_dir: Path = DEFS_DIR) -> dict[str, Any]:
    from distros.schema import validate_family

    data = yaml.safe_load((defs_dir / name).read_text())
    if not isinstance(data, dict) or "image_types" not in data:
        raise DefinitionError(f"{name}: no image_types")
    validate_family(data, name)
    return data


def resolved_family_data(distro: DistroDef, arch: str, defs_dir: Path = DEFS_DIR) -> dict[str, Any]:
    """The image-types file of a distro with every condition applied for (distro, arch)."""
    data = load_image_types_file(distro.image_types_file, defs_dir)
    target = Target(distro.family, distro.version, arch)
    return resolve(copy.deepcopy({k: v for k, v in data.items() if not k.startswith(".")}), target)
