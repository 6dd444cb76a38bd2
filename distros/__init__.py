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
from pathlib import Path
from typing import Any

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
        """The canonical names only, as osbuild-composer's `compose/types` lists them (aliases
        are accepted by `image_type` but not listed)."""
        return sorted(_available(self._family(arch), arch))

    def aliases(self, arch: str) -> dict[str, str]:
        """alias -> canonical image type name, for the types available on `arch`."""
        return _alias_map(_available(self._family(arch), arch), self.name, arch)

    def image_type(self, arch: str, name: str) -> ImageTypeDef:
        data = self._family(arch)
        available = _available(data, arch)
        canonical = name if name in available else _alias_map(available, self.name, arch).get(name)
        if canonical is None:
            raise UnknownImageType(f"{self.name}/{arch} has no image type {name!r}")
        it = available[canonical]
        # a private copy: the resolved definitions are cached and shared between requests
        return ImageTypeDef(name=canonical, distro=self._def, arch=arch,
                            data=copy.deepcopy(_with_family_defaults(data, it)),
                            partition_tables=data.get("partition_tables") or {})


def _available(family: dict[str, Any], arch: str) -> dict[str, dict[str, Any]]:
    """Image types of a resolved family file keyed by their canonical name on this release.

    A definition's YAML key is its name unless a condition sets `name:` — one definition can
    carry the July-2023 name for old releases and today's name (osbuild/images renamed the
    Fedora types after variants) for newer ones, with the old name kept as an alias."""
    out: dict[str, dict[str, Any]] = {}
    for key, it in (family.get("image_types") or {}).items():
        if arch not in (it.get("arches") or []) or it.get("disabled"):
            continue
        name = str(it.get("name") or key)
        if name in out:
            raise DefinitionError(f"image type {name!r} is defined twice")
        out[name] = it
    return out


def _alias_map(available: dict[str, dict[str, Any]], distro: str, arch: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for name, it in available.items():
        for alias in it.get("aliases") or []:
            if alias in available:
                continue          # a real type of that name wins (osbuild/images refuses such data)
            if alias in out and out[alias] != name:
                raise DefinitionError(f"{distro}/{arch}: alias {alias!r} names both {out[alias]!r} and {name!r}")
            out[alias] = name
    return out


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
