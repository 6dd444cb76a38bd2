"""Depsolving against real repositories built from tests/depsolve/specs, served over file://."""

from __future__ import annotations

import hashlib
import urllib.parse
from pathlib import Path

import pytest

from depsolve import (
    DepsolveError,
    PackageSet,
    Repository,
    RepositoryError,
    depsolve,
    frozen_version,
    nevra,
)

KEYS = {"name", "epoch", "version", "release", "arch", "remote_location", "checksum", "check_gpg",
        "repo_id"}


def solve(repo_defs, cache_dir, *sets, **kwargs):
    kwargs.setdefault("arch", "x86_64")
    kwargs.setdefault("releasever", "9")
    return depsolve(list(sets), repo_defs, cache_dir=cache_dir, **kwargs)


def names(packages) -> list[str]:
    return [p["name"] for p in packages]


def by_name(packages) -> dict[str, dict]:
    return {p["name"]: p for p in packages}


def test_bash_pulls_its_requirements_in_the_golden_shape(repo_defs, cache_dir, test_repos):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["bash"]))
    assert names(packages) == ["bash", "filesystem", "glibc", "ncurses-base", "ncurses-libs",
                               "setup"]
    for package in packages:
        assert set(package) == KEYS
        assert isinstance(package["epoch"], int)
        assert package["checksum"].startswith("sha256:")
        # Pinned per package: the URL is the repository's baseurl + location, and the checksum
        # is the one of the very file it points to.
        path = Path(urllib.parse.urlsplit(package["remote_location"]).path)
        assert path.parent == test_repos[package["repo_id"]] / "Packages"
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        assert package["checksum"] == f"sha256:{digest}"
    bash = by_name(packages)["bash"]
    assert (bash["version"], bash["release"], bash["arch"]) == ("5.1.8", "6.el9", "x86_64")
    assert bash["repo_id"] == "baseos" and bash["check_gpg"] is True


def test_epoch_is_an_integer_and_freezes_with_a_colon(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["util-linux"]))
    util = by_name(packages)["util-linux"]
    assert util["epoch"] == 2
    assert frozen_version(util) == "2:2.37.4-10.el9.x86_64"
    assert nevra(util) == {"name": "util-linux", "epoch": 2, "version": "2.37.4",
                           "release": "10.el9", "arch": "x86_64"}
    assert frozen_version(by_name(packages)["glibc"]) == "2.34-60.el9.x86_64"
    # Versioned requirement with an epoch: util-linux-core = 2:2.37.4-10.el9
    assert by_name(packages)["util-linux-core"]["epoch"] == 2


def test_versioned_requires_and_file_requires_from_filelists(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["tmux"], install_weak_deps=False))
    found = by_name(packages)
    # libevent >= 2.1: the appstream build, not baseos' 2.0.22
    assert found["libevent"]["version"] == "2.1.12"
    assert found["libevent"]["repo_id"] == "appstream"
    assert found["libevent"]["check_gpg"] is False
    # /usr/share/terminfo/t/tmux is only in filelists (not in primary's short file list)
    assert "ncurses-base" in found
    assert "bash-completion" not in found


def test_weak_dependencies_follow_install_weak_deps(repo_defs, cache_dir):
    [with_weak] = solve(repo_defs, cache_dir, PackageSet(["tmux"]))
    [without] = solve(repo_defs, cache_dir, PackageSet(["tmux"], install_weak_deps=False))
    assert "bash-completion" in names(with_weak)
    # bash-completion requires bash, which came in only through it
    assert set(names(with_weak)) - set(names(without)) == {"bash-completion", "bash"}


def test_core_group_installs_mandatory_default_and_met_conditional(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["@core"]))
    found = set(names(packages))
    assert {"bash", "filesystem", "util-linux", "firewalld", "chrony"} <= found
    assert "ntp" not in found  # optional
    assert "langpacks-en" in found  # conditional on glibc, which is in
    assert "langpacks-de" not in found  # conditional on ntp, which is not


def test_group_by_name_and_environment(repo_defs, cache_dir):
    [by_id] = solve(repo_defs, cache_dir, PackageSet(["@core"]))
    [by_group_name] = solve(repo_defs, cache_dir, PackageSet(["@Core"]))
    assert by_id == by_group_name
    [environment] = solve(repo_defs, cache_dir, PackageSet(["@^minimal-environment"]))
    assert {"tmux", "vim-enhanced", "bash", "chrony"} <= set(names(environment))


def test_excludes_hide_group_members_and_dependencies(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir,
                       PackageSet(["@core"], exclude=["firewalld", "langpacks-*"]))
    found = set(names(packages))
    assert "firewalld" not in found
    assert not any(n.startswith("langpacks-") for n in found)
    assert "bash" in found


