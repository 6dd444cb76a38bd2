"""Parsing what a Weldr request carries: path names, query parameters and the body.

Every route checks its inputs with these helpers so that the same mistake gets the same Weldr
error everywhere (catalogue §3/§4): characters outside the allowed set are `InvalidChars`,
non-numeric paging is `BadLimitOrOffset`, an unknown output format is `InvalidChars`, and body
parsing compares the Content-Type header exactly as osbuild-composer does.
"""

from __future__ import annotations

import functools
import platform
import re
import uuid as uuid_mod
from collections.abc import Callable
from typing import Any, TypeVar

from flask import abort, request
from flask.json.provider import DefaultJSONProvider

from core import jsontext, tomldoc
from core.errors import WeldrError

# lorax-composer's api_string: uuids, project/module/source names, formats, commits
VALID_API_STRING = re.compile(r"^[a-zA-Z0-9_,.:+*-]+$")
# blueprint names (both servers), also commits and the `blueprint=` filter
VALID_BLUEPRINT_NAME = re.compile(r"^[a-zA-Z0-9._-]+$")
# what a decoded request path may hold after /api/vN (names, globs, commas, separators)
_VALID_PATH = re.compile(r"^[a-zA-Z0-9_,.:+*?/-]*$")
_VALID_QUERY_VALUE = re.compile(r"^[a-zA-Z0-9_,.:+*?/-]*$")

F = TypeVar("F", bound=Callable[..., Any])

JSON_TYPE = "application/json"
TOML_TYPE = "text/x-toml"


def invalid_chars(msg: str = "Invalid characters in API path") -> WeldrError:
    return WeldrError("InvalidChars", msg)


# --- API version ---------------------------------------------------------------------------

def api_version() -> int:
    """0 or 1, from the URL prefix the request came in on."""
    return 1 if request.path.startswith("/api/v1/") else 0


def v1_only(view: F) -> F:
    """osbuild-composer answers 404 for a v1-only route asked for under /api/v0."""

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if api_version() < 1:
            abort(404)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


# --- whole-request checks (run before every route) ------------------------------------------

def check_request_chars() -> None:
    """Refuse odd characters, dot segments and encoded slashes before any route sees them.

    Werkzeug decodes `%2F` into `/`, so `a%2F..%2Fb` would reach a route as three segments; we
    look at the raw URI too and refuse it as osbuild-composer refuses names outside its regex.
    """
    raw = request.environ.get("RAW_URI") or request.environ.get("REQUEST_URI") or ""
    raw_path = raw.split("?", 1)[0]
    if "%2f" in raw_path.lower() or "%5c" in raw_path.lower():
        raise invalid_chars()
    path = request.path
    rest = path.split("/", 3)[3] if path.count("/") >= 3 else ""
    if not _VALID_PATH.match(rest) or any(seg in (".", "..") for seg in path.split("/")):
        raise invalid_chars()
    try:
        args = request.args
    except Exception as exc:  # werkzeug decodes leniently; keep the net anyway
        raise invalid_chars(f"invalid query string: {exc}") from exc
    for key, values in args.lists():
        if not _VALID_QUERY_VALUE.match(key):
            raise invalid_chars("Invalid characters in query string")
        for value in values:
            if not _VALID_QUERY_VALUE.match(value):
                raise invalid_chars(f"Invalid characters in {key} argument")


# --- names, uuids ---------------------------------------------------------------------------

def check_api_string(value: str, msg: str = "Invalid characters in API path") -> str:
    if not VALID_API_STRING.match(value or "") or value in (".", ".."):
        raise invalid_chars(msg)
    return value


def check_blueprint_name(value: str, msg: str = "Invalid characters in API path") -> str:
    if not VALID_BLUEPRINT_NAME.match(value or "") or value in (".", ".."):
        raise invalid_chars(msg)
    return value


def split_names(value: str, *, blueprint_names: bool = False) -> list[str]:
    """Comma-separated path names, each checked; an empty list is a 404 as in osbuild-composer."""
    names = [n for n in (value or "").split(",")]
    if not value or any(n == "" for n in names):
        abort(404)
    check = check_blueprint_name if blueprint_names else check_api_string
    return [check(n) for n in names]


def parse_uuid(value: str) -> str | None:
    """The canonical form of a uuid, or None when it is not one (callers choose the error)."""
    try:
        return str(uuid_mod.UUID(value)) if value and len(value) == 36 else None
    except ValueError:
        return None


# --- query parameters -----------------------------------------------------------------------

def _uint_arg(name: str, default: int) -> int:
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit():
        raise WeldrError("BadLimitOrOffset", f"BadRequest: invalid value for '{name}': {raw}")
    return int(raw)


def limit_offset(default_limit: int = 20) -> tuple[int, int]:
    """`limit` (default 20) and `offset` (default 0); `limit=0` is valid and means no items."""
    return _uint_arg("limit", default_limit), _uint_arg("offset", 0)


def page(items: list[Any], limit: int, offset: int) -> list[Any]:
    return items[offset:offset + limit]


def output_format() -> str:
    fmt = request.args.get("format", "json") or "json"
    if fmt not in ("json", "toml"):
        raise invalid_chars(f"invalid format parameter: {fmt}")
    return fmt


def host_arch() -> str:
    machine = platform.machine()
    return {"amd64": "x86_64", "arm64": "aarch64"}.get(machine, machine)


def arch_arg() -> str:
    return request.args.get("arch") or host_arch()


def distro_arg() -> str:
    """The `distro` parameter checked against `/distros/list`, or the configured default distro."""
    from app import get_config
    from distros import offered

    distro = request.args.get("distro")
    if not distro:
        return offered.default_distro(get_config())
    distro = offered.resolve_distro(get_config(), distro)
    if distro not in offered.list_distros(get_config()):
        raise WeldrError("DistroError", f"Invalid distro: {distro}")
    return distro


# --- request bodies -------------------------------------------------------------------------

def content_type() -> str | None:
    """The Content-Type header exactly as sent (osbuild-composer compares it verbatim)."""
    return request.headers.get("Content-Type")


def body_text(error_id: str) -> str:
    """The body as text; bytes that are not UTF-8 are a client error of the route's kind."""
    data = request.get_data(cache=True)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise WeldrError(error_id, f"body is not valid UTF-8: {exc}") from exc


class StrictJSONProvider(DefaultJSONProvider):
    """`request.get_json` reads only JSON a Go client could send (`core.jsontext`): NaN, Infinity,
    overflowing numbers and nesting too deep for the parser are a bad body (ValueError, which
    Flask's `silent=True` turns into None), never a 500."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return jsontext.loads(s)


class DocumentError(ValueError):
    """A JSON or TOML body that does not parse; the message is the parser's."""


def parse_document(text: str, kind: str) -> dict[str, Any]:
    """A JSON or TOML document that must be a table/object. `kind` is JSON_TYPE or TOML_TYPE."""
    try:
        if kind == TOML_TYPE:
            data: Any = tomldoc.loads(text)
        else:
            data = jsontext.loads(text)
    except (ValueError, RecursionError) as exc:  # also int()'s digit limit inside tomllib
        raise DocumentError(str(exc)) from exc
    if not isinstance(data, dict):
        raise DocumentError("the document must be an object")
    return data
