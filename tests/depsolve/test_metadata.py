"""Fetching metadata over a real HTTP server on 127.0.0.1: retries, metalinks, mirrorlists,
broken repositories, expiry, and the on-disk caches."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import time

import pytest

from depsolve import DepsolveError, PackageSet, Repository, RepositoryError, depsolve
from depsolve.metadata import MetadataCache


def solve(repos, cache_dir, include=("tmux",), **kwargs):
    [packages] = depsolve([PackageSet(list(include))], repos, arch="x86_64", releasever="9",
                          cache_dir=cache_dir, **kwargs)
    return packages


def http_repos(server):
    return [{"id": "baseos", "baseurl": f"{server.url}/baseos/"},
            {"id": "appstream", "baseurl": f"{server.url}/appstream/"}]


def metalink(mirrors: list[tuple[str, int]], repomd: bytes) -> bytes:
    urls = "\n".join(
        f'<url protocol="http" type="http" location="US" preference="{pref}">'
        f"{base}repodata/repomd.xml</url>" for base, pref in mirrors)
    return f"""<?xml version="1.0" encoding="utf-8"?>
<metalink version="3.0" xmlns="http://www.metalinker.org/"
          xmlns:mm0="http://fedorahosted.org/mirrormanager" type="dynamic">
 <files>
  <file name="repomd.xml">
   <mm0:timestamp>1700000000</mm0:timestamp>
   <size>{len(repomd)}</size>
   <verification>
    <hash type="md5">{hashlib.md5(repomd).hexdigest()}</hash>
    <hash type="sha256">{hashlib.sha256(repomd).hexdigest()}</hash>
   </verification>
   <resources maxconnections="1">
{urls}
   </resources>
  </file>
 </files>
