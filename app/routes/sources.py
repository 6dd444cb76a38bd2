"""`/projects/source/*` (catalogue §6.18–6.21) and `/distros/list` (§6.47): package sources and
the distros they make buildable.

System sources are those of the default distro on the host arch, as osbuild-composer shows them;
they can be read but never changed.  v0 speaks of sources by `name`, v1 by `id`.
"""

from __future__ import annotations

from flask import Blueprint, Response, abort

from app import get_config, get_db
from app.errors import json_response
from app.params import (
    JSON_TYPE,
    TOML_TYPE,
    DocumentError,
    api_version,
    arch_arg,
    body_text,
    check_api_string,
    content_type,
    output_format,
    parse_document,
    v1_only,
)
from core.errors import WeldrError, error_entry
from core.store import sources as src
from distros import offered

bp = Blueprint("sources", __name__)


def _context() -> tuple[str, str]:
    return offered.default_distro(get_config()), src.host_arch()


def _all_sources() -> tuple[dict[str, dict], dict[str, dict]]:
    """(user sources substituted, system sources) for the default distro and host arch."""
    distro, arch = _context()
    user = {k: src.substitute(v, distro, arch) for k, v in src.SourceStore(get_db()).all().items()}
    return user, src.system_sources(get_config(), distro, arch)


def _shape(source: dict) -> dict:
    return source if api_version() >= 1 else src.as_v0(source)


@bp.get("/projects/source/list")
def source_list() -> Response:
    user, system = _all_sources()
    names = list(user) + [name for name in system if name not in user]
    return json_response({"sources": names})


@bp.get("/projects/source/info/")
def source_info_empty() -> Response:
    abort(404)


@bp.get("/projects/source/info/<path:ids>")
def source_info(ids: str) -> Response:
    fmt = output_format()
    user, system = _all_sources()
    wanted = ids.split(",")
    for name in wanted:
        check_api_string(name)
    found: dict[str, dict] = {}
    errors = []
    if wanted == ["*"]:
        wanted = list(user) + [n for n in system if n not in user]
    for name in wanted:
        source = system.get(name) or user.get(name)
        if source is None:
            errors.append(error_entry("UnknownSource", f"{name} is not a valid source"))
            continue
        found[name] = _shape(source)
    if fmt == "toml":
        if errors:
            raise WeldrError(errors[0]["id"], errors[0]["msg"], extra={"errors": errors})
        import tomlkit

        return Response(tomlkit.dumps(found), content_type="text/x-toml; charset=utf-8")
    return json_response({"sources": found, "errors": errors})


@bp.post("/projects/source/new")
def source_new() -> Response:
    kind = content_type()
    if kind is None:
        raise WeldrError("HTTPError", "malformed Content-Type header")
    text = body_text("ProjectsError")
    if not text.strip():
        raise WeldrError("ProjectsError", "Missing source")
    if kind not in (JSON_TYPE, TOML_TYPE):
        raise WeldrError("ProjectsError", f"Problem parsing POST body: unsupported Content-Type "
                         f"'{kind}', a source must be {JSON_TYPE} or {TOML_TYPE}")
    try:
        doc = parse_document(text, kind)
        source = src.normalise_source(doc, api_version(), offered.list_distros(get_config()))
    except (DocumentError, src.SourceError) as exc:
        raise WeldrError("ProjectsError", f"Problem parsing POST body: {exc}") from exc
    if not src.VALID_SOURCE_ID.match(source["id"]):
        raise WeldrError("InvalidChars", "Invalid characters in source id")
    _user, system = _all_sources()
    if source["id"] in system:
        raise WeldrError("SystemSource", f"{source['id']} is a system source, it cannot be changed.")
    src.SourceStore(get_db()).put(source)
    return json_response({"status": True})


@bp.delete("/projects/source/delete/<path:source_id>")
def source_delete(source_id: str) -> Response:
    check_api_string(source_id)
    _user, system = _all_sources()
    if source_id in system:
        raise WeldrError("SystemSource", f"{source_id} is a system source, it cannot be deleted.")
    if not src.SourceStore(get_db()).delete(source_id):
        raise WeldrError("UnknownSource", f"{source_id} is not a valid source.")
    return json_response({"status": True})


@bp.get("/distros/list")
@v1_only
def distros_list() -> Response:
    """Distros with repositories for the arch (v1 only, as in osbuild-composer)."""
    return json_response({"distros": offered.list_distros(get_config(), arch_arg())})
