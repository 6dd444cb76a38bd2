"""`/projects/*` and `/modules/*`: package search and depsolve for a distro (catalogue §6.15–6.23).

Every answer comes from the real depsolver (`depsolve`) through its process pool, over the
distro's system repositories and the user's sources; without the depsolver these routes say so
with a Weldr error instead of inventing an answer.  In osbuild-composer "modules" are just
packages (`group_type` is always "rpm"), and modules/info is projects/info plus dependencies.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import Blueprint, Response

from app import get_config, get_db
from app.errors import json_response
from app.params import arch_arg, check_api_string, distro_arg, limit_offset, page
from core.errors import WeldrError
from depsolve import DepsolveError, RepositoryError
from depsolve.processes import shared
from distros import offered

bp = Blueprint("projects", __name__)


class _Solver:
    """The depsolver's process pool bound to one distro/arch's repositories."""

    def __init__(self, error_id: str):
        self.error_id = error_id
        self.errors: tuple[type[Exception], ...] = (DepsolveError, RepositoryError)
        self.pool = shared()
        config = get_config()
        self.distro, self.arch = distro_arg(), arch_arg()
        self.repos, self.releasever, self.platform_id = offered.solver_inputs(
            config, get_db(), self.distro, self.arch)
        self.common: dict[str, Any] = {"arch": self.arch, "releasever": self.releasever,
                       "cache_dir": config.cache_dir,
                       "metadata_expire": getattr(config, "metadata_expire", None)}

    def call(self, fn: Callable[..., Any], *args: Any, prefix: str = "msg: ",
             error_id: str | None = None, **kw: Any) -> Any:
        try:
            return fn(*args, **kw)
        except self.errors as exc:
            raise WeldrError(error_id or self.error_id, f"{prefix}{exc}") from exc

    def search(self, globs: list[str] | None) -> list[dict[str, Any]]:
        return self.call(self.pool.search, self.repos, globs=globs, **self.common)

    def search_page(self, offset: int, limit: int) -> tuple[int, list[dict[str, Any]]]:
        """Total and one page, cut in the solver process (the whole list stays there)."""
        return self.call(self.pool.search_page, self.repos, globs=None, offset=offset,
                         limit=limit, **self.common)

    def names(self, globs: list[str] | None) -> list[str]:
        return self.call(self.pool.package_names, self.repos, globs=globs, **self.common)

    def depsolve(self, names: list[str], prefix: str) -> list[dict[str, Any]]:
        from depsolve import PackageSet, nevra

        result = self.call(self.pool.depsolve, [PackageSet(include=names)], self.repos,
                           module_platform_id=self.platform_id, prefix=prefix, **self.common)
        return [nevra(p) for p in (result[-1] if result else [])]


def _names(value: str | None) -> list[str]:
    if not value:
        return []
    names = [n for n in value.strip("/").split(",") if n]
    for name in names:
        check_api_string(name)
    return names


def _without_dependencies(project: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in project.items() if k != "dependencies"}


@bp.get("/projects/list")
def projects_list() -> Response:
    limit, offset = limit_offset()
    solver = _Solver("ProjectsError")
    total, projects = solver.search_page(offset, limit)
    return json_response({"projects": [_without_dependencies(p) for p in projects],
                          "offset": offset, "limit": limit, "total": total})


def _info(names_value: str | None, error_id: str, unknown_id: str, with_deps: bool) -> Response:
    names = _names(names_value)
    if not names:
        raise WeldrError(unknown_id, "No packages specified.")
    solver = _Solver(error_id)
    found = solver.search(names)
    if not found:
        raise WeldrError(unknown_id, "No packages have been found.")
    out = []
    for project in found:
        project = _without_dependencies(project)
        if with_deps:
            project["dependencies"] = solver.depsolve(
                [project["name"]], prefix=f"Cannot depsolve package {project['name']}: ")
        out.append(project)
    key = "modules" if with_deps else "projects"
    return json_response({key: out})


@bp.get("/projects/info", defaults={"names": None})
@bp.get("/projects/info/<path:names>")
def projects_info(names: str | None) -> Response:
    return _info(names, "ProjectsError", "UnknownProject", with_deps=False)


@bp.get("/modules/info", defaults={"names": None})
@bp.get("/modules/info/<path:names>")
def modules_info(names: str | None) -> Response:
    return _info(names, "ModulesError", "UnknownModule", with_deps=True)


@bp.get("/projects/depsolve", defaults={"names": None})
@bp.get("/projects/depsolve/<path:names>")
def projects_depsolve(names: str | None) -> Response:
    wanted = _names(names)
    if not wanted:
        raise WeldrError("UnknownProject", "No packages specified.")
    solver = _Solver("ProjectsError")
    return json_response({"projects": solver.depsolve(wanted, prefix="BadRequest: ")})


@bp.get("/modules/list", defaults={"names": None})
@bp.get("/modules/list/<path:names>")
def modules_list(names: str | None) -> Response:
    limit, offset = limit_offset()
    globs = _names(names) or None
    solver = _Solver("ModulesError")
    found = solver.names(globs)
    if globs and not found:
        raise WeldrError("UnknownModule", "No packages have been found.")
    return json_response({"modules": [{"name": n, "group_type": "rpm"}
                                      for n in page(found, limit, offset)],
                          "offset": offset, "limit": limit, "total": len(found)})
