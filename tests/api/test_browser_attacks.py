"""A web page in the user's browser cannot drive the API: CSRF and DNS rebinding on the TCP listener.

A real `celery-composer serve` with a TCP listener on 127.0.0.1. What a hostile page can make a
browser send: a cross-site form POST with `text/plain` (no CORS preflight), always with the page's
`Origin`; after DNS rebinding, requests with the attacker's name in `Host`. Both are refused and
store nothing; composer-cli's and cockpit-composer's requests (`Content-Type: application/json`,
Host `localhost`) work, on TCP and on the unix socket.
"""

from __future__ import annotations

import http.client
import json
import socket

import pytest

PROFILE = {"provider": "aws.s3", "profile": "attacker",
           "settings": {"bucket": "evil-bucket", "region": "us-east-1"}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tcp(port: int, method: str, path: str, body: str | None = None,
        headers: dict[str, str] | None = None) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.putrequest(method, path, skip_host=True)
        for key, value in (headers or {}).items():
            conn.putheader(key, value)
        data = (body or "").encode()
        conn.putheader("Content-Length", str(len(data)))
        conn.endheaders(data)
        resp = conn.getresponse()
        raw = resp.read()
        return resp.status, json.loads(raw) if raw else {}
    finally:
        conn.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    from tests.conftest import WeldrServer

    port = free_port()
    srv = WeldrServer(tmp_path_factory.mktemp("browser"),
                      args=["--listen", f"127.0.0.1:{port}"],
                      env={"CELERY_COMPOSER_ALLOWED_HOSTS": "builder.example.test"}).start()
    srv.port = port
    yield srv
    srv.stop()


def profiles(server) -> dict:
    return server.client.get("/api/v1/upload/providers").json()["providers"]["aws.s3"]["profiles"]


def test_a_cross_site_text_plain_post_is_refused(server):
    """The form a page can post without a preflight: text/plain, with the page's Origin."""
    status, body = tcp(server.port, "POST", "/api/v1/upload/providers/save", json.dumps(PROFILE),
                       {"Host": f"127.0.0.1:{server.port}", "Content-Type": "text/plain",
                        "Origin": "http://evil.example"})
    assert status == 403 and "evil.example" in body["errors"][0]["msg"], body
    # even without an Origin (older browsers, a plain tool), text/plain is not JSON
    status, body = tcp(server.port, "POST", "/api/v1/upload/providers/save", json.dumps(PROFILE),
                       {"Host": f"127.0.0.1:{server.port}", "Content-Type": "text/plain"})
    assert status == 400 and "Content-Type: application/json" in body["errors"][0]["msg"], body
    # the same over the unix socket: the content type is checked there too
    r = server.client.post("/api/v1/upload/providers/save", json.dumps(PROFILE),
                           headers={"Content-Type": "text/plain"})
    assert r.status == 400, r
    assert "attacker" not in profiles(server)


@pytest.mark.parametrize("path,method,body", [
    ("/api/v1/upload/providers/save", "POST", json.dumps(PROFILE)),
    ("/api/v1/upload/reset/00000000-0000-0000-0000-000000000000", "POST", "{}"),
    ("/api/v1/blueprints/list", "GET", None),
    ("/api/status", "GET", None),
])
def test_a_rebound_host_name_is_refused(server, path, method, body):
    """After DNS rebinding the page's requests reach 127.0.0.1 with the attacker's name as Host."""
    status, answer = tcp(server.port, method, path, body,
                         {"Host": f"rebind.evil.example:{server.port}",
                          "Content-Type": "application/json"})
    assert status == 403, answer
    assert answer["errors"][0]["id"] == "HTTPError"
    assert "rebind.evil.example" in answer["errors"][0]["msg"]
    assert "attacker" not in profiles(server)


def test_clients_that_name_this_server_are_answered(server):
    for host in ("localhost", f"localhost:{server.port}", f"127.0.0.1:{server.port}",
                 f"builder.example.test:{server.port}", "BUILDER.example.test."):
        status, answer = tcp(server.port, "GET", "/api/status", None, {"Host": host})
        assert status == 200 and answer["api"] == "1", (host, answer)
    status, answer = tcp(server.port, "POST", "/api/v1/upload/providers/save",
                         json.dumps(dict(PROFILE, profile="mine")),
                         {"Host": f"localhost:{server.port}", "Content-Type": "application/json",
                          "Origin": f"http://localhost:{server.port}"})
    assert status == 200, answer
    assert "mine" in profiles(server)
    # the unix socket answers whatever Host a local client sends (composer-cli sends "localhost")
    r = server.client.get("/api/status", headers={"Host": "anything.example"})
    assert r.status == 200, r
