"""distros.manifestmock: images' deterministic stand-ins for depsolve, containers and commits."""

from __future__ import annotations

import hashlib

import pytest

from distros import manifestmock

REPO = {"name": "baseos", "baseurl": "https://rpmrepo.osbuild.org/v2/mirror/rhvpn/el9/el9-x86_64-baseos-n9.6-20250730",
        "check_gpg": True, "gpgkeys": ["KEY"]}


def sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def test_repo_hash_counts_optional_booleans_by_presence_not_value() -> None:
    """Go's Hash() formats *bool with %T: `*bool` whether true or false."""
    on = manifestmock.repo_config(REPO)
    off = manifestmock.repo_config(dict(REPO, check_gpg=False))
    assert on["id"] == off["id"] == sha(REPO["baseurl"] + "KEY" + "*bool" + "bool")
    custom = manifestmock.repo_config({"name": "cuda", "baseurls": ["https://example.org/x/"]})
    assert custom["id"] == sha("https://example.org/x/" + "bool")


def test_depsolve_chain_makes_images_packages() -> None:
    repo = manifestmock.repo_config(REPO)
    chain = [{"include": ["kernel", "bash"], "exclude": ["foo"], "install_weak_deps": True, "repositories": [repo]},
             {"include": ["chrony"], "install_weak_deps": False, "repositories": [repo]}]
    txs = manifestmock.depsolve_chain("os", chain, "x86_64", ["/etc/pki/key"])
    assert len(txs) == 2
    first = {p["name"]: p for p in txs[0]}
    kernel = first["kernel"]
    checksum = sha("pkgset:os_trans:0_include:kernel")
    assert kernel["checksum"] == "sha256:" + checksum
    assert kernel["version"] == str(ord(checksum[0]) % 5)
    assert kernel["release"] == f"{ord(checksum[1]) % 9}.pkgset~os^trans~0"
    assert kernel["remote_location"] == f"{REPO['baseurl']}/packages/kernel-0:{kernel['version']}-{kernel['release']}.x86_64.rpm"
    assert kernel["check_gpg"] is True
    assert "exclude:foo" in first
    config = first["pkgset:os_trans:0_repos:baseos+weak"]
    assert config["files"] == manifestmock.GPG_KEYS_FROM_TREE + ["/etc/pki/key"]
    pseudo = [p for p in txs[0] if p["name"].startswith("https://example.com/")]
    assert [p["name"] for p in pseudo] == [
        "https://example.com/passed-arch:x86_64/passed-repo:/v2/mirror/rhvpn/el9/el9-x86_64-baseos-n9.6"]
    # a repository appears once per chain; the second transaction names its own config package
    assert not [p for p in txs[1] if p["name"].startswith("https://")]
    assert "pkgset:os_trans:1_repos:baseos" in {p["name"] for p in txs[1]}
    for tx in txs:
        assert tx == sorted(tx, key=manifestmock.full_nevra)


def test_depsolve_refuses_a_set_without_repositories() -> None:
    with pytest.raises(ValueError):
        manifestmock.depsolve({"os": [{"include": ["bash"]}]}, "x86_64")


def test_root_dir_solver_uses_a_dummy_repository() -> None:
    pkgs = manifestmock.depsolve({"build": [{"include": ["bash"]}]}, "aarch64", use_root_dir=True)["build"]
    assert {p["repo_id"] for p in pkgs} == {manifestmock.repo_config(manifestmock.ROOT_DIR_REPO)["id"]}


def test_containers_and_commits() -> None:
    bp = {"containers": [{"source": "registry.example.org/a"}, {"source": "r.example.org/b", "name": "b:v1"}]}
    specs = manifestmock.resolve_containers(bp)["os"]
    assert specs[0]["Digest"] == "sha256:" + sha("registry.example.org/adigest")
    assert specs[0]["LocalName"] == "registry.example.org/a"
    assert specs[1]["ImageID"] == "sha256:" + sha("b:v1r.example.org/bimageid")
    assert specs[1]["ListDigest"] == "sha256:" + sha("b:v1r.example.org/blist-digest")
    commit = manifestmock.resolve_commit("https://ostree.example.org/repo", "rhel/9/x86_64/edge", rhsm=True)
    assert commit == {"ref": "rhel/9/x86_64/edge", "url": "https://ostree.example.org/repo",
                      "checksum": sha("https://ostree.example.org/reporhel/9/x86_64/edge"),
                      "secrets": "org.osbuild.rhsm.consumer"}
