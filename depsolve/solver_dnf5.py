"""The libdnf5 backend, used where the host has `python3-libdnf5` (Fedora, RHEL, CentOS).

libdnf5 fetches and caches metadata itself (in `<cache_dir>/libdnf5`), so this backend hands it
the repository definitions as they are and asks it the same questions the libsolv backend
answers, in the same shapes:

- the metadata types: primary, filelists (dnf5 skips them by default, but file requires outside
  primary need them) and comps; modules are filtered by libdnf5 itself;
- a chain: each transaction starts from a fresh goal with the previous transaction's packages
  added as installs, the package sets' excludes as per-transaction user excludes (cleared each
  time), and `install_weak_deps` set per transaction;
- `@group` specs through `group_with_name`, so names and ids both work;
- one baseurl per repository: packages report the first of their remote locations, which for
  a metalink repository is the mirror libdnf5 chose.

It cannot run on this project's CI (Debian has no libdnf5 bindings); the libsolv backend is the
tested one, and `backend.select_backend` is tested with a stand-in module.
"""

from __future__ import annotations

import logging
import os
import tempfile
import threading
import time
from collections import OrderedDict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import libdnf5

from depsolve.errors import DepsolveError, RepositoryError
from depsolve.metadata import MetadataCache
from depsolve.packageset import PackageSet
from depsolve.repository import NEVER, Repository, basearch

log = logging.getLogger(__name__)

NAME = "libdnf5"
MAX_BASES = 3
_GoalProblem = libdnf5.base
_MARKING_PROBLEMS = _GoalProblem.GoalProblem_NOT_FOUND | _GoalProblem.GoalProblem_EXCLUDED


def _config_repo(base, repo: Repository, keydir: Path) -> None:
    sack = base.get_repo_sack()
    handle = sack.create_repo(repo.id)
    conf = handle.get_config()
    conf.name = repo.name or repo.id
    if repo.baseurl:
        conf.baseurl = list(repo.baseurl)
    if repo.metalink:
        conf.metalink = repo.metalink
    if repo.mirrorlist:
        conf.mirrorlist = repo.mirrorlist
    conf.sslverify = repo.sslverify
    try:
        conf.pkg_gpgcheck = repo.check_gpg
    except AttributeError:  # libdnf5 before 5.2 spells it gpgcheck
        conf.gpgcheck = repo.check_gpg
    conf.repo_gpgcheck = repo.check_repogpg
    if repo.proxy:
        conf.proxy = repo.proxy
    keys = []
    for key in repo.gpgkeys:
        if key.startswith("-----BEGIN PGP PUBLIC KEY BLOCK-----"):
            # libdnf5 wants key URLs: an inline key becomes a file under the cache.
            keydir.mkdir(parents=True, exist_ok=True)
            fd, path = tempfile.mkstemp(dir=keydir, suffix=".asc")
            with os.fdopen(fd, "w") as out:
                out.write(key)
            keys.append(f"file://{path}")
        else:
            keys.append(key)
    if keys:
        conf.gpgkey = keys
    if repo.metadata_expire is not None:
        conf.metadata_expire = "-1" if repo.metadata_expire == NEVER else str(repo.metadata_expire)
    conf.module_hotfixes = repo.module_hotfixes


