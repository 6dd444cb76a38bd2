"""/projects/* and /modules/* over the socket, answered by the real depsolver from real RPM
repositories built by the depsolve tests' fixture and served over file:// (no network)."""

from __future__ import annotations

import json
import shutil

import pytest

from tests.depsolve.repos import built_repos

V1 = "/api/v1"


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    for tool in ("rpmbuild", "createrepo_c", "modifyrepo_c"):
        if shutil.which(tool) is None:
            pytest.fail(f"{tool} is not installed (tests/debian-packages.txt)")
    repos = built_repos()
    base = tmp_path_factory.mktemp("projects")
    repo_dir = base / "repositories"
    repo_dir.mkdir()
    entries = [{"name": name, "baseurl": path.as_uri() + "/", "check_gpg": False}
               for name, path in sorted(repos.items())]
    (repo_dir / "centos-9.json").write_text(json.dumps({"x86_64": entries, "aarch64": entries}))
    from tests.conftest import WeldrServer

    srv = WeldrServer(base / "srv", args=["--repositories", str(repo_dir)],
                      env={"CELERY_COMPOSER_DEFAULT_DISTRO": "centos-9"}).start()
    yield srv
    srv.stop()


def _err(r, status=400):
    assert r.status == status, r
    return r.json()["errors"][0]


def test_projects_list_paging(server):
    c = server.client
    full = c.get(f"{V1}/projects/list?arch=x86_64&limit=1000").json()
    assert full["total"] == len(full["projects"]) > 5
    names = [p["name"] for p in full["projects"]]
    assert "bash" in names and names == sorted(names, key=str.lower)
    zero = c.get(f"{V1}/projects/list?arch=x86_64&limit=0").json()
    assert zero == {"projects": [], "offset": 0, "limit": 0, "total": full["total"]}
    some = c.get(f"{V1}/projects/list?arch=x86_64&limit=2&offset=1").json()
    assert [p["name"] for p in some["projects"]] == names[1:3]
    assert "dependencies" not in some["projects"][0]
    e = _err(c.get(f"{V1}/projects/list?limit=x"))
    assert e == {"id": "BadLimitOrOffset", "msg": "BadRequest: invalid value for 'limit': x"}
    assert _err(c.get(f"{V1}/projects/list?distro=nope-1"))["id"] == "DistroError"


def test_projects_info_and_depsolve(server):
    c = server.client
    info = c.get(f"{V1}/projects/info/bash,tmux,nothing-like-it?arch=x86_64").json()["projects"]
    assert [p["name"] for p in info] == ["bash", "tmux"]
    build = info[0]["builds"][0]
    assert isinstance(build["epoch"], int) and build["arch"] and build["source"]["version"]
    assert _err(c.get(f"{V1}/projects/info/nothing-like-it?arch=x86_64")) == {
        "id": "UnknownProject", "msg": "No packages have been found."}
    assert _err(c.get(f"{V1}/projects/info?arch=x86_64")) == {
        "id": "UnknownProject", "msg": "No packages specified."}
    deps = c.get(f"{V1}/projects/depsolve/bash?arch=x86_64").json()["projects"]
    names = [d["name"] for d in deps]
    assert "bash" in names and "filesystem" in names
    assert all(isinstance(d["epoch"], int) for d in deps)
    e = _err(c.get(f"{V1}/projects/depsolve/nothing-like-it?arch=x86_64"))
    assert e["id"] == "ProjectsError" and e["msg"].startswith("BadRequest: ")


def test_modules(server):
    c = server.client
    listed = c.get(f"{V1}/modules/list?arch=x86_64&limit=0").json()
    assert listed["modules"] == [] and listed["total"] > 5
    tmux = c.get(f"{V1}/modules/list/tmux?arch=x86_64").json()
    assert tmux["modules"][0] == {"name": "tmux", "group_type": "rpm"}
    glob = c.get(f"{V1}/modules/list/*vim*?arch=x86_64").json()["modules"]
    assert glob and all("vim" in m["name"] for m in glob)
    assert _err(c.get(f"{V1}/modules/list/nothing-like-it?arch=x86_64")) == {
        "id": "UnknownModule", "msg": "No packages have been found."}
    mods = c.get(f"{V1}/modules/info/bash,tmux,nothing-like-it?arch=x86_64").json()["modules"]
    assert [m["name"] for m in mods] == ["bash", "tmux"]
    assert all(m["dependencies"] for m in mods)
    assert _err(c.get(f"{V1}/modules/info/nothing-like-it?arch=x86_64"))["id"] == "UnknownModule"


def test_unreachable_repository_is_a_weldr_error(start_weldr_server, tmp_path):
    repo_dir = tmp_path / "repositories"
    repo_dir.mkdir()
    # a loopback port nobody listens on: the depsolver's fetch fails fast, no outside network
    entry = {"name": "gone", "baseurl": "http://127.0.0.1:9/repo/", "check_gpg": False}
    (repo_dir / "centos-9.json").write_text(json.dumps({"x86_64": [entry]}))
    srv = start_weldr_server(args=["--repositories", str(repo_dir)],
                             env={"CELERY_COMPOSER_DEFAULT_DISTRO": "centos-9"})
    e = _err(srv.client.get(f"{V1}/projects/list?arch=x86_64", timeout=120))
    assert e["id"] == "ProjectsError" and e["msg"].startswith("msg: ")
    e = _err(srv.client.get(f"{V1}/modules/list?arch=x86_64", timeout=120))
    assert e["id"] == "ModulesError"