def test_excluded_request_is_a_marking_error(repo_defs, cache_dir):
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["langpacks-en"], exclude=["langpacks-*"]))
    assert info.value.kind == "marking"
    assert "filtered out by exclude filtering for argument: langpacks-en" in str(info.value)


def test_unsatisfiable_names_the_package_and_the_requirement(repo_defs, cache_dir):
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["tmux", "broken-app"]))
    message = str(info.value)
    assert info.value.kind == "depsolve"
    # dnf's words, which composer-cli users know
    assert message == ("Problem: conflicting requests\n"
                       "  - nothing provides libfoo >= 9 needed by broken-app-1.0-1.el9.noarch")


def test_conflict_names_both_packages(repo_defs, cache_dir):
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["chrony", "ntp"]))
    message = str(info.value)
    assert "chrony-4.3-1.el9.x86_64" in message and "conflicts with ntp" in message


def test_unknown_names_are_all_reported(repo_defs, cache_dir):
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["tmux", "no-such-thing", "@no-such-group"]))
    message = str(info.value)
    assert "No match for argument: no-such-thing" in message
    assert "No match for group: no-such-group" in message
    assert info.value.kind == "marking"


def test_provides_files_globs_and_nevras(repo_defs, cache_dir):
    [release] = solve(repo_defs, cache_dir, PackageSet(["system-release"]))
    assert names(release) == ["centos-stream-release"]
    [by_file] = solve(repo_defs, cache_dir, PackageSet(["/usr/share/terminfo/t/tmux"]))
    assert names(by_file) == ["ncurses-base"]
    [by_glob] = solve(repo_defs, cache_dir, PackageSet(["vim-*"]))
    assert {"vim-enhanced", "vim-common", "vim-filesystem"} <= set(names(by_glob))
    [by_nevra] = solve(repo_defs, cache_dir, PackageSet(["libevent-2.0.22-1.el9.x86_64"]))
    assert by_name(by_nevra)["libevent"]["version"] == "2.0.22"
    [by_arch] = solve(repo_defs, cache_dir, PackageSet(["glibc.x86_64"]))
    assert "glibc" in names(by_arch)
    # name-version with no dot (rpm compares 2_0_22 equal to 2.0.22), and a provide whose
    # first word is also a package name: both as dnf reads them.
    [by_name_version] = solve(repo_defs, cache_dir, PackageSet(["libevent-2_0_22"]))
    assert by_name(by_name_version)["libevent"]["version"] == "2.0.22"
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["libevent-nonesuch"]))
    assert "No match for argument: libevent-nonesuch" in str(info.value)


def test_chain_builds_on_the_previous_transaction(repo_defs, cache_dir):
    base, extended = solve(repo_defs, cache_dir,
                           PackageSet(["libevent-2.0.22"], install_weak_deps=False),
                           PackageSet(["bash"], exclude=["libevent"]))
    assert by_name(base)["libevent"]["version"] == "2.0.22"
    # The second set keeps every package of the first, exactly as chosen, even the one it
    # excludes for its own resolution.
    assert {(p["name"], p["version"]) for p in base} <= {(p["name"], p["version"]) for p in extended}
    assert "bash" in names(extended)
    with pytest.raises(DepsolveError):
        # tmux needs libevent >= 2.1, but the chain pinned 2.0.22
        solve(repo_defs, cache_dir, PackageSet(["libevent-2.0.22"]), PackageSet(["tmux"]))


def test_modular_packages_hidden_unless_hotfix_repository(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["nginx"]))
    assert by_name(packages)["nginx"]["version"] == "1.20.1"
    with pytest.raises(DepsolveError) as info:
        solve(repo_defs, cache_dir, PackageSet(["nginx-1.22.1"]))
    assert "modular filtering" in str(info.value)
    hotfix = [dict(repo_defs[0]), dict(repo_defs[1], module_hotfixes=True)]
    [packages] = solve(hotfix, cache_dir, PackageSet(["nginx"]), module_platform_id="platform:el9")
    assert by_name(packages)["nginx"]["version"] == "1.22.1"


def test_result_is_sorted_and_deterministic(repo_defs, cache_dir, cold):
    [first] = solve(repo_defs, cache_dir, PackageSet(["@^minimal-environment", "kernel"]))
    [second] = solve(list(reversed(repo_defs)), cache_dir,
                     PackageSet(["kernel", "@^minimal-environment"]))
    assert first == second
    keys = [(p["name"], p["epoch"], p["version"], p["release"], p["arch"]) for p in first]
    assert keys == sorted(keys)


def test_variables_are_substituted_in_urls(test_repos, cache_dir):
    root = test_repos["baseos"].parent.as_uri()
    repos = [{"id": "base", "baseurl": root + "/${name}os/"}]
    # An unknown variable stays as written, and the error names the URL it produced.
    with pytest.raises(RepositoryError) as info:
        depsolve([PackageSet(["bash"])], repos, arch="x86_64", releasever="9", cache_dir=cache_dir)
    assert "${name}os" in str(info.value) and "'base'" in str(info.value)
    repo = Repository.from_dict({"id": "r", "baseurl": "http://h/$releasever/$basearch/os/"})
    assert repo.substituted("i686", "9.2").baseurl == ("http://h/9.2/i386/os/",)


