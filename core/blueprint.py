"""The blueprint: reading it (TOML, JSON), the rules a saved one obeys, and writing it back.

A blueprint is kept as the plain ordered dict `core.blueprint_schema` loads (osbuild-composer's
field order, empty optional fields left out), because every consumer wants exactly that shape:
the Weldr JSON replies, the TOML that composer-cli shows and edits, the distros engine that turns
it into package sets and a manifest. Rules osbuild-composer applies on save live here too: the
name pattern, semantic versions and the patch bump, and user passwords hashed before storing.
"""

from __future__ import annotations

import copy
import fnmatch
import json
import re
from collections.abc import Iterable
from typing import Any

import tomlkit
from marshmallow import ValidationError

from core import jsontext, tomldoc
from core.blueprint_schema import flatten_errors, load_blueprint_dict
from core.passwords import PasswordTooLong, hash_password, is_crypted

VALID_BLUEPRINT_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")

JSON_TYPE = "application/json"
TOML_TYPE = "text/x-toml"

# osbuild-composer answers a body it cannot decode with Flask's old wording, kept for clients
# that match on it.
BAD_REQUEST = ("400 Bad Request: The browser (or proxy) sent a request that this server could "
               "not understand: ")

Blueprint = dict[str, Any]


class BlueprintError(Exception):
    """A blueprint problem with its Weldr error id (BlueprintsError unless said otherwise)."""

    def __init__(self, msg: str, error_id: str = "BlueprintsError", http_status: int = 400):
        super().__init__(msg)
        self.msg = msg
        self.error_id = error_id
        self.http_status = http_status


def check_name(name: str) -> str:
    """Names follow VALID_BLUEPRINT_NAME; `.` and `..` are refused too (they name no blueprint)."""
    if not VALID_BLUEPRINT_NAME.match(name or "") or name in (".", ".."):
        raise BlueprintError("Invalid characters in API path", "InvalidChars")
    return name


# --- reading ----------------------------------------------------------------------------------


def decode(text: str, content_type: str | None) -> Blueprint:
    """A pushed body (JSON or TOML, chosen by the exact Content-Type) as a validated blueprint.

    Raises BlueprintError with osbuild-composer's messages: a missing header, an empty body, an
    unknown type and a body that does not parse or does not fit the schema.
    """
    if content_type is None:
        raise BlueprintError("missing Content-Type header")
    if text == "":
        raise BlueprintError("Missing blueprint")
    if content_type == JSON_TYPE:
        try:
            raw = jsontext.loads(text)
        except jsontext.JSONTextError as exc:
            raise BlueprintError(BAD_REQUEST + f"invalid JSON: {exc}") from exc
    elif content_type == TOML_TYPE:
        try:
            raw = tomldoc.loads(text)
        except (ValueError, RecursionError) as exc:  # also int()'s digit limit inside tomllib
            raise BlueprintError(BAD_REQUEST + f"invalid TOML: {exc}") from exc
    else:
        raise BlueprintError(BAD_REQUEST + "blueprint must be in json or toml format")
    return validate(raw)


def validate(raw: Any) -> Blueprint:
    """A decoded document checked against the schema; errors name every bad field."""
    try:
        return load_blueprint_dict(_drop_nulls(raw))
    except ValidationError as exc:
        raise BlueprintError(BAD_REQUEST + "; ".join(flatten_errors(exc.messages))) from exc
    except RecursionError as exc:
        raise BlueprintError(BAD_REQUEST + "the blueprint is nested too deeply") from exc


