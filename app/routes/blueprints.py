"""The /blueprints/* routes (catalogue §6.2–6.14), v0 and v1; `change` is v1-only.

Each view parses its inputs with `app.params`, calls `core.store.blueprints` and renders the Weldr
shape. `branch` (lorax-composer's git branch) is accepted and ignored, as osbuild-composer does.
Domain problems arrive as `BlueprintError` (id, message, HTTP status) and leave as the
standard Weldr error body; per-blueprint problems in multi-name routes are listed in `errors`
with 200, as osbuild-composer does.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flask import Blueprint, Response

import distros
from app import get_config, get_db
from app.errors import error_response, json_response
from app.params import (
    body_text,
    check_blueprint_name,
    content_type,
    limit_offset,
    output_format,
    split_names,
    v1_only,
)
from core import blueprint as model
from core.blueprint import BlueprintError
from core.errors import WeldrError, error_entry
from core.store import blueprints as store_mod
from core.store import sources
from core.store.blueprints import BlueprintStore, DamagedBlueprint, Solver
from depsolve import DepsolveError, PackageSet, RepositoryError
from depsolve.processes import shared
from distros import offered

bp = Blueprint("blueprints", __name__)

TOML_ONE_ONLY = "toml format only supported when requesting one blueprint"


@bp.errorhandler(BlueprintError)
def _blueprint_error(exc: BlueprintError) -> Response:
    return error_response(WeldrError(exc.error_id, exc.msg, exc.http_status))


def _store() -> BlueprintStore:
    return BlueprintStore(get_db())


def _errors_response(errors: list[dict[str, Any]], status: int = 400) -> Response:
    return json_response({"status": False, "errors": errors}, status)


def _toml_response(text: str) -> Response:
    # osbuild-composer labels every reply JSON, TOML bodies included; clients read the body as is
    return Response(text, status=200, content_type="application/json; charset=utf-8")


def _get_or_note(store: BlueprintStore, name: str, errors: list[dict[str, Any]],
                 unknown_msg: str) -> tuple[dict[str, Any], bool] | None:
    """`store.get` for the multi-name routes, which list a damaged or unknown blueprint in
    `errors` (200) instead of failing the request; osbuild-composer's UnknownBlueprint wording
    differs between routes, hence `unknown_msg`."""
    try:
        found = store.get(name)
    except DamagedBlueprint as exc:
        errors.append(error_entry("BlueprintsError", exc.msg))
        return None
    if found is None:
        errors.append(error_entry("UnknownBlueprint", unknown_msg))
    return found


# --- reading ----------------------------------------------------------------------------------


@bp.get("/blueprints/list")
def blueprints_list() -> Response:
    limit, offset = limit_offset()
    # osbuild-composer clamps both to the list and echoes the clamped values
    total, offset, names = _store().list_page(limit, offset)
    return json_response({"total": total, "offset": offset, "limit": len(names),
                          "blueprints": names})


@bp.get("/blueprints/info/<names>")
def blueprints_info(names: str) -> Response:
    wanted = split_names(names, blueprint_names=True)
    fmt = output_format()
    store = _store()
    blueprints: list[dict] = []
    changes: list[dict] = []
    errors: list[dict] = []
    for name in wanted:
        found = _get_or_note(store, name, errors, f"{name}: ")
        if found is None:
            continue
        blueprint, changed = found
        blueprints.append(blueprint)
        changes.append({"changed": changed, "name": blueprint["name"]})
    if fmt == "toml":
        if len(blueprints) > 1:
            raise WeldrError("HTTPError", TOML_ONE_ONLY)
        if errors:
            return _errors_response(errors)
        return _toml_response(model.to_toml(blueprints[0]))
    return json_response({"blueprints": blueprints, "changes": changes, "errors": errors})


@bp.get("/blueprints/changes/<names>")
def blueprints_changes(names: str) -> Response:
    wanted = split_names(names, blueprint_names=True)
    # osbuild-composer parses limit/offset here but answers every change (composer-cli shows
    # the whole history); the parsed values are echoed.
    limit, offset = limit_offset()
    store = _store()
    found: list[dict] = []
    errors: list[dict] = []
    for name in wanted:
        changes = store.changes(name)
        if changes is None:
            errors.append(error_entry("UnknownBlueprint", name))
            continue
        found.append({"changes": [c.weldr() for c in changes], "name": name,
                      "total": len(changes)})
    return json_response({"blueprints": found, "errors": errors, "limit": limit, "offset": offset})


@bp.get("/blueprints/change/<name>/<commit>")
@v1_only
def blueprints_change(name: str, commit: str) -> Response:
    check_blueprint_name(name)
    check_blueprint_name(commit)
    _, blueprint = _store().change(name, commit)
    if output_format() == "toml":
        return _toml_response(model.to_toml(blueprint))
    return json_response(blueprint)


@bp.get("/blueprints/diff/<name>/<from_commit>/<to_commit>")
def blueprints_diff(name: str, from_commit: str, to_commit: str) -> Response:
    for value in (name, from_commit, to_commit):
        check_blueprint_name(value)
    return json_response({"diff": _store().diff(name, from_commit, to_commit)})


# --- writing ----------------------------------------------------------------------------------


def _pushed_blueprint() -> dict[str, Any]:
    """The request body as a validated blueprint, with osbuild-composer's checks in its order."""
    ctype = content_type()
    if ctype is None:
        raise BlueprintError("missing Content-Type header")
    text = body_text("BlueprintsError")
    blueprint = model.decode(text, ctype)
    if blueprint.get("name"):
        check_blueprint_name(blueprint["name"])
    _check_distro(blueprint)
    return blueprint


