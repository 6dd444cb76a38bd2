"""Fixtures of the depsolve tests: real repositories (built once, cached) and a real HTTP server."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.depsolve.repos import RepoServer, built_repos

SHARED_REPODATA = Path(__file__).resolve().parents[2].parent / "shared" / "repodata"


def _tools_missing() -> str | None:
    for tool in ("rpmbuild", "createrepo_c", "modifyrepo_c"):
        if shutil.which(tool) is None:
            return tool
    return None


@pytest.fixture(scope="session")
def test_repos() -> dict[str, Path]:
    missing = _tools_missing()
    if missing:
        pytest.fail(f"{missing} is not installed (tests/debian-packages.txt: rpm, createrepo-c)")
    return built_repos()


@pytest.fixture
def repo_defs(test_repos: dict[str, Path]) -> list[dict]:
    """The two test repositories over file://, as an images-style repository list."""
    return [
        {"name": "baseos", "baseurl": test_repos["baseos"].as_uri() + "/", "check_gpg": True},
        {"name": "appstream", "baseurl": test_repos["appstream"].as_uri() + "/",
         "check_gpg": False},
    ]


@pytest.fixture
def cache_dir(tmp_path: Path) -> Path:
    path = tmp_path / "cache"
    path.mkdir()
    return path


@pytest.fixture(autouse=True)
def quick_retries(monkeypatch):
    """Real retries, shorter waits: the backoff's length is not what these tests check."""
    from depsolve import transport

    monkeypatch.setattr(transport, "BACKOFF", 0.01)


@pytest.fixture
def cold():
    """Forget this process's warm pools, so a test sees loading from disk."""
    from depsolve import solver_solv

    solver_solv.forget_pools()
    yield
    solver_solv.forget_pools()


@pytest.fixture
def server(test_repos: dict[str, Path]):
    """An HTTP server on 127.0.0.1 serving both repositories under /baseos/ and /appstream/."""
    srv = RepoServer(test_repos["baseos"].parent)
    yield srv
    srv.close()


@pytest.fixture(scope="session")
def shared_repodata() -> Path:
    if not (SHARED_REPODATA / "cs9-baseos-2022" / "repodata" / "repomd.xml").exists():
        pytest.skip(f"real CentOS Stream 9 metadata not present at {SHARED_REPODATA}")
    return SHARED_REPODATA
