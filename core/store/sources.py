"""Package sources: the read-only system repositories and the user's sources.

System repositories come from `<repositories_dir>/<distro>.json` (osbuild/images' schema: per
arch, a list of `{name, baseurl|metalink|mirrorlist, gpgkey|gpgkeys, check_gpg, rhsm, ...}`); the
set of those files is also the set of distros the service offers.  User sources live in the store
in the v1 shape (`id` is the key) and are shown in either API version's shape.  DNF variables are
kept as written and substituted when a source is read, for the distro being asked about.
"""

from __future__ import annotations

import functools
import json
import logging
import platform
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from core.db import Database

log = logging.getLogger(__name__)

SOURCE_TYPES = ("yum-baseurl", "yum-mirrorlist", "yum-metalink")
# ids appear in comma-separated paths, so no ',' or '*' (and no '.'/'..' alone)
VALID_SOURCE_ID = re.compile(r"^(?!\.{1,2}$)[a-zA-Z0-9_.:+-]+$")

class SourceError(ValueError):
    """A source document that cannot be accepted; the message is the reason."""


# --- distros and system repositories ----------------------------------------------------------

@functools.lru_cache(maxsize=64)
def _load_repo_file(path: str, mtime: float) -> dict[str, list[dict[str, Any]]]:
    with open(path, encoding="utf-8") as fh:
        data = json.load(fh)
    if not isinstance(data, dict):
        raise ValueError(f"{path}: not an object of arches")
    return data


def repo_file(config: Any, distro: str) -> dict[str, list[dict[str, Any]]]:
    """The parsed `<distro>.json`, {} when missing or unreadable (logged)."""
    path = Path(config.repositories_dir) / f"{distro}.json"
    try:
        return _load_repo_file(str(path), path.stat().st_mtime)
    except FileNotFoundError:
        return {}
    except (OSError, ValueError) as exc:
        log.warning("ignoring repository file %s: %s", path, exc)
        return {}


def host_distro() -> str | None:
    """`<ID>-<VERSION_ID>` from os-release (e.g. `fedora-43`, `rhel-9.6`), None when unknown."""
    for path in ("/etc/os-release", "/usr/lib/os-release"):
        try:
            fields = dict(line.rstrip("\n").split("=", 1) for line in open(path, encoding="utf-8")
                          if "=" in line)
        except OSError:
            continue
        ident = fields.get("ID", "").strip('"')
        version = fields.get("VERSION_ID", "").strip('"')
        if ident and version:
            return f"{ident}-{version}"
    return None


def releasever(distro: str) -> str:
    """DNF's $releasever: the major version (`rhel-9.6` → `9`, `fedora-43` → `43`)."""
    version = distro.rsplit("-", 1)[-1]
    return version.split(".")[0]


def host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def system_repositories(config: Any, distro: str, arch: str) -> list[dict[str, Any]]:
    """The raw repository entries of a distro/arch, as in the JSON file."""
    return [dict(r) for r in repo_file(config, distro).get(arch, []) if isinstance(r, dict)]


def _system_source(repo: dict[str, Any]) -> dict[str, Any]:
    """A repository entry in the Weldr v1 source shape."""
    if repo.get("metalink"):
        kind, url = "yum-metalink", repo["metalink"]
    elif repo.get("mirrorlist"):
        kind, url = "yum-mirrorlist", repo["mirrorlist"]
    else:
        kind, url = "yum-baseurl", repo.get("baseurl", "")
        if isinstance(url, list):
            url = url[0] if url else ""
    keys = list(repo.get("gpgkeys") or [])
    if repo.get("gpgkey"):
        keys.append(repo["gpgkey"])
    source = {"id": repo.get("name", ""), "name": repo.get("name", ""), "type": kind, "url": url,
              "check_gpg": bool(repo.get("check_gpg", False)),
              "check_ssl": not bool(repo.get("ignore_ssl", False)), "system": True}
    if keys:
        source["gpgkeys"] = keys
    source["rhsm"] = bool(repo.get("rhsm", False))
    return source


def system_sources(config: Any, distro: str, arch: str) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for repo in system_repositories(config, distro, arch):
        if repo.get("image_type_tags"):
            continue  # only for some image types (e.g. gce): not a general package source
        source = _system_source(repo)
        out.setdefault(source["id"], source)
    return out


# --- the user's sources -------------------------------------------------------------------

def _bool(value: Any, key: str) -> bool:
    if isinstance(value, bool):
        return value
    raise SourceError(f"'{key}' must be a boolean")


def _str_list(value: Any, key: str) -> list[str]:
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SourceError(f"'{key}' must be a list of strings")
    return list(value)


