"""Distro, architecture and image-type definitions and the engine turning them into osbuild manifests.

Public interface (used by the API and the build pipeline)::

    import distros
    distros.list_distros() -> list[str]
    d = distros.get_distro("centos-9")            # raises UnknownDistro
    d.arches(); d.image_types(arch)
    it = d.image_type(arch, "qcow2")               # raises UnknownImageType
    it.filename, it.mime_type, it.default_size, it.exports
    it.check(blueprint, options) -> warnings       # raises RequestError (Weldr ManifestCreationFailed)
    it.package_sets(blueprint, options)            # {pipeline: [PackageSet dict, ...]} chains
    it.manifest(blueprint, packages, repositories, options, seed) -> manifest dict

The data lives in `distros/defs/`; `distros.engine` explains how to add image types and pipeline
kinds.  Manifests are made without touching the network (`distros.gpgkeys` fetches key URLs
beforehand, `distros.inputs` resolves ostree commits and containers for the installer types).
"""

from __future__ import annotations

import copy
from functools import lru_cache
from typing import Any

from pathlib import Path

from distros.definitions import DEFS_DIR, DefinitionError, DistroDef, load_distros, resolved_family_data
from distros.engine import ImageTypeDef, ManifestOptions
from distros.errors import RequestError

__all__ = ["list_distros", "get_distro", "Distro", "ImageTypeDef", "ManifestOptions",
           "UnknownDistro", "UnknownImageType", "UnknownArch", "DefinitionError", "RequestError"]


class UnknownDistro(LookupError):
    pass


class UnknownArch(LookupError):
    pass


class UnknownImageType(LookupError):
    pass


class Distro:
    def __init__(self, d: DistroDef, defs_dir: Path = DEFS_DIR) -> None:
        self._def = d
        self._defs_dir = defs_dir
        self.name = d.name
        self.product = d.product
        self.os_version = d.os_version
        self.release_version = d.release_version
        self.module_platform_id = d.module_platform_id
        self.vendor = d.vendor
        self.runner = d.runner

    @property
    def definition(self) -> DistroDef:
        return self._def

    def arches(self) -> list[str]:
        return list(self._def.arches)

    def _family(self, arch: str) -> dict[str, Any]:
        if arch not in self._def.arches:
            raise UnknownArch(f"{self.name} has no architecture {arch!r}")
        return _resolved(self._defs_dir, self.name, arch)

    def image_types(self, arch: str) -> list[str]:
        data = self._family(arch)
        return sorted(name for name, it in data["image_types"].items()
                      if arch in (it.get("arches") or []) and not it.get("disabled"))

    def image_type(self, arch: str, name: str) -> ImageTypeDef:
        data = self._family(arch)
        types = data["image_types"]
        key = name
        if key not in types:
            key = next((n for n, it in types.items() if name in (it.get("aliases") or [])), name)
        it = types.get(key)
        if it is None or arch not in (it.get("arches") or []) or it.get("disabled"):
            raise UnknownImageType(f"{self.name}/{arch} has no image type {name!r}")
        # a private copy: the resolved definitions are cached and shared between requests
        return ImageTypeDef(name=key, distro=self._def, arch=arch,
                            data=copy.deepcopy(_with_family_defaults(data, it)),
                            partition_tables=data.get("partition_tables") or {})


def _with_family_defaults(family: dict[str, Any], it: dict[str, Any]) -> dict[str, Any]:
    out = dict(it)
    out.setdefault("platforms", family.get("platforms") or {})
    return out


@lru_cache(maxsize=256)
def _resolved(defs_dir: Path, distro: str, arch: str) -> dict[str, Any]:
    return resolved_family_data(load_distros(defs_dir)[distro], arch, defs_dir)


def load(defs_dir: Path) -> dict[str, Distro]:
    """The distros of another definitions directory (tests, experiments with new data)."""
    return {name: Distro(d, defs_dir) for name, d in load_distros(defs_dir).items()}


def _aliases() -> dict[str, str]:
    out = {}
    for name, d in load_distros().items():
        for alias in d.aliases:
            out[alias] = name
    return out


def list_distros() -> list[str]:
    return sorted(load_distros())


def canonical_name(name: str) -> str:
    """Accept osbuild-composer's older spellings too (`rhel-92` for `rhel-9.2`)."""
    distros = load_distros()
    if name in distros:
        return name
    alias = _aliases().get(name)
    if alias is None:
        raise UnknownDistro(f"unknown distro {name!r}")
    return alias


def get_distro(name: str) -> Distro:
    return Distro(load_distros()[canonical_name(name)])
