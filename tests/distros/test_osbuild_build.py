"""Manifests of the test distro built by real osbuild from a real test RPM repository.

osbuild is not installed on the development machines (skip then); where it is (and we are root),
the `tar` and `qcow2` image types of `test-distro-1` are built with the host as build root.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

import distros

pytestmark = [
    pytest.mark.skipif(shutil.which("osbuild") is None, reason="osbuild is not installed"),
    pytest.mark.skipif(os.geteuid() != 0, reason="osbuild needs root"),
]


def build(tmp_path: Path, image_type: str) -> Path:
    from tasks.depsolve import PackageSet, depsolve
    from tests.depsolve.repos import built_repos

    baseos = built_repos()["baseos"]
    repos = [{"id": "baseos", "baseurl": baseos.as_uri() + "/", "check_gpg": False}]
    it = distros.get_distro("test-distro-1").image_type(os.uname().machine, image_type)
    blueprint = {"packages": [{"name": "bash", "version": "*"}]}
    packages = {}
    for pipeline, chain in it.package_sets(blueprint).items():
        [*_, last] = depsolve([PackageSet(**s) for s in chain], repos, arch=os.uname().machine,
                              releasever="1", cache_dir=tmp_path / "cache")
        packages[pipeline] = last
    manifest = it.manifest(blueprint, packages, repos, None, seed=1)
    path = tmp_path / "manifest.json"
    path.write_text(json.dumps(manifest))
    out = tmp_path / "out"
    for export in it.exports:
        subprocess.run(["osbuild", "--store", str(tmp_path / "store"), "--output-directory", str(out),
                        "--export", export, str(path)], check=True, timeout=1200)
    return out / it.exports[0] / it.filename


def test_tar_is_built(tmp_path: Path) -> None:
    artifact = build(tmp_path, "tar")
    with tarfile.open(artifact) as tar:
        assert any(name.endswith("bin/bash") for name in tar.getnames())


def test_qcow2_is_built(tmp_path: Path) -> None:
    artifact = build(tmp_path, "qcow2")
    assert artifact.read_bytes()[:4] == b"QFI\xfb"