class _Session:
    """A libdnf5 Base with the repositories loaded; reused while its metadata is fresh."""

    def __init__(self, repositories: list[Repository], *, arch: str, releasever: str,
                 module_platform_id: str | None, cache_dir: Path, expire: int) -> None:
        started = time.monotonic()
        self.repositories = {r.id: r for r in repositories}
        self.loaded_at = time.monotonic()
        self.expire = expire
        base = libdnf5.base.Base()
        variables = base.get_vars()
        variables.set("arch", arch)
        variables.set("basearch", basearch(arch))
        if releasever:
            variables.set("releasever", releasever)
        conf = base.get_config()
        conf.config_file_path = "/dev/null"
        conf.cachedir = str(cache_dir / "cache")
        conf.persistdir = str(cache_dir / "persist")
        conf.zchunk = False
        conf.install_weak_deps = True
        conf.optional_metadata_types = ["comps", "filelists"]
        if module_platform_id:
            conf.module_platform_id = module_platform_id
        for repo in repositories:
            _config_repo(base, repo, cache_dir / "gpgkeys")
        base.setup()
        try:
            base.get_repo_sack().load_repos(libdnf5.repo.Repo.Type_AVAILABLE)
        except Exception as exc:
            first = repositories[0]
            raise RepositoryError(f"cannot load repositories: {exc}", first.id,
                                  first.source_url) from None
        self.base = base
        log.info("libdnf5 base for %s (%s) loaded in %.2fs", arch,
                 ", ".join(self.repositories), time.monotonic() - started)

    def fresh(self) -> bool:
        return self.expire == NEVER or time.monotonic() - self.loaded_at < self.expire

    def _package(self, pkg) -> dict[str, Any]:
        repo = self.repositories.get(pkg.get_repo_id())
        locations = list(pkg.get_remote_locations(["https", "http", "ftp", "file"]))
        if not locations:
            raise DepsolveError(f"no download location for {pkg.get_nevra()}")
        checksum = pkg.get_checksum()
        return {
            "name": pkg.get_name(),
            "epoch": int(pkg.get_epoch() or 0),
            "version": pkg.get_version(),
            "release": pkg.get_release(),
            "arch": pkg.get_arch(),
            "remote_location": locations[0],
            "checksum": f"{checksum.get_type_str()}:{checksum.get_checksum()}",
            "check_gpg": bool(repo.check_gpg) if repo else False,
            "repo_id": pkg.get_repo_id(),
        }

    def depsolve(self, chain: list[PackageSet]) -> list[list[dict[str, Any]]]:
        base = self.base
        results: list[list[dict[str, Any]]] = []
        previous: list = []
        for package_set in chain:
            if package_set.enable_modules:
                raise DepsolveError("enabling module streams is not supported with the libdnf5 "
                                    f"backend: {', '.join(package_set.enable_modules)}")
            goal = libdnf5.base.Goal(base)
            sack = base.get_rpm_package_sack()
            sack.clear_user_excludes()
            base.get_config().install_weak_deps = package_set.install_weak_deps
            for pkg in previous:
                goal.add_rpm_install(pkg)
            for pattern in package_set.exclude:
                query = libdnf5.rpm.PackageQuery(base)
                query.filter_available()
                query.filter_name([pattern], libdnf5.common.QueryCmp_GLOB)
                sack.add_user_excludes(query)
            settings = libdnf5.base.GoalJobSettings()
            settings.group_with_name = True
            for spec in package_set.include:
                goal.add_install(spec, settings)
            result = goal.resolve()
            problems = result.get_problems()
            if problems != _GoalProblem.GoalProblem_NO_PROBLEM:
                message = "\n".join(result.get_resolve_logs_as_strings())
                kind = "marking" if not (problems & ~_MARKING_PROBLEMS) else "depsolve"
                raise DepsolveError(message, kind=kind)
            previous = []
            for item in result.get_transaction_packages():
                if libdnf5.base.transaction.transaction_item_action_is_inbound(item.get_action()):
                    previous.append(item.get_package())
            packages = [self._package(pkg) for pkg in previous]
            packages.sort(key=lambda p: (p["name"], p["epoch"], p["version"], p["release"],
                                         p["arch"], p["repo_id"]))
            results.append(packages)
        base.get_rpm_package_sack().clear_user_excludes()
        return results

    def _query(self, globs: list[str] | None):
        packages = []
        patterns = [None] if globs is None else globs
        for pattern in patterns:
            query = libdnf5.rpm.PackageQuery(self.base)
            query.filter_available()
            query.filter_arch(["src", "nosrc"], libdnf5.common.QueryCmp_NEQ)
            if pattern is None:
                pass
            elif "*" in pattern and pattern.startswith("*") and pattern.endswith("*"):
                query.filter_name([pattern.strip("*")], libdnf5.common.QueryCmp_CONTAINS)
            elif any(c in pattern for c in "*?["):
                query.filter_name([pattern], libdnf5.common.QueryCmp_GLOB)
            else:
                query.filter_name([pattern], libdnf5.common.QueryCmp_EQ)
            packages.extend(query)
        return packages

    def names(self, globs: list[str] | None) -> list[str]:
        return sorted({p.get_name() for p in self._query(globs)}, key=lambda n: (n.lower(), n))

    def projects(self, globs: list[str] | None) -> list[dict[str, Any]]:
        by_name: dict[str, dict[str, Any]] = {}
        seen: set[tuple] = set()
        for pkg in self._query(globs):
            key = (pkg.get_name(), int(pkg.get_epoch() or 0), pkg.get_version(),
                   pkg.get_release(), pkg.get_arch())
            if key in seen:
                continue
            seen.add(key)
            project = by_name.setdefault(pkg.get_name(), {
                "name": pkg.get_name(), "summary": pkg.get_summary() or "",
                "description": pkg.get_description() or "", "homepage": pkg.get_url() or "",
                "upstream_vcs": "UPSTREAM_VCS", "builds": []})
            project["builds"].append({
                "arch": pkg.get_arch(),
                "build_time": datetime.fromtimestamp(pkg.get_build_time() or 0, UTC)
                                      .strftime("%Y-%m-%dT%H:%M:%S"),
                "epoch": key[1], "release": pkg.get_release(),
                "changelog": "CHANGELOG_NEEDED", "build_config_ref": "BUILD_CONFIG_REF",
                "build_env_ref": "BUILD_ENV_REF", "metadata": {},
                "source": {"license": pkg.get_license() or "", "version": pkg.get_version(),
                           "source_ref": "SOURCE_REF", "metadata": {}},
            })
        projects = sorted(by_name.values(), key=lambda p: (p["name"].lower(), p["name"]))
        for project in projects:
            project["builds"].sort(key=lambda b: (b["epoch"], b["source"]["version"],
                                                  b["release"], b["arch"]))
        return projects


