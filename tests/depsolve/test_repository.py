"""Repository definitions in their three spellings, substitution, durations, mirror documents;
and the real CentOS Stream 9 metadata from ../shared/repodata when it is there."""

from __future__ import annotations

import json
import lzma
from pathlib import Path

import pytest

from depsolve import PackageSet, Repository, RepositoryError, depsolve, search
from depsolve.packageset import as_chain
from depsolve.repository import (
    NEVER,
    basearch,
    parse_duration,
    parse_metalink,
    parse_mirrorlist,
)

SHARED = Path(__file__).resolve().parents[2].parent / "shared"


def test_images_repository_entry():
    repo = Repository.from_dict({
        "name": "fedora", "metalink": "https://mirrors.fedoraproject.org/metalink?repo=fedora-43&arch=x86_64",
        "check_gpg": True, "gpgkey": "-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n", "rhsm": False,
        "metadata_expire": "6h"})
    assert repo.id == "fedora" and repo.metalink.endswith("arch=x86_64") and not repo.baseurl
    assert repo.check_gpg and repo.gpgkeys == ("-----BEGIN PGP PUBLIC KEY BLOCK-----\nabc\n",)
    assert repo.metadata_expire == 6 * 3600


def test_weldr_sources_v0_and_v1():
    v1 = Repository.from_dict({"id": "my-repo", "name": "My $releasever", "type": "yum-mirrorlist",
                               "url": "http://mirrors/list", "check_gpg": False,
                               "check_ssl": False, "proxy": "http://proxy:3128",
                               "gpgkeys": ["file:///etc/pki/key"], "system": False})
    assert (v1.id, v1.mirrorlist, v1.sslverify, v1.proxy) == (
        "my-repo", "http://mirrors/list", False, "http://proxy:3128")
    assert v1.gpgkeys == ("file:///etc/pki/key",)
    v0 = Repository.from_dict({"name": "old", "type": "yum-baseurl", "url": "http://base/",
                               "check_gpg": True, "check_ssl": True, "gpgkey_urls": ["k"]})
    assert v0.id == "old" and v0.baseurl == ("http://base/",) and v0.gpgkeys == ("k",)
    with pytest.raises(RepositoryError, match="unknown source type"):
        Repository.from_dict({"id": "x", "type": "yum-torrent", "url": "magnet:"})


def test_osbuild_solver_spelling_round_trips():
    data = {"id": "baseos", "baseurl": ["http://a/", "http://b/"], "gpgcheck": True,
            "repo_gpgcheck": True, "sslverify": True, "module_hotfixes": True,
            "metadata_expire": "20s"}
    repo = Repository.from_dict(data)
    assert repo.baseurl == ("http://a/", "http://b/") and repo.check_repogpg
    assert repo.module_hotfixes and repo.metadata_expire == 20
    assert Repository.from_dict(repo.to_dict()) == repo


def test_invalid_definitions_name_the_repository():
    with pytest.raises(RepositoryError, match="'empty' has none of baseurl"):
        Repository.from_dict({"id": "empty"})
    with pytest.raises(RepositoryError, match="without an id"):
        Repository.from_dict({"baseurl": "http://x/"})
    with pytest.raises(RepositoryError, match="'t'.*metadata_expire"):
        Repository.from_dict({"id": "t", "baseurl": "http://x/", "metadata_expire": "soon"})


def test_durations_and_basearch():
    assert [parse_duration(v) for v in (None, 30, "20s", "90m", "6h", "2d", "never", -1, "0")] \
        == [None, 30, 20, 5400, 21600, 172800, NEVER, NEVER, 0]
    assert basearch("i686") == "i386" and basearch("x86_64") == "x86_64"
    assert basearch("armv7hl") == "armhfp" and basearch("riscv64") == "riscv64"


def test_cache_key_depends_on_the_source_not_the_id():
    a = Repository.from_dict({"id": "a", "baseurl": "http://h/BaseOS/x86_64/os/"})
    b = Repository.from_dict({"id": "b", "baseurl": "http://h/BaseOS/x86_64/os/"})
    c = Repository.from_dict({"id": "a", "baseurl": "http://h/AppStream/x86_64/os/"})
    assert a.cache_key() == b.cache_key() != c.cache_key()
    assert a.cache_key().startswith("x86_64-os-")


def test_metalink_and_mirrorlist_documents():
    doc = b"""<?xml version="1.0"?><metalink version="3.0" xmlns="http://www.metalinker.org/">
    <files><file name="repomd.xml"><verification><hash type="sha256">AB</hash></verification>
    <resources>
      <url protocol="rsync" preference="100">rsync://m/repodata/repomd.xml</url>
      <url protocol="https" preference="90">https://m2/pub/repodata/repomd.xml</url>
      <url protocol="https" preference="99">https://m1/pub/repodata/repomd.xml</url>
      <url protocol="http" preference="99">http://m3/pub/repodata/repomd.xml</url>
    </resources></file></files></metalink>"""
    mirrors = parse_metalink(doc, "https://mm/metalink")
    assert mirrors.baseurls == ("https://m1/pub/", "http://m3/pub/", "https://m2/pub/")
    assert mirrors.repomd_checksums == (("sha256", "ab"),)
    with pytest.raises(ValueError):
        parse_metalink(b"<html/>", "x")
    assert parse_mirrorlist(b"# c\n\nhttp://a/\nftp://b/\nbogus\n").baseurls == ("http://a/", "ftp://b/")


