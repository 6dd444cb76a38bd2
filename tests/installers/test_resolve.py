"""Resolving ostree refs against a real HTTP server on loopback serving a repository's refs."""

from http.server import BaseHTTPRequestHandler

import pytest

from distros.inputs import resolve_commit
from distros.ostree import RHSM_SECRETS, OSTreeResolveError, SourceSpec
from tests.conftest import loopback_http

CHECKSUM = "8119013dc0bbd4a0140d7392c3a07395399d5a12112f911bd3fc37ba6b7df6ad"


class Repo(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path == "/repo/refs/heads/acme/1/x86_64/edge":
            body = (CHECKSUM + "\n").encode()
        elif self.path == "/repo/refs/heads/bad":
            body = b"<html>not a checksum</html>"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def repo_url():
    with loopback_http(Repo) as port:
        yield f"http://127.0.0.1:{port}/repo"


def test_resolves_the_checksum_of_a_ref(repo_url):
    commit = resolve_commit(SourceSpec(url=repo_url + "/", ref="acme/1/x86_64/edge"))
    assert (commit.checksum, commit.ref, commit.secrets) == (CHECKSUM, "acme/1/x86_64/edge", "")
    assert commit.url == repo_url + "/"


def test_resolve_errors_name_the_repository(repo_url):
    with pytest.raises(OSTreeResolveError, match="returned status: 404") as err:
        resolve_commit(SourceSpec(url=repo_url, ref="missing"))
    assert err.value.api_id == "OSTreeOptionsError"
    with pytest.raises(OSTreeResolveError, match="returned invalid reference"):
        resolve_commit(SourceSpec(url=repo_url, ref="bad"))
    with pytest.raises(OSTreeResolveError, match="Invalid ostree ref"):
        resolve_commit(SourceSpec(url=repo_url, ref="/not a ref"))
    with pytest.raises(OSTreeResolveError, match="error sending request"):
        resolve_commit(SourceSpec(url="http://127.0.0.1:9/repo", ref="r"), timeout=2)


def test_rhsm_commits_carry_the_consumer_secrets_and_need_entitlements(repo_url, tmp_path):
    commit = resolve_commit(SourceSpec(url=repo_url, ref="acme/1/x86_64/edge", rhsm=True))
    assert commit.secrets == RHSM_SECRETS
    with pytest.raises(OSTreeResolveError, match="rhsm certificates"):
        resolve_commit(SourceSpec(url="https://127.0.0.1:9/repo", ref="r", rhsm=True), entitlement_dir=str(tmp_path))
