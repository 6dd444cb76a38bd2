"""Package groups (`@core`) and environments (`@^minimal-environment`) from comps metadata.

The libsolv wheel has no comps reader, and a group is only a name → package names mapping for
the depsolver, so comps is read here.  As dnf does by default (`group_package_types`), a group
install means its mandatory and default packages, plus each conditional package whose
condition package is part of the transaction; optional packages are left out.  Groups from
several repositories with the same id are merged.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

from core.records import Record, field
from depsolve.metadata import atomic_write, open_document

if TYPE_CHECKING:
    import xml.etree.ElementTree as ET

INSTALLED_TYPES = ("mandatory", "default")
_CACHE_VERSION = 1


class Group(Record):
    id: str
    name: str
    description: str = ""
    # package name → type (mandatory, default, optional, conditional)
    packages: dict[str, str] = field(default_factory=dict)
    # conditional package name → the package whose presence pulls it in
    conditions: dict[str, str] = field(default_factory=dict)

    def install_names(self) -> list[str]:
        return [name for name, kind in self.packages.items() if kind in INSTALLED_TYPES]


class Environment(Record):
    id: str
    name: str
    groups: list[str] = field(default_factory=list)


def _text(node: ET.Element, tag: str) -> str:
    # The untranslated element is the one without xml:lang.
    for child in node.findall(tag):
        if not child.attrib:
            return (child.text or "").strip()
    return ""


class Comps:
    """Every group and environment of a set of repositories, found by id or by name."""

    def __init__(self) -> None:
        self.groups: dict[str, Group] = {}
        self.environments: dict[str, Environment] = {}

    def load(self, path: Path, cache_path: Path | None = None) -> None:
        """Add one comps document's groups and environments (merged by id, first wins).

        With `cache_path`, the document's own groups and environments are kept there as JSON
        (parsing the XML is most of a warm start's comps time) and read back next time.
        """
        if cache_path is None:
            self._parse(path)
            return
        own = Comps._read_cache(cache_path)
        if own is None:
            own = Comps()
            own._parse(path)
            payload = {"version": _CACHE_VERSION,
                       "groups": [g.__dict__ for g in own.groups.values()],
                       "environments": [e.__dict__ for e in own.environments.values()]}
            with contextlib.suppress(OSError):  # a read-only cache still solves
                atomic_write(cache_path, json.dumps(payload).encode())
        self._merge(own)

    @staticmethod
    def _read_cache(cache_path: Path) -> "Comps | None":
        try:
            payload = json.loads(cache_path.read_bytes())
            if payload.get("version") != _CACHE_VERSION:
                return None
            comps = Comps()
            for g in payload["groups"]:
                comps.groups[g["id"]] = Group(**g)
            for e in payload["environments"]:
                comps.environments[e["id"]] = Environment(**e)
            return comps
        except (OSError, ValueError, KeyError, TypeError, AttributeError):
            return None

    def _merge(self, other: "Comps") -> None:
        """What parsing `other`'s document after this one's would have given."""
        for gid, theirs in other.groups.items():
            group = self.groups.setdefault(gid, Group(gid, theirs.name, theirs.description))
            for name, kind in theirs.packages.items():
                group.packages.setdefault(name, kind)
            for name, condition in theirs.conditions.items():
                group.conditions.setdefault(name, condition)
        for eid, theirs_env in other.environments.items():
            env = self.environments.setdefault(eid, Environment(eid, theirs_env.name))
            for gid in theirs_env.groups:
                if gid not in env.groups:
                    env.groups.append(gid)

    def _parse(self, path: Path) -> None:
        # Imported here: a warm run reads the parsed groups from their JSON and never parses XML.
        import xml.etree.ElementTree as ET

        with open_document(path) as stream:
            root = ET.parse(stream).getroot()
        for node in root.iter("group"):
            gid = _text(node, "id")
            if not gid:
                continue
            group = self.groups.setdefault(gid, Group(gid, _text(node, "name") or gid,
                                                      _text(node, "description")))
            for req in node.iter("packagereq"):
                name = (req.text or "").strip()
                if not name:
                    continue
                kind = req.get("type", "mandatory")
                group.packages.setdefault(name, kind)
                if kind == "conditional" and req.get("requires"):
                    group.conditions.setdefault(name, req.get("requires", ""))
        for node in root.iter("environment"):
            eid = _text(node, "id")
            if not eid:
                continue
            env = self.environments.setdefault(eid, Environment(eid, _text(node, "name") or eid))
            grouplist = node.find("grouplist")
            for gid_node in (grouplist.iter("groupid") if grouplist is not None else ()):
                gid = (gid_node.text or "").strip()
                if gid and gid not in env.groups:
                    env.groups.append(gid)

    @classmethod
    def from_files(cls, paths: Iterable[Path | tuple[Path, Path]]) -> "Comps":
        """Comps of several documents, each a path or (path, its JSON cache path)."""
        comps = cls()
        for item in paths:
            if isinstance(item, tuple):
                comps.load(*item)
            else:
                comps.load(item)
        return comps

    def find_group(self, spec: str) -> Group | None:
        if spec in self.groups:
            return self.groups[spec]
        lowered = spec.lower()
        for group in self.groups.values():
            if group.id.lower() == lowered or group.name.lower() == lowered:
                return group
        return None

    def find_environment(self, spec: str) -> Environment | None:
        if spec in self.environments:
            return self.environments[spec]
        lowered = spec.lower()
        for env in self.environments.values():
            if env.id.lower() == lowered or env.name.lower() == lowered:
                return env
        return None

    def expand(self, spec: str) -> tuple[list[str], dict[str, str]] | None:
        """Package names and conditional packages of `@spec` (without the `@`), or None.

        `^name` (dnf's spelling) or a name that only an environment has expands the
        environment's groups.
        """
        groups: list[Group] = []
        if spec.startswith("^"):
            env = self.find_environment(spec[1:])
            if env is None:
                return None
            groups = [g for g in (self.find_group(gid) for gid in env.groups) if g]
        else:
            group = self.find_group(spec)
            if group is not None:
                groups = [group]
            else:
                env = self.find_environment(spec)
                if env is None:
                    return None
                groups = [g for g in (self.find_group(gid) for gid in env.groups) if g]
        names: list[str] = []
        conditions: dict[str, str] = {}
        for group in groups:
            for name in group.install_names():
                if name not in names:
                    names.append(name)
            conditions.update(group.conditions)
        return names, conditions
