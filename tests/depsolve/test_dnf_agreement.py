"""Same answers as dnf 4 (the solver osbuild-composer's dnf-json used) on the test repositories.

dnf is not a dependency of the project: this runs where the system python3 has it (Debian's
`python3-dnf`, which `make bench-depsolve` installs) and skips elsewhere.
"""

from __future__ import annotations

import json
import subprocess

import pytest

from depsolve import DepsolveError, PackageSet, depsolve

SYSTEM_PYTHON = "/usr/bin/python3"

DNF = r'''
import json, sys, tempfile
import dnf, dnf.exceptions
repos, requests = json.loads(sys.argv[1]), json.loads(sys.argv[2])
out = []
with tempfile.TemporaryDirectory() as cache:
    for request in requests:
        base = dnf.Base()
        base.conf.config_file_path = "/dev/null"
        base.conf.cachedir = cache
        base.conf.persistdir = cache + "/persist"
        base.conf.substitutions["arch"] = "x86_64"
        base.conf.substitutions["basearch"] = "x86_64"
        base.conf.substitutions["releasever"] = "9"
        base.conf.install_weak_deps = request["install_weak_deps"]
        for r in repos:
            repo = dnf.repo.Repo(r["id"], base.conf)
            repo.baseurl = [r["baseurl"]]
            base.repos.add(repo)
        base.fill_sack(load_system_repo=False)
        try:
            base.install_specs(request["include"], request["exclude"])
            base.resolve()
            out.append(sorted(f"{p.name}-{p.epoch}:{p.version}-{p.release}.{p.arch}"
                              for p in base.transaction.install_set))
        except dnf.exceptions.Error as exc:
            out.append("error")
json.dump(out, sys.stdout)
'''

REQUESTS = [
    PackageSet(["bash"]),
    PackageSet(["tmux"]),
    PackageSet(["tmux"], install_weak_deps=False),
    PackageSet(["@core"]),
    PackageSet(["@core"], exclude=["firewalld", "langpacks-*"]),
    PackageSet(["@minimal-environment", "kernel"]),
    PackageSet(["nginx", "system-release", "vim-*"]),
    PackageSet(["/usr/share/terminfo/t/tmux", "libevent-2.0.22"]),
    PackageSet(["broken-app"]),
    PackageSet(["chrony", "ntp"]),
]


def _dnf_available() -> bool:
    try:
        return subprocess.run([SYSTEM_PYTHON, "-c", "import dnf"], capture_output=True,
                              timeout=60).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not _dnf_available(), reason="dnf 4 (python3-dnf) is not installed")
def test_same_package_sets_as_dnf(test_repos, cache_dir):
    repos = [{"id": name, "baseurl": path.as_uri() + "/"} for name, path in test_repos.items()]
    result = subprocess.run(
        [SYSTEM_PYTHON, "-c", DNF, json.dumps(repos),
         json.dumps([r.to_dict() for r in REQUESTS])],
        capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    theirs = json.loads(result.stdout)
    for request, expected in zip(REQUESTS, theirs, strict=True):
        try:
            [packages] = depsolve([request], repos, arch="x86_64", releasever="9",
                                  cache_dir=cache_dir)
            ours = sorted(f"{p['name']}-{p['epoch']}:{p['version']}-{p['release']}.{p['arch']}"
                          for p in packages)
        except DepsolveError:
            ours = "error"
        assert ours == expected, request