_SESSIONS: "OrderedDict[tuple, _Session]" = OrderedDict()
_LOCK = threading.Lock()


def _session(repositories: list[Repository], *, arch: str, releasever: str,
             module_platform_id: str | None, cache: MetadataCache) -> _Session:
    key = (arch, releasever, module_platform_id, tuple(repositories))
    with _LOCK:
        session = _SESSIONS.get(key)
        if session is not None and session.fresh():
            _SESSIONS.move_to_end(key)
            return session
        expires = [cache.default_expire if r.metadata_expire is None else r.metadata_expire
                   for r in repositories]
        finite = [e for e in expires if e != NEVER]
        session = _Session(repositories, arch=arch, releasever=releasever,
                           module_platform_id=module_platform_id,
                           cache_dir=cache.root.parent / "libdnf5",
                           expire=min(finite) if finite else NEVER)
        _SESSIONS[key] = session
        while len(_SESSIONS) > MAX_BASES:
            _SESSIONS.popitem(last=False)
        return session


def depsolve(chain: list[PackageSet], repositories: list[Repository], *, arch: str,
             releasever: str, module_platform_id: str | None, cache: MetadataCache
             ) -> list[list[dict[str, Any]]]:
    return _session(repositories, arch=arch, releasever=releasever,
                    module_platform_id=module_platform_id, cache=cache).depsolve(chain)


def search(repositories: list[Repository], *, arch: str, releasever: str, cache: MetadataCache,
           globs: list[str] | None) -> list[dict[str, Any]]:
    return _session(repositories, arch=arch, releasever=releasever, module_platform_id=None,
                    cache=cache).projects(globs)


def search_page(repositories: list[Repository], *, arch: str, releasever: str,
                cache: MetadataCache, globs: list[str] | None, offset: int, limit: int
                ) -> tuple[int, list[dict[str, Any]]]:
    everything = search(repositories, arch=arch, releasever=releasever, cache=cache, globs=globs)
    start = max(0, offset)
    return len(everything), everything[start:start + max(0, limit)]


def names(repositories: list[Repository], *, arch: str, releasever: str, cache: MetadataCache,
          globs: list[str] | None) -> list[str]:
    return _session(repositories, arch=arch, releasever=releasever, module_platform_id=None,
                    cache=cache).names(globs)
