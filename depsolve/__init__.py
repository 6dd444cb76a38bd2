"""The depsolver: package sets + repositories → every package pinned by its own URL and checksum.

    from depsolve import Repository, PackageSet, DepsolveError, RepositoryError
    from depsolve import depsolve, search, package_names

`depsolve`, `search` and `package_names` run the solver in the calling process; the solver's
pools are not thread-safe and hold the GIL, so a threaded caller (the API) uses
`depsolve.processes.SolverProcesses` instead, which runs the same functions in a pool of
warm worker processes.  This module imports no solver until one of them is called, keeping
`celery-composer depsolve` and the API quick to start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from depsolve.errors import DepsolveError, RepositoryError
from depsolve.packageset import PackageSet, as_chain
from depsolve.repository import Repository

__all__ = ["Repository", "PackageSet", "DepsolveError", "RepositoryError", "depsolve", "search",
           "search_page", "package_names", "nevra", "frozen_version", "take_metadata_traffic"]

RepositoryLike = Repository | Mapping[str, Any]


def _prepare(repositories: Iterable[RepositoryLike], arch: str, releasever: str
             ) -> list[Repository]:
    repos = [r if isinstance(r, Repository) else Repository.from_dict(r) for r in repositories]
    if not repos:
        raise RepositoryError("no repositories to depsolve against")
    seen: set[str] = set()
    for repo in repos:
        if repo.id in seen:
            raise RepositoryError(f"repository id '{repo.id}' is used twice", repo.id)
        seen.add(repo.id)
    return [repo.substituted(arch, releasever) for repo in repos]


def _cache(cache_dir: Path | str, metadata_expire: int | None):
    from depsolve.metadata import MetadataCache

    return MetadataCache(cache_dir, default_expire=metadata_expire)


def depsolve(chain: Iterable[PackageSet | Mapping[str, Any]],
             repositories: Iterable[RepositoryLike], *, arch: str, releasever: str,
             module_platform_id: str | None = None, cache_dir: Path | str,
             metadata_expire: int | None = None) -> list[list[dict[str, Any]]]:
    """One transaction per package set; set i is resolved on top of the packages of sets < i.

    Each package: name, epoch (int), version, release, arch, remote_location, checksum
    ("sha256:…"), check_gpg, repo_id; each list sorted by name, then EVR and arch.
    `metadata_expire` (seconds) applies to repositories that do not set their own.
    Raises DepsolveError (unknown names, unsatisfiable) or RepositoryError (unusable repo).
    """
    from depsolve import backend

    package_sets = as_chain(chain)
    repos = _prepare(repositories, arch, releasever)
    if not package_sets:
        return []
    return backend.current().module.depsolve(
        package_sets, repos, arch=arch, releasever=releasever,
        module_platform_id=module_platform_id, cache=_cache(cache_dir, metadata_expire))


def search(repositories: Iterable[RepositoryLike], *, arch: str, releasever: str,
           cache_dir: Path | str, globs: list[str] | None = None,
           metadata_expire: int | None = None) -> list[dict[str, Any]]:
    """Weldr project infos (§5.4) of the packages whose names match `globs` (None: all).

    A glob `*x*` matches names containing x, other `*`/`?` patterns match as globs, plain names
    exactly (dnf's rules).  One entry per name, sorted case-insensitively; one build per NEVRA.
    """
    from depsolve import backend

    repos = _prepare(repositories, arch, releasever)
    return backend.current().module.search(
        repos, arch=arch, releasever=releasever, cache=_cache(cache_dir, metadata_expire),
        globs=None if globs is None else list(globs))


def search_page(repositories: Iterable[RepositoryLike], *, arch: str, releasever: str,
                cache_dir: Path | str, globs: list[str] | None = None, offset: int = 0,
                limit: int = 20, metadata_expire: int | None = None
                ) -> tuple[int, list[dict[str, Any]]]:
    """(total, one page of `search`): projects/list pages without moving the whole catalogue
    out of the solver process on every request."""
    from depsolve import backend

    repos = _prepare(repositories, arch, releasever)
    return backend.current().module.search_page(
        repos, arch=arch, releasever=releasever, cache=_cache(cache_dir, metadata_expire),
        globs=None if globs is None else list(globs), offset=int(offset), limit=int(limit))


def package_names(repositories: Iterable[RepositoryLike], *, arch: str, releasever: str,
                  cache_dir: Path | str, globs: list[str] | None = None,
                  metadata_expire: int | None = None) -> list[str]:
    """Just the sorted distinct names `search` would return (modules/list needs no more)."""
    from depsolve import backend

    repos = _prepare(repositories, arch, releasever)
    return backend.current().module.names(
        repos, arch=arch, releasever=releasever, cache=_cache(cache_dir, metadata_expire),
        globs=None if globs is None else list(globs))


def nevra(package: Mapping[str, Any]) -> dict[str, Any]:
    """The Weldr NEVRA (§5.3) of a depsolved package: name, epoch (int), version, release, arch."""
    return {"name": package["name"], "epoch": int(package.get("epoch") or 0),
            "version": package["version"], "release": package["release"],
            "arch": package["arch"]}


def frozen_version(package: Mapping[str, Any]) -> str:
    """`[epoch:]version-release.arch` as blueprints/freeze writes it (epoch left out when 0)."""
    epoch = int(package.get("epoch") or 0)
    text = f"{package['version']}-{package['release']}.{package['arch']}"
    return f"{epoch}:{text}" if epoch else text


def take_metadata_traffic() -> dict[str, int]:
    """{"cache_hit": bytes, "downloaded": bytes} of repository metadata this process used since
    the last call (then reset): the depsolve task records them as the service's metrics."""
    from depsolve.metadata import take_traffic

    return take_traffic()
