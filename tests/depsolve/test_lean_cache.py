"""The lean solver caches a one-shot `celery-composer depsolve` loads (libsolv backend).

A lean cache is the repository's .solv without what only search reads and without file lists;
it must give the very transactions the full one gives, fall back to the full caches when a pool
needs file provides it did not store, and be made anew when repomd.xml changes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from depsolve import PackageSet, _prepare, backend
from depsolve.metadata import MetadataCache, RepoMetadata

ROOT = Path(__file__).resolve().parents[2]

solver_solv = pytest.importorskip("depsolve.solver_solv")


@pytest.fixture(autouse=True)
def libsolv_one_shot(monkeypatch):
    """The libsolv backend as a one-shot process runs it: lean pools, cache writes left to the
    caller (here the test, standing in for the CLI's writer child)."""
    if backend.current().name != "libsolv":
        pytest.skip("the lean caches belong to the libsolv backend")
    monkeypatch.setenv(solver_solv.DEFER_ENV, "1")
    solver_solv.forget_pools()
    yield
    solver_solv.forget_pools()


def _metadata(repo_defs: list[dict], cache_dir: Path) -> list[RepoMetadata]:
    cache = MetadataCache(cache_dir)
    return [cache.ensure(repo) for repo in _prepare(repo_defs, "x86_64", "9")]


def _from_lean_caches(pool: solver_solv.LoadedPool) -> bool:
    """Whether every repository of the pool came from a lean cache: they have no summaries."""
    return all(not any(s.lookup_str(solver_solv.solv.SOLVABLE_SUMMARY)
                       for s in source.handle.solvables_iter())
               for source in pool.sources.values())


def _full_then_lean(metadata: list[RepoMetadata]) -> solver_solv.LoadedPool:
    """The full caches written, then the lean ones (as the CLI's writer child makes them)."""
    full = solver_solv.LoadedPool(metadata, "x86_64")
    full.write_caches()
    lean_writer = solver_solv.LoadedPool(metadata, "x86_64", lean=True)
    lean_writer.write_caches(lean=True)
    assert all(meta.lean_solv_path.exists() for meta in metadata)
    return full


CHAINS = [
    [PackageSet(["@core", "tmux", "vim-enhanced"], ["bash-completion"])],
    [PackageSet(["tmux"], install_weak_deps=False)],
    [PackageSet(["@core"]), PackageSet(["tmux", "nginx"], ["langpacks-*"])],
]


def test_lean_caches_give_the_full_caches_transactions(repo_defs, cache_dir):
    metadata = _metadata(repo_defs, cache_dir)
    full = _full_then_lean(metadata)
    lean = solver_solv.LoadedPool(metadata, "x86_64", lean=True)
    assert _from_lean_caches(lean) and not _from_lean_caches(full)
    assert not lean._pending  # nothing left to write: a warm run forks no writer
    for chain in CHAINS:
        assert lean.depsolve(chain) == full.depsolve(chain)


def test_lean_caches_on_real_metadata(shared_repodata, tmp_path):
    from tests.depsolve.test_repository import QCOW2_LIKE, shared_repos

    metadata = _metadata(shared_repos(shared_repodata), tmp_path)
    full = _full_then_lean(metadata)
    lean = solver_solv.LoadedPool(metadata, "x86_64", lean=True)
    assert _from_lean_caches(lean)
    chains = [[QCOW2_LIKE], [QCOW2_LIKE, PackageSet(["nginx", "httpd"])],
              [PackageSet(["cockpit-ws", "python3-jsonschema"], install_weak_deps=False)]]
    for chain in chains:
        assert lean.depsolve(chain) == full.depsolve(chain)


def test_file_provides_a_lean_cache_lacks_load_the_full_caches(repo_defs, cache_dir):
    # baseos alone needs /bin/sh only; with appstream, tmux needs /usr/share/terminfo/t/tmux,
    # which only baseos' file lists (ncurses-base) have, and a lean cache has none.
    baseos_only = _metadata(repo_defs[:1], cache_dir)
    _full_then_lean(baseos_only)
    both = _metadata(repo_defs, cache_dir)
    pool = solver_solv.LoadedPool(both, "x86_64", lean=True)
    assert not _from_lean_caches(pool)
    [packages] = pool.depsolve([PackageSet(["tmux"], install_weak_deps=False)])
    assert "ncurses-base" in [p["name"] for p in packages]
    pool.write_caches(lean=True)  # the lean caches now store that file provide too
    again = solver_solv.LoadedPool(both, "x86_64", lean=True)
    assert _from_lean_caches(again)
    assert again.depsolve([PackageSet(["tmux"], install_weak_deps=False)]) == [packages]


def test_a_path_to_install_is_solved_from_the_full_caches(repo_defs, cache_dir):
    metadata = _metadata(repo_defs, cache_dir)
    full = _full_then_lean(metadata)
    from depsolve import depsolve

    chain = [PackageSet(["/usr/share/terminfo/t/tmux"])]
    assert depsolve(chain, repo_defs, arch="x86_64", releasever="9",
                    cache_dir=cache_dir) == full.depsolve(chain)


def _wait_for(paths: list[Path]) -> None:
    """The CLI's writer child makes the caches after the answer: wait for them to appear."""
    deadline = time.monotonic() + 120  # a bound for a loaded machine, not a measurement
    while not all(path.exists() for path in paths):
        assert time.monotonic() < deadline, f"no {[str(p) for p in paths]}"
        time.sleep(0.05)


def test_cli_makes_lean_caches_and_makes_them_anew_when_repomd_changes(test_repos, tmp_path):
    repos = tmp_path / "repos"
    shutil.copytree(test_repos["baseos"], repos / "baseos")
    shutil.copytree(test_repos["appstream"], repos / "appstream")
    cache_dir = tmp_path / "cache"
    env = dict(os.environ, CELERY_COMPOSER_CACHE_DIR=str(cache_dir),
               CELERY_COMPOSER_STATE_DIR=str(tmp_path / "state"),
               CELERY_COMPOSER_METADATA_EXPIRE="0")  # ask for repomd.xml on every run
    env.pop(solver_solv.DEFER_ENV, None)  # the CLI sets it for itself
    repo_defs = [{"id": f"repo-{i}", "baseurl": (repos / name).as_uri() + "/"}
                 for i, name in enumerate(("baseos", "appstream"), 1)]

    def run() -> list[dict]:
        argv = [sys.executable, "-m", "app.cli", "depsolve", "--arch", "x86_64"]
        for repo in repo_defs:
            argv += ["--repo", repo["baseurl"]]
        result = subprocess.run([*argv, "@core", "tmux"], capture_output=True, text=True,
                                cwd=ROOT, env=env, timeout=120)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def lean_paths() -> list[Path]:
        return [meta.lean_solv_path for meta in _metadata(repo_defs, cache_dir)]

    first = run()
    old = lean_paths()
    _wait_for(old)
    assert run() == first  # from the lean caches
    repomd = repos / "baseos" / "repodata" / "repomd.xml"
    repomd.write_bytes(repomd.read_bytes().replace(b"<revision>", b"<revision>7", 1))
    assert run() == first
    new = lean_paths()
    assert new[0] != old[0] and new[1] == old[1]  # named by the new repomd.xml's checksum
    _wait_for(new)
    assert run() == first


def test_a_first_depsolve_looks_its_strings_up_before_createwhatprovides(repo_defs, cache_dir,
                                                                         monkeypatch):
    """createwhatprovides frees libsolv's string hash; a lookup after it rebuilds the hash over
    every string (~8 ms on CentOS Stream 9).  The first chain's names, provides and group
    members are looked up before it, and depsolving that chain asks libsolv for no string."""
    chain = [PackageSet(["@core", "tmux", "vim-enhanced", "bash-completion"],
                        ["dracut-config-rescue", "firewalld", "langpacks-*"])]
    metadata = _metadata(repo_defs, cache_dir)
    expected = solver_solv.LoadedPool(metadata, "x86_64").depsolve(chain)
    pool = solver_solv.LoadedPool(metadata, "x86_64", first=chain)
    asked: list[str] = []
    for method in ("str2id", "select", "rel2id"):
        original = getattr(solver_solv.solv.Pool, method)

        def spy(self, *args, _original=original, _method=method, **kwargs):
            asked.append(f"{_method}{args[:1]}")
            return _original(self, *args, **kwargs)

        monkeypatch.setattr(solver_solv.solv.Pool, method, spy)
    assert pool.depsolve(chain) == expected
    assert asked == []