def test_empty_chain_and_no_repositories(repo_defs, cache_dir):
    assert solve(repo_defs, cache_dir) == []
    with pytest.raises(RepositoryError):
        depsolve([PackageSet(["bash"])], [], arch="x86_64", releasever="9", cache_dir=cache_dir)


def test_weldr_source_dicts_are_accepted(test_repos, cache_dir):
    sources = [{"id": "my-base", "name": "Base", "type": "yum-baseurl",
                "url": test_repos["baseos"].as_uri(), "check_gpg": False, "check_ssl": True,
                "system": False}]
    [packages] = depsolve([{"include": ["bash"]}], sources, arch="x86_64", releasever="9",
                          cache_dir=cache_dir)
    assert {p["repo_id"] for p in packages} == {"my-base"}


def test_version_globs_as_blueprints_write_them(repo_defs, cache_dir):
    # blueprint {"name": "libevent", "version": "2.0*"} is asked for as "libevent-2.0*"
    [old] = solve(repo_defs, cache_dir, PackageSet(["libevent-2.0*"]))
    assert by_name(old)["libevent"]["version"] == "2.0.22"
    [newest] = solve(repo_defs, cache_dir, PackageSet(["libevent-2.*", "util-linux-2:2.37*"]))
    assert by_name(newest)["libevent"]["version"] == "2.1.12"
    assert "util-linux" in by_name(newest)
    with pytest.raises(DepsolveError, match="No match for argument: tmux-4"):
        solve(repo_defs, cache_dir, PackageSet(["tmux-4*"]))


def test_enabled_module_stream_shows_its_packages(repo_defs, cache_dir):
    [packages] = solve(repo_defs, cache_dir, PackageSet(["nginx"], enable_modules=["nginx:1.22"]))
    assert by_name(packages)["nginx"]["release"] == "3.module_el9+1+0a1b2c3d"
    # @module:stream[/profile] enables the stream and installs the (default) profile
    for spec in ("@nginx:1.22", "@nginx:1.22/common"):
        [packages] = solve(repo_defs, cache_dir, PackageSet([spec]))
        assert by_name(packages)["nginx"]["version"] == "1.22.1", spec
    # enabled for the rest of the chain, like dnf's module enable
    base, later = solve(repo_defs, cache_dir, PackageSet(["bash"], enable_modules=["nginx:1.22"]),
                        PackageSet(["nginx"]))
    assert by_name(later)["nginx"]["version"] == "1.22.1"
    # without it, the plain build
    [plain] = solve(repo_defs, cache_dir, PackageSet(["nginx"]))
    assert by_name(plain)["nginx"]["version"] == "1.20.1"


def test_module_stream_errors(repo_defs, cache_dir):
    with pytest.raises(DepsolveError, match="No match for module stream: nginx:9.9"):
        solve(repo_defs, cache_dir, PackageSet(["nginx"], enable_modules=["nginx:9.9"]))
    with pytest.raises(DepsolveError, match="No profile server in module nginx:1.22"):
        solve(repo_defs, cache_dir, PackageSet(["@nginx:1.22/server"]))
    with pytest.raises(ValueError):
        PackageSet(["nginx"], enable_modules=["nginx"])


def test_cached_modular_hidden_set_is_checked_before_use(repo_defs, cache_dir):
    """The libsolv backend caches which packages modularity hides, by solvable id; an entry
    that does not name the same package in the loaded pool makes it compute them again."""
    from depsolve import backend, solver_solv

    if backend.current().module is not solver_solv:
        pytest.skip("the modular-hidden cache belongs to the libsolv backend")
    solver_solv.forget_pools()  # a warm pool from another test wrote into its own cache_dir
    solve(repo_defs, cache_dir, PackageSet(["nginx"]))
    cached = list(Path(cache_dir).glob("rpmmd/*/*.hidden-*.json"))
    assert cached
    count = len(list(solver_solv._POOLS.values())[-1].pool.solvables)  # the pool just used
    for bogus in (f'{{"solvables": {count}, "hidden": [[2, "nonesuch-1-1.noarch"]]}}',
                  f'{{"solvables": {count}, "hidden": [[1000000000, "x"]]}}',
                  '{"solvables": 1, "hidden": []}', "[]", "{"):
        for path in cached:
            path.write_text(bogus)
        solver_solv.forget_pools()
        [packages] = solve(repo_defs, cache_dir, PackageSet(["nginx"]))
        assert by_name(packages)["nginx"]["version"] == "1.20.1", bogus