def test_package_set_spellings():
    osbuild = {"package-specs": ["@core", "tmux"], "exclude-specs": ["nss"],
               "install_weak_deps": False}
    [ours, theirs] = as_chain([PackageSet(["@core", "tmux"], ["nss"], False), osbuild])
    assert ours == theirs and ours.to_dict()["include"] == ["@core", "tmux"]
    with pytest.raises(ValueError):
        PackageSet(["ok", ""])


# --- real metadata -----------------------------------------------------------------------------

def shared_repos(shared_repodata: Path) -> list[dict]:
    return [{"id": "baseos", "baseurl": (shared_repodata / "cs9-baseos-2022").as_uri() + "/",
             "check_gpg": True},
            {"id": "appstream", "baseurl": (shared_repodata / "cs9-appstream-2025").as_uri() + "/",
             "check_gpg": True}]


QCOW2_LIKE = PackageSet(
    ["@core", "kernel", "dracut-config-generic", "grub2-pc", "chrony", "NetworkManager",
     "cockpit-system", "qemu-guest-agent", "tuned", "tar", "rsync", "tmux"],
    exclude=["dracut-config-rescue", "firewalld", "langpacks-*", "plymouth", "rsyslog",
             "python3-libselinux"])


def test_real_centos_stream_metadata(shared_repodata, tmp_path):
    [packages] = depsolve([QCOW2_LIKE], shared_repos(shared_repodata), arch="x86_64",
                          releasever="9", cache_dir=tmp_path)
    found = {p["name"]: p for p in packages}
    assert len(packages) > 250
    assert {"bash", "filesystem", "kernel-core", "systemd", "grub2-pc", "tmux"} <= set(found)
    assert not {"firewalld", "dracut-config-rescue", "plymouth"} & set(found)
    assert all(p["checksum"].startswith("sha256:") and len(p["checksum"]) == 71 for p in packages)
    assert found["bash"]["remote_location"].endswith("/cs9-baseos-2022/Packages/"
                                                     "bash-5.1.8-2.el9.x86_64.rpm")
    assert {p["arch"] for p in packages} <= {"x86_64", "noarch"}
    # modular filtering: nginx from the default (non-modular) build, not a module stream
    [nginx] = depsolve([PackageSet(["nginx"])], shared_repos(shared_repodata), arch="x86_64",
                       releasever="9", cache_dir=tmp_path)
    assert all("module" not in p["release"] for p in nginx)


def test_real_metadata_search(shared_repodata, tmp_path):
    [tmux] = search(shared_repos(shared_repodata), arch="x86_64", releasever="9",
                    cache_dir=tmp_path, globs=["tmux"])
    assert tmux["summary"] and tmux["homepage"].startswith("http")
    assert all(b["arch"] == "x86_64" for b in tmux["builds"])


def test_golden_rpmmd_shape_matches(shared_repodata, tmp_path):
    golden = SHARED / "golden" / "dev" / "centos_9-x86_64-qcow2-boot.json.xz"
    if not golden.exists():
        pytest.skip(f"{golden} not present")
    expected_keys = set(json.load(lzma.open(golden))["rpmmd"]["os"][0])
    [packages] = depsolve([PackageSet(["tmux"])], shared_repos(shared_repodata), arch="x86_64",
                          releasever="9", cache_dir=tmp_path)
    assert set(packages[0]) == expected_keys | {"repo_id"}


def test_missing_releasever_stays_visible():
    repo = Repository.from_dict({"id": "r", "baseurl": "http://h/$releasever/$basearch/"})
    assert repo.substituted("x86_64", "").baseurl == ("http://h/$releasever/x86_64/",)
    assert repo.substituted("aarch64", "9").baseurl == ("http://h/9/aarch64/",)


def test_every_system_repository_definition_is_understood():
    root = Path(__file__).resolve().parents[2] / "repositories"
    count = 0
    for path in sorted(root.glob("*.json")):
        for arch, entries in json.loads(path.read_text()).items():
            for entry in entries:
                repo = Repository.from_dict(entry).substituted(arch, "9")
                assert repo.baseurl or repo.metalink or repo.mirrorlist, (path.name, entry)
                assert "$basearch" not in repo.source_url
                count += 1
    if count == 0:
        pytest.skip("no repositories/*.json in this checkout")


def test_glob_excludes_name_what_libsolv_selection_names(shared_repodata, tmp_path):
    """Exclude globs are matched with a name Dataiterator instead of a selection (faster);
    both must name the same packages, disabled (not considered) ones included."""
    import solv

    from depsolve import _prepare
    from depsolve.metadata import MetadataCache
    from depsolve.solver_solv import loaded_pool

    repos = _prepare(shared_repos(shared_repodata), "x86_64", "9")
    pool = loaded_pool(repos, arch="x86_64", cache=MetadataCache(tmp_path))
    pool._consider(pool.visible[::2])  # as after an earlier transaction: half disabled
    selection = solv.Selection
    flags = (selection.SELECTION_NAME | selection.SELECTION_GLOB
             | selection.SELECTION_WITH_DISABLED | selection.SELECTION_WITH_BADARCH
             | selection.SELECTION_WITH_SOURCE)
    for pattern in ("langpacks-*", "*-firmware", "python3-?ib*", "[a-c]*", "glibc-langpack-e?"):
        expected = {s.id for s in pool.pool.select(pattern, flags).solvables()}
        assert expected, pattern
        assert pool._excluded([pattern]) == expected, pattern