</metalink>""".encode()


def test_depsolve_over_http_pins_http_urls(server, cache_dir):
    packages = solve(http_repos(server), cache_dir)
    tmux = next(p for p in packages if p["name"] == "tmux")
    assert tmux["remote_location"] == f"{server.url}/appstream/Packages/tmux-3.2a-4.el9.x86_64.rpm"
    assert server.count("/repodata/repomd.xml") == 2


def test_transient_errors_are_retried(server, cache_dir):
    server.fail("/baseos/repodata/repomd.xml", 503, 502)
    primary = next(p for p in server.root.joinpath("appstream", "repodata").iterdir()
                   if "primary" in p.name)
    server.fail(f"/appstream/repodata/{primary.name}", 500)
    packages = solve(http_repos(server), cache_dir)
    assert "tmux" in [p["name"] for p in packages]
    assert server.requests["/baseos/repodata/repomd.xml"] == 3
    assert server.requests[f"/appstream/repodata/{primary.name}"] == 2


def test_a_missing_repository_names_repository_and_url(server, cache_dir):
    repos = [{"id": "gone", "baseurl": f"{server.url}/nowhere/"}]
    with pytest.raises(RepositoryError) as info:
        solve(repos, cache_dir)
    message = str(info.value)
    assert "'gone'" in message and f"{server.url}/nowhere/repodata/repomd.xml" in message
    assert "404" in message
    assert info.value.repo_id == "gone"
    assert server.requests["/nowhere/repodata/repomd.xml"] == 1  # a 404 is not retried


def test_persistent_server_errors_give_up_after_the_retries(server, cache_dir):
    server.fail("/baseos/repodata/repomd.xml", *[503] * 10)
    with pytest.raises(RepositoryError) as info:
        solve(http_repos(server)[:1], cache_dir, include=["bash"])
    assert "503" in str(info.value) and "after 4 attempts" in str(info.value)


def test_refused_connection_is_a_repository_error(cache_dir):
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(RepositoryError) as info:
        solve([{"id": "offline", "baseurl": f"http://127.0.0.1:{port}/repo/"}], cache_dir)
    assert "'offline'" in str(info.value) and f"127.0.0.1:{port}" in str(info.value)


def test_corrupt_document_fails_its_checksum(server, cache_dir):
    primary = next(p for p in server.root.joinpath("baseos", "repodata").iterdir()
                   if "primary" in p.name)
    server.serve(f"/baseos/repodata/{primary.name}", b"not what repomd.xml promised")
    with pytest.raises(RepositoryError) as info:
        solve(http_repos(server)[:1], cache_dir, include=["bash"])
    assert "checksum mismatch" in str(info.value) and primary.name in str(info.value)


def test_broken_repomd_is_reported(server, cache_dir):
    server.serve("/broken/repodata/repomd.xml", b"<html>captive portal</html>")
    with pytest.raises(RepositoryError) as info:
        solve([{"id": "broken", "baseurl": f"{server.url}/broken/"}], cache_dir)
    assert "broken repomd.xml" in str(info.value) and "'broken'" in str(info.value)


def test_metalink_resolves_to_one_current_mirror_and_records_it(server, cache_dir):
    repomd = (server.root / "appstream" / "repodata" / "repomd.xml").read_bytes()
    # Highest preference first: a dead mirror, then a stale one (serving another repomd),
    # then the good one.
    server.serve("/stale/repodata/repomd.xml",
                 (server.root / "baseos" / "repodata" / "repomd.xml").read_bytes())
    server.serve("/metalink?repo=appstream&arch=x86_64", metalink(
        [(f"{server.url}/dead/", 100), (f"{server.url}/stale/", 90),
         (f"{server.url}/appstream/", 50)], repomd))
    repos = [{"id": "baseos", "baseurl": f"{server.url}/baseos/"},
             {"id": "appstream", "metalink": f"{server.url}/metalink?repo=appstream&arch=$basearch"}]
    packages = solve(repos, cache_dir)
    tmux = next(p for p in packages if p["name"] == "tmux")
    assert tmux["remote_location"].startswith(f"{server.url}/appstream/Packages/")
    states = [json.loads(p.read_text()) for p in (cache_dir / "rpmmd").glob("*/state.json")]
    chosen = {s["repo_id"]: s["baseurl"] for s in states}
    assert chosen["appstream"] == f"{server.url}/appstream/"


def test_mirrorlist_takes_the_first_working_mirror(server, cache_dir):
    server.serve("/mirrorlist", f"# mirrors\n{server.url}/dead/\n{server.url}/baseos/\n".encode())
    packages = solve([{"id": "base", "mirrorlist": f"{server.url}/mirrorlist"}], cache_dir,
                     include=["bash"])
    assert all(p["remote_location"].startswith(f"{server.url}/baseos/") for p in packages)
    assert server.requests["/dead/repodata/repomd.xml"] == 1


def test_metalink_that_cannot_be_fetched(server, cache_dir):
    with pytest.raises(RepositoryError) as info:
        solve([{"id": "fedora", "metalink": f"{server.url}/no-metalink"}], cache_dir)
    assert "metalink" in str(info.value) and f"{server.url}/no-metalink" in str(info.value)


def test_fresh_metadata_is_not_asked_for_again(server, cache_dir):
    solve(http_repos(server), cache_dir)
    before = sum(server.requests.values())
    solve(http_repos(server), cache_dir, include=["bash"])
    assert sum(server.requests.values()) == before


def test_expired_metadata_costs_one_repomd_request_when_unchanged(server, cache_dir):
    repos = [dict(r, metadata_expire="0") for r in http_repos(server)]
    solve(repos, cache_dir)
    documents_before = {p: n for p, n in server.requests.items() if "repomd" not in p}
    solve(repos, cache_dir)
    assert server.count("/repodata/repomd.xml") == 4
    assert {p: n for p, n in server.requests.items() if "repomd" not in p} == documents_before


def test_changed_repository_is_picked_up_after_expiry(server, cache_dir, test_repos):
    repos = [{"id": "appstream", "baseurl": f"{server.url}/appstream/", "metadata_expire": 0},
             {"id": "baseos", "baseurl": f"{server.url}/baseos/"}]
    solve(repos, cache_dir)
    # The appstream server now answers with baseos' metadata: no tmux any more.
    for path in (server.root / "baseos" / "repodata").iterdir():
        server.serve(f"/appstream/repodata/{path.name}", path.read_bytes())
    with pytest.raises(DepsolveError) as info:
        solve(repos, cache_dir)
    assert "No match for argument: tmux" in str(info.value)


def test_solv_cache_records_file_provides_and_warm_load_uses_it(repo_defs, cache_dir, cold,
                                                                caplog):
    import solv

    from depsolve import solver_solv

    caplog.set_level(logging.INFO, logger="depsolve.solver_solv")
    solve(repo_defs, cache_dir)
    solv_files = sorted((cache_dir / "rpmmd").glob("*/*.solv"))
    assert len(solv_files) == 2
    pool = solv.Pool()
    repo = pool.add_repo("check")
    handle = solv.xfopen(str(next(p for p in solv_files if "appstream" in str(p.parent))))
    assert repo.add_solv(handle, 0)
    handle.close()
    stored = repo.first_repodata().lookup_idarray(solv.SOLVID_META,
                                                  solv.REPOSITORY_ADDEDFILEPROVIDES)
    assert "/usr/share/terminfo/t/tmux" in {pool.id2str(i) for i in stored}
    solver_solv.forget_pools()
    caplog.clear()
    assert "tmux" in [p["name"] for p in solve(repo_defs, cache_dir)]
    assert any("(warm)" in r.getMessage() for r in caplog.records)


def test_unreadable_solv_cache_falls_back_to_the_xml(repo_defs, cache_dir, cold):
    from depsolve import solver_solv

    solve(repo_defs, cache_dir)
    for path in (cache_dir / "rpmmd").glob("*/*.solv"):
        path.write_bytes(b"garbage")
    solver_solv.forget_pools()
    assert "tmux" in [p["name"] for p in solve(repo_defs, cache_dir)]


def test_old_documents_are_pruned_after_a_change(server, cache_dir):
    cache = MetadataCache(cache_dir, default_expire=0)
    repo = Repository.from_dict({"id": "appstream", "baseurl": f"{server.url}/appstream/"})
    first = cache.ensure(repo)
    for path in first.directory.iterdir():  # age everything past the grace period
        os.utime(path, (time.time() - 3600, time.time() - 3600))
    for path in (server.root / "baseos" / "repodata").iterdir():
        server.serve(f"/appstream/repodata/{path.name}", path.read_bytes())
    second = cache.ensure(repo)
    assert second.repomd_checksum != first.repomd_checksum
    assert not first.documents["primary"].exists()
    assert second.documents["primary"].exists()
    assert "group" in second.documents and "modules" not in second.documents


def test_metadata_traffic_is_counted_for_the_metrics(server, cache_dir):
    from depsolve import take_metadata_traffic

    take_metadata_traffic()
    solve(http_repos(server), cache_dir)
    first = take_metadata_traffic()
    documents = [p for p in server.root.rglob("repodata/*") if p.name != "repomd.xml"]
    assert 0 < first["downloaded"] <= sum(p.stat().st_size for p in documents)
    assert first["cache_hit"] == 0
    solve(http_repos(server), cache_dir)
    second = take_metadata_traffic()
    assert second == {"cache_hit": first["downloaded"], "downloaded": 0}


def test_proxy_carries_the_requests(server, cache_dir):
    # The repository's host does not exist; only the proxy (on 127.0.0.1) is ever connected to.
    repos = [{"id": "baseos", "baseurl": "http://mirror.example.invalid/baseos/",
              "proxy": server.url}]
    packages = solve(repos, cache_dir, include=["bash"])
    assert packages[0]["remote_location"].startswith("http://mirror.example.invalid/baseos/")
    assert "http://mirror.example.invalid/baseos/repodata/repomd.xml" in server.proxied


@pytest.fixture(scope="module")
def tls_server(test_repos, tmp_path_factory):
    import subprocess

    from tests.depsolve.repos import RepoServer

    directory = tmp_path_factory.mktemp("tls")
    cert, key = directory / "cert.pem", directory / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
                    "-keyout", str(key), "-out", str(cert)], check=True, capture_output=True)
    srv = RepoServer(test_repos["baseos"].parent, tls=(str(cert), str(key)))
    yield srv
    srv.close()


def test_https_with_an_untrusted_certificate_needs_sslverify_off(tls_server, cache_dir):
    repo = {"id": "selfsigned", "baseurl": f"{tls_server.url}/baseos/"}
    with pytest.raises(RepositoryError) as info:
        solve([repo], cache_dir, include=["bash"])
    assert "certificate" in str(info.value) and "'selfsigned'" in str(info.value)
    packages = solve([dict(repo, sslverify=False)], cache_dir, include=["bash"])
    assert packages[0]["remote_location"].startswith(f"{tls_server.url}/baseos/Packages/")


def test_cache_files_are_readable_by_the_other_workers(repo_defs, cache_dir, cold):
    import stat

    solve(repo_defs, cache_dir)
    files = [p for p in (cache_dir / "rpmmd").rglob("*") if p.is_file()]
    assert any(p.suffix == ".solv" for p in files)
    umask = os.umask(0)
    os.umask(umask)
    for path in files:
        if not umask & stat.S_IRGRP:
            assert path.stat().st_mode & stat.S_IRGRP, path


def test_comps_read_back_from_their_json_cache_merge_as_the_xml(tmp_path):
    """Comps documents are parsed once and kept as JSON; read back, several documents merge
    exactly as parsing their XML does (same ids merged, first name and kind win)."""
    from depsolve.comps import Comps

    first = tmp_path / "a.xml"
    first.write_text(
        "<comps><group><id>core</id><name>Core</name><packagelist>"
        "<packagereq>bash</packagereq><packagereq type='optional'>tmux</packagereq>"
        "<packagereq type='conditional' requires='glibc'>glibc-langpack-en</packagereq>"
        "</packagelist></group><environment><id>minimal</id><name>Minimal</name>"
        "<grouplist><groupid>core</groupid></grouplist></environment></comps>")
    second = tmp_path / "b.xml"
    second.write_text(
        "<comps><group><id>core</id><name>Other</name><packagelist>"
        "<packagereq type='default'>tmux</packagereq><packagereq>vim</packagereq>"
        "</packagelist></group><group><id>extra</id><packagelist><packagereq>zsh"
        "</packagereq></packagelist></group><environment><id>minimal</id><grouplist>"
        "<groupid>extra</groupid><groupid>core</groupid></grouplist></environment></comps>")
    caches = [(first, tmp_path / "a.json"), (second, tmp_path / "b.json")]

    def state(comps: Comps) -> tuple:
        return ({k: g.__dict__ for k, g in comps.groups.items()},
                {k: e.__dict__ for k, e in comps.environments.items()})

    from_xml = state(Comps.from_files([first, second]))
    assert from_xml[0]["core"]["packages"] == {"bash": "mandatory", "tmux": "optional",
                                               "glibc-langpack-en": "conditional", "vim": "mandatory"}
    assert state(Comps.from_files(caches)) == from_xml  # writes the caches
    assert all(cache.exists() for _, cache in caches)
    first.write_text("<comps/>")  # the cache is what is read now
    assert state(Comps.from_files(caches)) == from_xml
    assert Comps.from_files(caches).expand("minimal") == (
        ["bash", "vim", "zsh"], {"glibc-langpack-en": "glibc"})
