"""Key URLs become key text before a manifest is made: file:// and a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import http.server
from collections.abc import Iterator
from pathlib import Path

import pytest

import distros
from distros.gpgkeys import GPGKeyError, inline_gpgkeys
from tests.conftest import loopback_http

KEY = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nmQINBFake\n=abcd\n-----END PGP PUBLIC KEY BLOCK-----\n"


@pytest.fixture
def key_server(tmp_path: Path) -> Iterator[str]:
    (tmp_path / "RPM-GPG-KEY-test").write_text(KEY)
    (tmp_path / "not-a-key").write_text("<html>404</html>")
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def __init__(self, *a, **kw):  # type: ignore[no-untyped-def]
            super().__init__(*a, directory=str(tmp_path), **kw)

        def do_GET(self) -> None:  # noqa: N802
            requests.append(self.path)
            super().do_GET()

        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    with loopback_http(Handler) as port:
        yield f"http://127.0.0.1:{port}", requests  # type: ignore[misc]


def test_urls_are_fetched_once_and_text_kept(key_server, tmp_path: Path) -> None:
    base, requests = key_server
    url = f"{base}/RPM-GPG-KEY-test"
    repos = [{"name": "a", "baseurl": "https://example.com/a", "gpgkeys": [url], "check_gpg": True},
             {"name": "b", "baseurl": "https://example.com/b", "gpgkey": url},
             {"name": "c", "baseurl": "https://example.com/c", "gpgkey": KEY},
             {"name": "d", "baseurl": "https://example.com/d", "gpgkeys": [(tmp_path / "RPM-GPG-KEY-test").as_uri()]},
             {"name": "e", "baseurl": "https://example.com/e"}]
    out = inline_gpgkeys(repos)
    assert [r.get("gpgkeys") for r in out] == [[KEY], [KEY], [KEY], [KEY], None]
    assert requests == ["/RPM-GPG-KEY-test"]
    assert repos[0]["gpgkeys"] == [url]          # the input is not modified
    # and the rpm stages get the text
    it = distros.get_distro("centos-9").image_type("x86_64", "tar")
    pkg = {"name": "bash", "epoch": 0, "version": "5", "release": "1", "arch": "x86_64",
           "remote_location": "https://example.com/a/bash.rpm", "checksum": "sha256:" + "1" * 64, "check_gpg": True}
    m = it.manifest({}, {"build": [pkg], "os": [pkg]}, out, None, 0)
    # once: images dedups the keys of an rpm stage (GPGKeysForPackages)
    assert m["pipelines"][1]["stages"][0]["options"]["gpgkeys"] == [KEY]


def test_unreadable_keys_name_the_url(key_server) -> None:
    base, _ = key_server
    for url in (f"{base}/missing", f"{base}/not-a-key", "file:///nonexistent/key"):
        with pytest.raises(GPGKeyError, match=url.split("/")[-1]):
            inline_gpgkeys([{"name": "a", "gpgkeys": [url]}], timeout=5)
