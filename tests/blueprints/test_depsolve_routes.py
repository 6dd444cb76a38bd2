"""blueprints/depsolve and blueprints/freeze against real RPM repositories.

The repositories are the depsolve area's test repositories (built from spec files with rpmbuild
and createrepo_c, cached), served over file:// as the system repositories of centos-9 through
the server's `--repositories` directory; the server, the solver processes and the solve are real.
"""

from __future__ import annotations

import json
import platform
import shutil
import tomllib
from pathlib import Path

import pytest


@pytest.fixture(scope="module")
def repo_dir(tmp_path_factory) -> Path:
    if platform.machine() != "x86_64":
        pytest.skip("the test repositories are built for x86_64")
    for tool in ("rpmbuild", "createrepo_c", "modifyrepo_c"):
        if shutil.which(tool) is None:
            pytest.skip(f"{tool} is not installed (tests/debian-packages.txt)")
    from tests.depsolve.repos import built_repos

    repos = built_repos()
    directory = tmp_path_factory.mktemp("repositories")
    (directory / "centos-9.json").write_text(json.dumps({"x86_64": [
        {"name": "baseos", "baseurl": repos["baseos"].as_uri() + "/", "check_gpg": False},
        {"name": "appstream", "baseurl": repos["appstream"].as_uri() + "/", "check_gpg": False},
    ]}))
    return directory


@pytest.fixture
def client(start_weldr_server, repo_dir):
    return start_weldr_server(args=["--repositories", str(repo_dir)]).client


BLUEPRINT = '''
name = "solved"
version = "0.0.1"

[[packages]]
name = "tmux"
version = "*"

[[packages]]
name = "vim-*"

[[modules]]
name = "util-linux"
version = "*"
'''


def test_depsolve_and_freeze(client):
    assert client.post_toml("/api/v1/blueprints/new", BLUEPRINT).json() == {"status": True}
    assert client.post_toml("/api/v1/blueprints/new", 'name = "empty"\n').json() == {"status": True}

    body = client.get("/api/v1/blueprints/depsolve/solved,empty", timeout=120).json()
    assert body["errors"] == []
    solved, empty = body["blueprints"]
    assert solved["blueprint"]["packages"][0] == {"name": "tmux", "version": "*"}
    deps = {d["name"]: d for d in solved["dependencies"]}
    assert {"tmux", "libevent", "vim-enhanced", "util-linux", "kernel", "bash", "filesystem"} <= set(deps)
    assert deps["util-linux"]["epoch"] == 2 and isinstance(deps["tmux"]["epoch"], int)
    assert set(deps["tmux"]) == {"name", "epoch", "version", "release", "arch"}
    assert [d["name"] for d in solved["dependencies"]] == sorted(deps)
    # an empty blueprint still depsolves (the kernel and what it needs)
    assert "kernel" in {d["name"] for d in empty["dependencies"]}

    body = client.get("/api/v1/blueprints/freeze/solved", timeout=120).json()
    assert body["errors"] == []
    frozen = body["blueprints"][0]["blueprint"]
    assert frozen["version"] == "0.0.1"
    versions = {p["name"]: p["version"] for p in frozen["packages"]}
    assert versions["tmux"] == f"{deps['tmux']['version']}-{deps['tmux']['release']}.x86_64"
    assert {"vim-common", "vim-enhanced", "vim-filesystem"} <= set(versions)  # the glob expanded
    assert frozen["modules"] == [{"name": "util-linux",
                                  "version": f"2:{deps['util-linux']['version']}-"
                                             f"{deps['util-linux']['release']}.x86_64"}]
    text = client.get("/api/v0/blueprints/freeze/solved?format=toml", timeout=120).text
    assert tomllib.loads(text)["packages"] == frozen["packages"]
    r = client.get("/api/v1/blueprints/freeze/solved,empty?format=toml", timeout=120)
    assert r.status == 400 and r.json()["errors"][0]["id"] == "HTTPError"


def test_depsolve_failure_is_reported_per_blueprint(client):
    client.post_toml("/api/v1/blueprints/new", 'name = "broken"\n[[packages]]\nname = "no-such-package"\n')
    client.post_toml("/api/v1/blueprints/new", BLUEPRINT)
    body = client.get("/api/v0/blueprints/depsolve/broken,solved", timeout=120).json()
    assert [e["id"] for e in body["errors"]] == ["BlueprintsError"]
    assert body["errors"][0]["msg"].startswith("broken: ") and "no-such-package" in body["errors"][0]["msg"]
    broken, solved = body["blueprints"]
    assert broken["dependencies"] == [] and solved["dependencies"]
    # freeze stops at the first failing blueprint, as osbuild-composer does
    body = client.get("/api/v0/blueprints/freeze/broken,solved", timeout=120).json()
    assert body["blueprints"] == [] and len(body["errors"]) == 1
    assert body["errors"][0]["msg"].startswith("broken: ")


def test_distro_checked_on_push(client):
    r = client.post_toml("/api/v1/blueprints/new", 'name = "d"\ndistro = "fedora-99"\n')
    assert r.status == 400
    assert r.json()["errors"] == [{"id": "BlueprintsError",
                                   "msg": "'fedora-99' is not a valid distribution (architecture 'x86_64')"}]
    assert client.post_toml("/api/v1/blueprints/new", 'name = "d"\ndistro = "centos-9"\n').json() == {"status": True}
    assert client.get("/api/v1/blueprints/info/d").json()["blueprints"][0]["distro"] == "centos-9"
