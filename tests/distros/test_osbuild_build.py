"""Manifests of the test distro built by real osbuild from a real test RPM repository.

osbuild is not installed on the development machines (skip then); where it is (and we are root),
the `tar`, `qcow2` (ext4) and `raw-xfs` image types of `test-distro-1` are built with the host as
build root and their content read back without mounting anything.  Set
`TEST_OSBUILD_COMMAND` to run osbuild from a source checkout (see `tests.conftest.real_osbuild`).
"""

from __future__ import annotations

import json
import os
import subprocess
import tarfile
from pathlib import Path

import distros
from tests.conftest import real_osbuild


def build(tmp_path: Path, image_type: str) -> Path:
    command = real_osbuild(image_type)
    from depsolve import PackageSet, depsolve
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
        done = subprocess.run([*command, "--store", str(tmp_path / "store"), "--output-directory",
                               str(out), "--export", export, str(path)],
                              capture_output=True, text=True, timeout=1200)
        assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]
    return out / it.exports[0] / it.filename


def test_tar_is_built(tmp_path: Path) -> None:
    artifact = build(tmp_path, "tar")
    with tarfile.open(artifact) as tar:
        assert any(name.endswith("bin/bash") for name in tar.getnames())


def partitions(raw: Path) -> list[dict]:
    """The image's partition table as sfdisk reads it (no loop device, no mount: vfat and loop
    mounts are not available everywhere this runs)."""
    table = json.loads(subprocess.run(["sfdisk", "--json", str(raw)], capture_output=True, text=True,
                                      check=True).stdout)["partitiontable"]
    assert table["unit"] == "sectors"
    return [{**p, "offset": p["start"] * table.get("sectorsize", 512)} for p in table["partitions"]]


def test_qcow2_is_built(tmp_path: Path) -> None:
    artifact = build(tmp_path, "qcow2")
    assert artifact.read_bytes()[:4] == b"QFI\xfb"
    raw = tmp_path / "disk.raw"
    subprocess.run(["qemu-img", "convert", "-f", "qcow2", "-O", "raw", str(artifact), str(raw)],
                   check=True)
    [root] = partitions(raw)
    assert root["type"].upper() == "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
    # e2fsprogs opens a filesystem inside a file at a byte offset: the tree osbuild copied in
    done = subprocess.run(["debugfs", "-R", "stat /usr/bin/bash", f"{raw}?offset={root['offset']}"],
                          capture_output=True, text=True)
    assert done.returncode == 0 and "Type: regular" in done.stdout, done.stdout + done.stderr


def test_raw_xfs_is_built(tmp_path: Path) -> None:
    artifact = build(tmp_path, "raw-xfs")
    [root] = partitions(artifact)
    with artifact.open("rb") as f:
        f.seek(root["offset"])
        assert f.read(4) == b"XFSB"  # the XFS superblock's magic
