"""Modularity filtering, so that libsolv sees the same packages dnf would.

A repository with modules metadata (EL 8/9 AppStream) carries packages that belong to module
streams.  dnf hides every such package unless its stream is active (enabled, or the module's
default stream), and for an active stream it also hides the non-modular packages of the same
names.  Without this a plain solver would pick e.g. `nginx` from a non-default module stream
instead of the non-modular `nginx` dnf installs.  Repositories marked `module_hotfixes` are
exempt, as in dnf.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.records import Record, field
from depsolve.metadata import atomic_write, open_document

_CACHE_VERSION = 2


class ModuleStream(Record, frozen=True):
    name: str
    stream: str
    version: int
    context: str
    arch: str
    artifacts: tuple[str, ...]
    profiles: dict[str, list[str]] = field(default_factory=dict, compare=False)


class ModuleIndex(Record):
    """The streams and default streams of a set of repositories."""

    streams: list[ModuleStream] = field(default_factory=list)
    defaults: dict[str, str] = field(default_factory=dict)
    # "module:stream" -> the profiles installed when none is named
    default_profiles: dict[str, list[str]] = field(default_factory=dict)

    def extend(self, other: "ModuleIndex") -> None:
        self.streams.extend(other.streams)
        for module, stream in other.defaults.items():
            self.defaults.setdefault(module, stream)
        for key, profiles in other.default_profiles.items():
            self.default_profiles.setdefault(key, profiles)

    def has_stream(self, name: str, stream: str) -> bool:
        return any(s.name == name and s.stream == stream for s in self.streams)

    def profile_packages(self, name: str, stream: str, profile: str | None) -> list[str] | None:
        """Package names of a profile (the default profiles when None); None if no such one."""
        wanted = [profile] if profile else self.default_profiles.get(f"{name}:{stream}", [])
        if not wanted:
            return None
        names: list[str] = []
        found = False
        for s in self.streams:
            if s.name != name or s.stream != stream:
                continue
            for want in wanted:
                if want in s.profiles:
                    found = True
                    names += [n for n in s.profiles[want] if n not in names]
        return names if found else None

    def exclusions(self, enabled: dict[str, str] | None = None
                   ) -> tuple[set[str], set[str]]:
        """NEVRAs hidden (artifacts of inactive streams) and names hidden (shadowed by active ones).

        NEVRAs are spelled `name-epoch:version-release.arch` with the epoch always present.
        """
        active = dict(self.defaults)
        active.update(enabled or {})
        hidden: set[str] = set()
        shown: set[str] = set()
        shadowed_names: set[str] = set()
        for stream in self.streams:
            nevras = {normalise_nevra(a) for a in stream.artifacts}
            if active.get(stream.name) == stream.stream:
                shown |= nevras
                for nevra in nevras:
                    name, arch = _name_arch(nevra)
                    if arch != "src":
                        shadowed_names.add(name)
            else:
                hidden |= nevras
        return hidden - shown, shadowed_names


def _name_arch(nevra: str) -> tuple[str, str]:
    rest, _, arch = nevra.rpartition(".")
    name = rest.rsplit("-", 2)[0]
    return name, arch


def normalise_nevra(nevra: str) -> str:
    """`name-[epoch:]version-release.arch` with the epoch always written."""
    rest, _, arch = nevra.rpartition(".")
    name_version, _, release = rest.rpartition("-")
    name, _, version = name_version.rpartition("-")
    if ":" not in version:
        version = "0:" + version
    return f"{name}-{version}-{release}.{arch}"


def _parse(documents: Iterable[Any]) -> ModuleIndex:
    index = ModuleIndex()
    for doc in documents:
        if not isinstance(doc, dict):
            continue
        kind = doc.get("document")
        data = doc.get("data") or {}
        if kind == "modulemd":
            artifacts = ((data.get("artifacts") or {}).get("rpms")) or []
            profiles = {str(name): [str(r) for r in ((body or {}).get("rpms") or [])]
                        for name, body in (data.get("profiles") or {}).items()}
            index.streams.append(ModuleStream(
                name=str(data.get("name", "")), stream=str(data.get("stream", "")),
                version=int(data.get("version", 0) or 0), context=str(data.get("context", "")),
                arch=str(data.get("arch", "")), artifacts=tuple(str(a) for a in artifacts),
                profiles=profiles))
        elif kind == "modulemd-defaults":
            module = str(data.get("module") or "")
            if module and data.get("stream") is not None:
                index.defaults[module] = str(data["stream"])
            for stream, names in (data.get("profiles") or {}).items():
                index.default_profiles[f"{module}:{stream}"] = [str(n) for n in names or []]
    return index


def load_modules(path: Path, cache_path: Path | None = None) -> ModuleIndex:
    """The module index of one modules.yaml, via a JSON cache next to it when given."""
    if cache_path is not None:
        try:
            cached = json.loads(cache_path.read_text())
            if cached.get("version") == _CACHE_VERSION:
                return ModuleIndex(
                    streams=[ModuleStream(**{**s, "artifacts": tuple(s["artifacts"])})
                             for s in cached["streams"]],
                    defaults=cached["defaults"], default_profiles=cached["default_profiles"])
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            pass
    import yaml

    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    with open_document(path) as stream:
        index = _parse(yaml.load_all(stream, Loader=loader))
    if cache_path is not None:
        payload = {"version": _CACHE_VERSION, "defaults": index.defaults,
                   "default_profiles": index.default_profiles,
                   "streams": [{**s.__dict__, "artifacts": list(s.artifacts)} for s in index.streams]}
        atomic_write(cache_path, json.dumps(payload).encode())
    return index