def normalise_source(doc: dict[str, Any], api_version: int,
                     known_distros: Iterable[str] | None = None) -> dict[str, Any]:
    """A posted source (v0 or v1 shape, JSON or TOML already parsed) → our stored v1 shape.

    osbuild-composer also takes the TOML `[<id>]` table form; its key becomes the id.
    """
    if doc and all(isinstance(v, dict) for v in doc.values()) and not (
            {"name", "url", "type", "id"} & doc.keys()):
        key = sorted(doc)[0]
        doc = dict(doc[key])
        doc.setdefault("id", key)
    if api_version >= 1:
        if not doc.get("id"):
            raise SourceError("'id' field is missing from request")
    for key in ("name", "type", "url"):
        if key not in doc or doc[key] in (None, ""):
            raise SourceError(f"'{key}' field is missing from request")
    for key in ("id", "name", "type", "url", "proxy"):
        if key in doc and not isinstance(doc[key], str):
            raise SourceError(f"'{key}' must be a string")
    if doc["type"] not in SOURCE_TYPES:
        raise SourceError(f"unknown source type '{doc['type']}', must be one of "
                          f"{', '.join(SOURCE_TYPES)}")
    source: dict[str, Any] = {
        "id": doc["id"] if api_version >= 1 else doc["name"],
        "name": doc["name"], "type": doc["type"], "url": doc["url"],
        "check_gpg": _bool(doc.get("check_gpg", False), "check_gpg"),
        "check_ssl": _bool(doc.get("check_ssl", False), "check_ssl"),
        "system": False,
    }
    if doc.get("proxy"):
        source["proxy"] = doc["proxy"]
    keys = doc.get("gpgkeys", doc.get("gpgkey_urls"))
    if keys:
        source["gpgkeys"] = _str_list(keys, "gpgkeys")
    source["rhsm"] = _bool(doc.get("rhsm", False), "rhsm")
    if doc.get("distros"):
        wanted = _str_list(doc["distros"], "distros")
        if known_distros is not None:
            bad = [d for d in wanted if d not in set(known_distros)]
            if bad:
                raise SourceError(f"Invalid distributions: {','.join(bad)}")
        source["distros"] = wanted
    return source


def substitute(source: dict[str, Any], distro: str, arch: str) -> dict[str, Any]:
    """DNF variables replaced for one distro/arch, as a client sees them."""
    rel = releasever(distro)

    def sub(text: str) -> str:
        return text.replace("$releasever", rel).replace("$basearch", arch)

    out = dict(source)
    for key in ("name", "url", "proxy"):
        if isinstance(out.get(key), str):
            out[key] = sub(out[key])
    if out.get("gpgkeys"):
        out["gpgkeys"] = [sub(k) for k in out["gpgkeys"]]
    return out


def as_v0(source: dict[str, Any]) -> dict[str, Any]:
    """The v0 shape: `name` is the id, keys are `gpgkey_urls`."""
    out = {"name": source["id"], "type": source["type"], "url": source["url"],
           "check_gpg": source["check_gpg"], "check_ssl": source["check_ssl"],
           "system": source["system"]}
    if source.get("proxy"):
        out["proxy"] = source["proxy"]
    if source.get("gpgkeys"):
        out["gpgkey_urls"] = source["gpgkeys"]
    return out


class SourceStore:
    """User sources in the shared database."""

    def __init__(self, db: Database):
        self.db = db

    def all(self) -> dict[str, dict[str, Any]]:
        """Sorted by id; a damaged row is skipped (logged) so the others stay usable."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.db.query("SELECT id, data FROM sources ORDER BY id"):
            try:
                data = json.loads(row["data"])
                if not isinstance(data, dict):
                    raise ValueError("not an object")
                out[row["id"]] = data
            except ValueError as exc:
                log.warning("skipping damaged source %s: %s", row["id"], exc)
        return out

    def get(self, source_id: str) -> dict[str, Any] | None:
        """The source, None when absent; SourceError when its stored record is damaged."""
        row = self.db.query_one("SELECT data FROM sources WHERE id = ?", (source_id,))
        if row is None:
            return None
        try:
            data = json.loads(row["data"])
        except ValueError as exc:
            raise SourceError(f"source {source_id} has a damaged record: {exc}") from exc
        return data

    def exists(self, source_id: str) -> bool:
        return self.db.query_one("SELECT 1 FROM sources WHERE id = ?", (source_id,)) is not None

    def put(self, source: dict[str, Any]) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO sources (id, data) VALUES (?, ?) ON CONFLICT (id)"
                         " DO UPDATE SET data = excluded.data", (source["id"], json.dumps(source)))

    def delete(self, source_id: str) -> bool:
        with self.db.transaction() as conn:
            return conn.execute("DELETE FROM sources WHERE id = ?", (source_id,)).rowcount > 0


def repositories_for(config: Any, db: Database, distro: str, arch: str,
                     image_type: str | None = None) -> list[dict[str, Any]]:
    """Everything to depsolve from for a distro/arch: system repository entries (as in the JSON
    file, keeping `image_type_tags` ones only for a matching image type) followed by the user's
    sources that apply to this distro (v1 source dicts with variables substituted)."""
    repos = [r for r in system_repositories(config, distro, arch)
             if not r.get("image_type_tags") or image_type in r["image_type_tags"]]
    for source in SourceStore(db).all().values():
        if source.get("distros") and distro not in source["distros"]:
            continue
        repos.append(substitute(source, distro, arch))
    return repos