def _check_distro(blueprint: dict[str, Any]) -> None:
    """A blueprint naming a distro must name one this server has repositories for; an older
    spelling (`rhel-92`) is stored in its canonical form, as osbuild-composer does."""
    distro = blueprint.get("distro")
    if not distro:
        return
    aliased = offered.resolve_distro(get_config(), distro)
    if aliased != distro:
        # an alias (rhel-9) is kept as written: it follows the configuration to its target
        distro = aliased
    else:
        try:
            distro = blueprint["distro"] = distros.canonical_name(distro)
        except LookupError:
            pass
    arch = blueprint.get("architecture") or sources.host_arch()
    if distro not in offered.list_distros(get_config(), arch):
        raise BlueprintError(f"'{distro}' is not a valid distribution (architecture '{arch}')")


@bp.post("/blueprints/new")
def blueprints_new() -> Response:
    _store().push(_pushed_blueprint())
    return json_response({"status": True})


@bp.post("/blueprints/workspace")
def blueprints_workspace() -> Response:
    _store().push_workspace(_pushed_blueprint())
    return json_response({"status": True})


@bp.delete("/blueprints/delete/<name>")
def blueprints_delete(name: str) -> Response:
    _store().delete(check_blueprint_name(name))
    return json_response({"status": True})


@bp.delete("/blueprints/workspace/<name>")
def blueprints_workspace_delete(name: str) -> Response:
    _store().delete_workspace(check_blueprint_name(name))
    return json_response({"status": True})


@bp.post("/blueprints/undo/<name>/<commit>")
def blueprints_undo(name: str, commit: str) -> Response:
    check_blueprint_name(name)
    check_blueprint_name(commit)
    _store().undo(name, commit)
    return json_response({"status": True})


@bp.post("/blueprints/tag/<name>")
def blueprints_tag(name: str) -> Response:
    _store().tag(check_blueprint_name(name))
    return json_response({"status": True})


# --- depsolve, freeze -------------------------------------------------------------------------


def _solver() -> Solver:
    """The depsolver for blueprint routes (see `core.store.blueprints.Solver`).

    Repositories come from the sources store (system repositories of the distro/arch plus the
    user's sources), releasever and module platform from the distro definitions; the solve runs
    in the depsolver's process pool (libsolv is not thread-safe). Any piece missing or failing
    becomes a BlueprintsError for that blueprint, never a made-up answer.
    """
    config, db = get_config(), get_db()

    def solve(package_set: dict[str, Any], distro: str, arch: str) -> list[dict[str, Any]]:
        distro = offered.resolve_distro(config, distro) or offered.default_distro(config)
        arch = arch or sources.host_arch()
        try:
            platform_id = distros.get_distro(distro).module_platform_id or None
        except LookupError as exc:
            raise BlueprintError(f"Unknown distribution: {distro}") from exc
        repos = sources.repositories_for(config, db, distro, arch)
        try:
            chain = shared().depsolve([PackageSet.from_dict(package_set)], repos, arch=arch,
                                      releasever=sources.releasever(distro),
                                      module_platform_id=platform_id,
                                      cache_dir=Path(config.cache_dir) / "rpmmd",
                                      metadata_expire=getattr(config, "metadata_expire", None))
        except (DepsolveError, RepositoryError, ValueError) as exc:
            raise BlueprintError(str(exc)) from exc
        return chain[-1]

    return solve


@bp.get("/blueprints/depsolve/<names>")
def blueprints_depsolve(names: str) -> Response:
    wanted = split_names(names, blueprint_names=True)
    store = _store()
    entries: list[dict] = []
    errors: list[dict] = []
    solve: Solver | None = None
    for name in wanted:
        found = _get_or_note(store, name, errors, f"{name}: blueprint not found")
        if found is None:
            continue
        blueprint = found[0]
        try:
            solve = solve or _solver()
            deps = store_mod.depsolve(blueprint, solve)
        except BlueprintError as exc:
            errors.append(error_entry("BlueprintsError", f"{name}: {exc.msg}"))
            deps = []
        entries.append({"blueprint": blueprint, "dependencies": deps})
    return json_response({"blueprints": entries, "errors": errors})


@bp.get("/blueprints/freeze/<names>")
def blueprints_freeze(names: str) -> Response:
    wanted = split_names(names, blueprint_names=True)
    fmt = output_format()
    store = _store()
    frozen: list[dict] = []
    errors: list[dict] = []
    solve: Solver | None = None
    for name in wanted:  # osbuild-composer stops at the first failing blueprint
        found = _get_or_note(store, name, errors, f"{name}: blueprint not found")
        if found is None:
            break
        try:
            solve = solve or _solver()
            frozen.append(store_mod.freeze(found[0], solve))
        except BlueprintError as exc:
            errors.append(error_entry("BlueprintsError", f"{name}: {exc.msg}"))
            break
    if fmt == "toml":
        if not frozen:
            return _toml_response("")
        if len(frozen) > 1:
            raise WeldrError("HTTPError", TOML_ONE_ONLY)
        return _toml_response(model.to_toml(frozen[0]))
    return json_response({"blueprints": [{"blueprint": f} for f in frozen], "errors": errors})

