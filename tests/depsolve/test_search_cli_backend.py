"""Search (projects/modules shapes), the `celery-composer depsolve` command, backend choice."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
import types
from pathlib import Path

import pytest

from depsolve import backend, package_names, search

ROOT = Path(__file__).resolve().parents[2]


def test_search_returns_weldr_project_infos(repo_defs, cache_dir):
    projects = search(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir,
                      globs=["tmux", "libevent"])
    assert [p["name"] for p in projects] == ["libevent", "tmux"]
    tmux = projects[1]
    assert tmux["summary"] == "A terminal multiplexer"
    assert tmux["homepage"] == "https://tmux.github.io/"
    assert tmux["upstream_vcs"] == "UPSTREAM_VCS"
    [build] = tmux["builds"]
    assert build["arch"] == "x86_64" and build["epoch"] == 0 and build["release"] == "4.el9"
    assert build["source"] == {"license": "ISC and BSD", "version": "3.2a",
                               "source_ref": "SOURCE_REF", "metadata": {}}
    assert len(build["build_time"]) == 19 and build["build_time"][10] == "T"
    assert {"changelog", "build_config_ref", "build_env_ref", "metadata"} <= set(build)
    # Two libevent builds (2.0.22 in baseos, 2.1.12 in appstream): one project, two builds.
    assert [b["source"]["version"] for b in projects[0]["builds"]] == ["2.0.22", "2.1.12"]


def test_search_globs_follow_dnf_rules(repo_defs, cache_dir):
    def found(*globs):
        return [p["name"] for p in search(repo_defs, arch="x86_64", releasever="9",
                                          cache_dir=cache_dir, globs=list(globs))]

    assert found("vim*") == ["vim-common", "vim-enhanced", "vim-filesystem"]
    assert found("*core*") == ["kernel-core", "util-linux-core"]
    assert found("dracut-config-?eneric") == ["dracut-config-generic"]
    assert found("tmu") == []
    # Modular packages of inactive streams are not offered: one nginx build, the plain one.
    [nginx] = search(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir,
                     globs=["nginx"])
    assert [b["source"]["version"] for b in nginx["builds"]] == ["1.20.1"]


def test_search_all_and_names(repo_defs, cache_dir):
    everything = search(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir)
    names = package_names(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir)
    assert [p["name"] for p in everything] == names
    assert len(names) == 27  # 29 builds: libevent twice, nginx once visible + once modular
    assert names == sorted(names, key=str.lower)


def run_cli(*args: str, cache_dir: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, CELERY_COMPOSER_CACHE_DIR=str(cache_dir),
               CELERY_COMPOSER_STATE_DIR=str(cache_dir / "state"))
    return subprocess.run([sys.executable, "-m", "app.cli", "depsolve", *args],
                          capture_output=True, text=True, cwd=ROOT, env=env, timeout=120)


def test_cli_prints_the_transaction(test_repos, cache_dir):
    result = run_cli("--repo", test_repos["baseos"].as_uri(), "--repo",
                     test_repos["appstream"].as_uri(), "--arch", "x86_64", "--exclude",
                     "bash-completion", "tmux", "@core", "--cache-dir", str(cache_dir),
                     cache_dir=cache_dir)
    assert result.returncode == 0, result.stderr
    packages = json.loads(result.stdout)
    names = [p["name"] for p in packages]
    assert "tmux" in names and "chrony" in names and "bash-completion" not in names
    assert {p["repo_id"] for p in packages} == {"repo-1", "repo-2"}
    # The solver caches are written by a child after the answer is printed.
    deadline = time.monotonic() + 120  # a bound for a loaded machine
    while len(list((cache_dir / "rpmmd").glob("*/*.solv"))) < 2:
        assert time.monotonic() < deadline, "the CLI left no .solv caches behind"
        time.sleep(0.05)


def test_cli_no_weak_deps_and_errors(test_repos, cache_dir):
    repo = test_repos["appstream"].as_uri()
    base = test_repos["baseos"].as_uri()
    result = run_cli("--repo", base, "--repo", repo, "--no-weak-deps", "--arch", "x86_64",
                     "tmux", cache_dir=cache_dir)
    assert result.returncode == 0
    assert "bash-completion" not in [p["name"] for p in json.loads(result.stdout)]
    result = run_cli("--repo", base, "--repo", repo, "--arch", "x86_64", "broken-app",
                     cache_dir=cache_dir)
    assert result.returncode == 1 and result.stdout == ""
    assert "nothing provides libfoo >= 9 needed by broken-app" in result.stderr
    result = run_cli("--repo", "file:///nonexistent/repo/", "bash", cache_dir=cache_dir)
    assert result.returncode == 2
    assert "'repo-1'" in result.stderr and "file:///nonexistent/repo/repodata/repomd.xml" in result.stderr


def test_cli_imports_stay_lean():
    code = ("import sys, app.cli; app.cli.build_parser(); import depsolve.cli; "
            "print(sorted(m for m in ('flask', 'celery', 'solv', 'sqlalchemy', 'boto3') "
            "if m in sys.modules))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            cwd=ROOT, check=True)
    loaded = json.loads(result.stdout.replace("'", '"'))
    assert "solv" not in loaded and "flask" not in loaded, loaded


class _FakeLibdnf5(types.ModuleType):
    """Stands in for the libdnf5 bindings, which Debian does not package (a mock, knowingly)."""

    def __init__(self) -> None:
        super().__init__("libdnf5")
        version = types.SimpleNamespace(major=5, minor=2, micro=6)
        self.utils = types.SimpleNamespace(get_library_version=lambda: version)


def test_backend_prefers_libdnf5_when_importable():
    sentinel = types.ModuleType("depsolve.solver_dnf5")

    def importer(name):
        return {"libdnf5": _FakeLibdnf5(), "depsolve.solver_dnf5": sentinel}[name]

    chosen = backend.select_backend("auto", importer=importer)
    assert (chosen.name, chosen.version, chosen.module) == ("libdnf5", "5.2.6", sentinel)
    assert chosen.describe() == "depsolve backend: libdnf5 5.2.6"


def test_backend_falls_back_to_libsolv_and_says_why(monkeypatch, caplog):
    monkeypatch.delenv(backend.ENV, raising=False)
    chosen = backend.select_backend()
    assert chosen.name == "libsolv"
    assert chosen.module.__name__ == "depsolve.solver_solv"
    assert "libdnf5 unavailable" in chosen.reason
    monkeypatch.setenv(backend.ENV, "libsolv")
    assert backend.select_backend().reason == ""
    monkeypatch.setenv(backend.ENV, "libdnf5")
    with pytest.raises(ImportError):
        backend.select_backend()
    monkeypatch.setenv(backend.ENV, "yum")
    with pytest.raises(ValueError):
        backend.select_backend()
    monkeypatch.delenv(backend.ENV)
    backend.reset()
    caplog.set_level(logging.INFO, logger="depsolve.backend")
    backend.current()
    assert any(r.getMessage().startswith("depsolve backend: libsolv ") for r in caplog.records)


def test_search_page_hands_out_one_page_and_the_total(repo_defs, cache_dir):
    from depsolve import search_page

    everything = search(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir)
    total, page = search_page(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir,
                              offset=5, limit=4)
    assert total == len(everything) and page == everything[5:9]
    total, page = search_page(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir,
                              globs=["vim*"], offset=1, limit=10)
    assert total == 3 and [p["name"] for p in page] == ["vim-enhanced", "vim-filesystem"]
    assert search_page(repo_defs, arch="x86_64", releasever="9", cache_dir=cache_dir,
                       offset=0, limit=0)[1] == []