def _drop_nulls(value: Any) -> Any:
    """JSON nulls in objects mean "not given", as Go's decoder leaves such fields at zero."""
    if isinstance(value, dict):
        return {k: _drop_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [_drop_nulls(v) for v in value]
    return value


def from_stored(text: str) -> Blueprint:
    """A blueprint as the store keeps it (JSON written by `to_json_text`)."""
    data = json.loads(text)
    if not isinstance(data, dict) or not isinstance(data.get("name"), str):
        raise ValueError("not a blueprint object")
    # a cheap shape check (the schema ran when it was saved): what readers index must be there
    for key in ("packages", "modules", "enabled_modules", "groups"):
        items = data.get(key, [])
        if not isinstance(items, list) or not all(isinstance(i, dict) and isinstance(i.get("name"), str)
                                                  for i in items):
            raise ValueError(f"'{key}' is not a list of named entries")
    if not isinstance(data.get("customizations", {}), dict):
        raise ValueError("'customizations' is not a table")
    return data


def to_json_text(bp: Blueprint) -> str:
    return json.dumps(bp, ensure_ascii=False, separators=(",", ":"))


# --- versions ---------------------------------------------------------------------------------

_SEMVER = re.compile(r"^(\d+)\.(\d+)\.(\d+)(?:-([0-9A-Za-z.-]+))?(?:\+([0-9A-Za-z.-]+))?$")


def parse_version(version: str) -> tuple[int, int, int]:
    """MAJOR.MINOR.PATCH with optional -prerelease and +build; ValueError says why not."""
    m = _SEMVER.match(version)
    if not m:
        if len(version.split("-", 1)[0].split("+", 1)[0].split(".")) != 3:
            raise ValueError(f"{version} is not in dotted-tri format")
        raise ValueError(f"{version} is not a valid semantic version")
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def bump_patch(version: str) -> str:
    """The next patch version; pre-release and build parts are dropped, as semver prescribes."""
    major, minor, patch = parse_version(version)
    return f"{major}.{minor}.{patch + 1}"


def next_version(new: str | None, previous: str | None) -> str:
    """The version a blueprint is committed with, given the last committed one.

    No previous commit: the version given, or 0.0.0. Same version as before, or none given: the
    previous one with its patch bumped. Otherwise the version given, as is. A previous version
    that is not semver (stored by an older release) is never bumped.
    """
    if previous is None:
        return new or "0.0.0"
    if not new or new == previous:
        try:
            return bump_patch(previous)
        except ValueError:
            return new or previous
    return new


# --- the rules applied before storing ---------------------------------------------------------


def initialize(bp: Blueprint) -> Blueprint:
    """A copy ready to store: name present, version semver (default 0.0.0), passwords hashed.

    Mirrors what osbuild-composer checks on every save (workspace or commit).
    """
    bp = copy.deepcopy(bp)
    if not bp.get("name"):
        raise BlueprintError("empty blueprint name not allowed")
    check_name(bp["name"])
    for key in ("packages", "modules", "enabled_modules", "groups"):
        bp.setdefault(key, [])
    bp.setdefault("distro", "")
    version = bp.get("version") or "0.0.0"
    try:
        parse_version(version)
    except ValueError as exc:
        raise BlueprintError(f"Invalid 'version', must use Semantic Versioning: {exc}") from exc
    bp["version"] = version
    for i, pkg in enumerate(bp["packages"], start=1):
        if not pkg.get("name"):
            detail = (f"Entry #{i} has version '{pkg['version']}' but no name." if pkg.get("version")
                      else f"Entry #{i} has no name.")
            raise BlueprintError("All package entries need to contain the name of the package. "
                                 + detail)
    for i, mod in enumerate(bp["modules"], start=1):
        if not mod.get("name"):
            raise BlueprintError(f"All module entries need to contain the name of the module. "
                                 f"Entry #{i} has no name.")
    crypt_passwords(bp)
    return _ordered(bp)


def crypt_passwords(bp: Blueprint) -> None:
    """Plain-text user passwords become SHA-512 crypt; crypted ones and absent ones stay."""
    for user in (bp.get("customizations") or {}).get("user") or []:
        password = user.get("password")
        if password is None:
            continue
        if password == "":
            del user["password"]
        elif not is_crypted(password):
            try:
                user["password"] = hash_password(password)
            except PasswordTooLong as exc:
                raise BlueprintError(f"user {user.get('name', '')!r}: {exc}") from None


_TOP_ORDER = ("name", "description", "version", "packages", "modules", "enabled_modules", "groups",
              "containers", "customizations", "distro", "architecture")


def _ordered(bp: Blueprint) -> Blueprint:
    return {k: bp[k] for k in sorted(bp, key=lambda k: _TOP_ORDER.index(k)
                                    if k in _TOP_ORDER else len(_TOP_ORDER))}


# --- writing TOML -----------------------------------------------------------------------------


def to_toml(bp: Blueprint) -> str:
    """TOML as composer-cli users know it: scalars first, then `[[packages]]` tables, etc.

    tomlkit (not tomli-w) because lists of tables must come out as `[[packages]]` sections a
    person can edit, not as one long inline array.
    """
    doc = tomlkit.document()
    _fill_table(doc, bp, top=True)
    return tomlkit.dumps(doc)


def _is_table_list(value: Any) -> bool:
    return isinstance(value, list) and bool(value) and all(isinstance(v, dict) for v in value)


def _fill_table(table: Any, data: dict[str, Any], top: bool = False) -> None:
    # plain values first, so they are not swallowed by a preceding [section]
    for key, value in data.items():
        if top and key == "distro" and not value:
            continue  # osbuild-composer's TOML leaves an empty distro out
        if not isinstance(value, dict) and not _is_table_list(value):
            table.add(key, _toml_value(value))
    for key, value in data.items():
        if isinstance(value, dict):
            sub = tomlkit.table()
            _fill_table(sub, value)
            table.add(key, sub)
        elif _is_table_list(value):
            aot = tomlkit.aot()
            for item in value:
                sub = tomlkit.table()
                _fill_table(sub, item)
                aot.append(sub)
            table.add(key, aot)


_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def _toml_value(value: Any) -> Any:
    # A multi-line string reads best as one (kickstarts, file contents), but TOML turns CRLF
    # into LF inside them; such strings, and those with other control characters, stay escaped.
    if isinstance(value, str) and "\n" in value and not _CONTROL.search(value) \
            and '"""' not in value:
        return tomlkit.string(value, multiline=True)
    if isinstance(value, list):
        arr = tomlkit.array()
        arr.extend(value)
        return arr
    return value


# --- diff -------------------------------------------------------------------------------------

_LIST_DIFFS = (("modules", "Module", "name"), ("packages", "Package", "name"),
               ("groups", "Group", "name"), ("enabled_modules", "EnabledModule", "name"),
               ("containers", "Container", "source"))
_CUSTOMIZATION_IDS = {"sshkey": "user", "user": "name", "group": "name",
                      "filesystem": "mountpoint", "directories": "path", "files": "path",
                      "repositories": "id"}


def _diff_lists(title: str, key: str, old: list[dict], new: list[dict]) -> list[dict]:
    old_by = {str(i.get(key)): i for i in old}
    new_by = {str(i.get(key)): i for i in new}
    order = lambda names: sorted(names, key=str.lower)  # noqa: E731
    out = [{"old": None, "new": {title: new_by[n]}} for n in order(new_by.keys() - old_by.keys())]
    out += [{"old": {title: old_by[n]}, "new": None} for n in order(old_by.keys() - new_by.keys())]
    out += [{"old": {title: old_by[n]}, "new": {title: new_by[n]}}
            for n in order(old_by.keys() & new_by.keys()) if old_by[n] != new_by[n]]
    return out


def diff(old: Blueprint, new: Blueprint) -> list[dict]:
    """The Weldr diff entries between two blueprints (lorax-composer's shape, which
    osbuild-composer keeps for packages): scalars, then lists by name, then customizations."""
    out: list[dict] = []
    for key in ("name", "description", "version", "distro", "architecture"):
        if old.get(key) != new.get(key):
            title = key.title()
            out.append({"old": {title: old[key]} if key in old else None,
                        "new": {title: new[key]} if key in new else None})
    for key, title, ident in _LIST_DIFFS:
        out += _diff_lists(title, ident, old.get(key) or [], new.get(key) or [])
    old_c, new_c = old.get("customizations") or {}, new.get("customizations") or {}
    for key in sorted(old_c.keys() | new_c.keys()):
        title = f"Customizations.{key}"
        o, n = old_c.get(key), new_c.get(key)
        if key in _CUSTOMIZATION_IDS and isinstance(o or [], list) and isinstance(n or [], list) \
                and o is not None and n is not None:
            out += _diff_lists(title, _CUSTOMIZATION_IDS[key], o, n)
        elif o != n:
            out.append({"old": {title: o} if o is not None else None,
                        "new": {title: n} if n is not None else None})
    return out


# --- package requests, freezing ---------------------------------------------------------------


def _name_version(pkg: dict[str, Any]) -> str:
    version = pkg.get("version") or "*"
    return pkg["name"] if version == "*" else f"{pkg['name']}-{version}"


def package_requests(bp: Blueprint, bootable: bool = True) -> list[str]:
    """What a depsolve of this blueprint includes: packages, modules, "@groups" and the kernel
    (customizations.kernel.name, default "kernel"), as osbuild-composer asks the solver."""
    out = [_name_version(p) for p in bp.get("packages") or []]
    out += [_name_version(m) for m in bp.get("modules") or []]
    out += ["@" + g["name"] for g in bp.get("groups") or []]
    if bootable:
        kernel = ((bp.get("customizations") or {}).get("kernel") or {}).get("name") or "kernel"
        out.append(kernel)
    return out


def package_set(bp: Blueprint, bootable: bool = True) -> dict[str, Any]:
    """The depsolver's package set for this blueprint: its requests plus the module streams it
    enables (`enabled_modules`), which select the packages of those streams."""
    out: dict[str, Any] = {"include": package_requests(bp, bootable)}
    streams = [f"{m['name']}:{m['stream']}" for m in bp.get("enabled_modules") or []]
    if streams:
        out["enable_modules"] = streams
    return out


def evra(dep: dict[str, Any]) -> str:
    epoch = int(dep.get("epoch") or 0)
    base = f"{dep['version']}-{dep['release']}.{dep['arch']}"
    return f"{epoch}:{base}" if epoch else base


def nevra_entry(dep: dict[str, Any]) -> dict[str, Any]:
    """A depsolved package in the Weldr shape (epoch an integer, §5.3)."""
    return {"name": dep["name"], "epoch": int(dep.get("epoch") or 0), "version": dep["version"],
            "release": dep["release"], "arch": dep["arch"]}


def _expand(deps: list[dict[str, Any]], wanted: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    by_name = {d["name"]: d for d in deps}
    found: dict[tuple[str, str], dict[str, str]] = {}
    for pkg in wanted:
        name = pkg["name"]
        if not any(c in name for c in "*?"):
            dep = by_name.get(name)
            if dep is None:
                raise BlueprintError(f"{name} missing from depsolve results")
            found[(dep["name"], evra(dep))] = {"name": dep["name"], "version": evra(dep)}
        else:
            for dep in deps:
                if fnmatch.fnmatchcase(dep["name"], name):
                    found[(dep["name"], evra(dep))] = {"name": dep["name"], "version": evra(dep)}
    return [found[k] for k in sorted(found)]


def freeze(bp: Blueprint, deps: list[dict[str, Any]]) -> Blueprint:
    """The blueprint with every package and module pinned to the depsolved [epoch:]v-r.arch;
    name globs expand to every matching package, as osbuild-composer does."""
    frozen = copy.deepcopy(bp)
    frozen["packages"] = _expand(deps, bp.get("packages") or [])
    frozen["modules"] = _expand(deps, bp.get("modules") or [])
    return frozen
