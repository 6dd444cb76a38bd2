"""check_repogpg: repomd.xml signed with a real OpenPGP key made by gpg for the test."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from depsolve import PackageSet, RepositoryError, depsolve

pytestmark = pytest.mark.skipif(shutil.which("gpg") is None, reason="gpg is not installed")


class Signer:
    """A throw-away GnuPG home with one signing key."""

    def __init__(self, home: Path, uid: str) -> None:
        self.home = home
        home.mkdir(mode=0o700)
        self._gpg("--passphrase", "", "--pinentry-mode", "loopback", "--quick-gen-key", uid,
                  "ed25519", "sign", "never")
        self.public_key = self._gpg("--armor", "--export").stdout

    def _gpg(self, *args: str, data: bytes | None = None) -> subprocess.CompletedProcess:
        return subprocess.run(["gpg", "--homedir", str(self.home), "--batch", "--quiet", *args],
                              input=data, capture_output=True, check=True, timeout=60)

    def sign(self, data: bytes) -> bytes:
        return self._gpg("--armor", "--detach-sign", "--output", "-", data=data).stdout

    def close(self) -> None:
        subprocess.run(["gpgconf", "--homedir", str(self.home), "--kill", "gpg-agent"],
                       capture_output=True)


@pytest.fixture(scope="module")
def signers(tmp_path_factory):
    base = tmp_path_factory.mktemp("gnupg")
    made = [Signer(base / "repo", "Test Repository <repo@example.org>"),
            Signer(base / "other", "Someone Else <else@example.org>")]
    yield made
    for signer in made:
        signer.close()


def solve(repos, cache_dir):
    [packages] = depsolve([PackageSet(["bash"])], repos, arch="x86_64", releasever="9",
                          cache_dir=cache_dir)
    return packages


def signed_repo(server, key: str) -> list[dict]:
    return [{"id": "baseos", "baseurl": f"{server.url}/baseos/", "check_repogpg": True,
             "gpgkeys": [key]}]


def test_signed_repomd_is_accepted_with_an_inline_key(server, cache_dir, signers):
    repomd = (server.root / "baseos" / "repodata" / "repomd.xml").read_bytes()
    server.serve("/baseos/repodata/repomd.xml.asc", signers[0].sign(repomd))
    packages = solve(signed_repo(server, signers[0].public_key.decode()), cache_dir)
    assert "bash" in [p["name"] for p in packages]


def test_key_given_by_url(server, cache_dir, signers):
    repomd = (server.root / "baseos" / "repodata" / "repomd.xml").read_bytes()
    server.serve("/baseos/repodata/repomd.xml.asc", signers[0].sign(repomd))
    server.serve("/keys/RPM-GPG-KEY-test", signers[0].public_key)
    assert solve(signed_repo(server, f"{server.url}/keys/RPM-GPG-KEY-test"), cache_dir)


def test_missing_signature(server, cache_dir, signers):
    with pytest.raises(RepositoryError) as info:
        solve(signed_repo(server, signers[0].public_key.decode()), cache_dir)
    message = str(info.value)
    assert "'baseos'" in message and "repomd.xml.asc" in message and "no signature" in message


def test_signature_by_another_key(server, cache_dir, signers):
    repomd = (server.root / "baseos" / "repodata" / "repomd.xml").read_bytes()
    server.serve("/baseos/repodata/repomd.xml.asc", signers[1].sign(repomd))
    with pytest.raises(RepositoryError, match="not among the repository's gpgkeys"):
        solve(signed_repo(server, signers[0].public_key.decode()), cache_dir)


def test_tampered_repomd(server, cache_dir, signers):
    repomd = (server.root / "baseos" / "repodata" / "repomd.xml").read_bytes()
    server.serve("/baseos/repodata/repomd.xml.asc", signers[0].sign(repomd))
    server.serve("/baseos/repodata/repomd.xml", repomd.replace(b"<revision>", b"<revision>6"))
    with pytest.raises(RepositoryError, match="bad signature"):
        solve(signed_repo(server, signers[0].public_key.decode()), cache_dir)


def test_check_repogpg_without_keys(server, cache_dir):
    repos = [{"id": "baseos", "baseurl": f"{server.url}/baseos/", "check_repogpg": True}]
    server.serve("/baseos/repodata/repomd.xml.asc", b"-----BEGIN PGP SIGNATURE-----\n")
    with pytest.raises(RepositoryError, match="has no gpgkeys"):
        solve(repos, cache_dir)


def test_unchecked_cache_is_not_reused_for_a_checked_definition(server, cache_dir, signers):
    solve([{"id": "baseos", "baseurl": f"{server.url}/baseos/"}], cache_dir)  # unchecked copy
    with pytest.raises(RepositoryError, match="no signature"):
        solve(signed_repo(server, signers[0].public_key.decode()), cache_dir)
