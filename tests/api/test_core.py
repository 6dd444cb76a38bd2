"""Transport, status and the errors every route shares, over the real socket."""

from __future__ import annotations

import stat

import pytest


def test_status(weldr_client):
    r = weldr_client.get("/api/status")
    assert r.status == 200
    assert r.headers["Content-Type"] == "application/json; charset=utf-8"
    body = r.json()
    assert body == {"api": "1", "db_supported": True, "db_version": "0", "schema_version": "0",
                    "backend": "osbuild-composer", "build": body["build"], "msgs": []}
    assert body["build"] and "messages" not in body


def test_socket_mode_0660(weldr_server):
    mode = stat.S_IMODE(weldr_server.socket.stat().st_mode)
    assert mode == 0o660


def test_unknown_route_404_body(weldr_client):
    for path in ("/api/v0/nope", "/api/v1/compose/nothing", "/api/v2/compose/types", "/nope"):
        r = weldr_client.get(path)
        assert r.status == 404, path
        assert r.json() == {"status": False,
                            "errors": [{"id": "HTTPError", "code": 404, "msg": "Not Found"}]}


def test_wrong_method_405_body(weldr_client):
    r = weldr_client.request("PUT", "/api/status")
    assert r.status == 405
    assert r.json() == {"status": False,
                        "errors": [{"id": "HTTPError", "code": 405, "msg": "Method Not Allowed"}]}


UNICODE = "I%20%EF%BD%97%F0%9D%92%8Ail"


def test_invalid_chars_in_path_and_query(weldr_client):
    for path in (f"/api/v0/compose/info/{UNICODE}", f"/api/v1/compose/status/{UNICODE}",
                 f"/api/v0/compose/types?distro={UNICODE}", "/api/v1/compose/info/a%2F..%2Fb",
                 "/api/v1/compose/info/..", "/api/v0/compose/status/*?blueprint=%00"):
        r = weldr_client.get(path)
        assert r.status == 400, path
        body = r.json()
        assert body["status"] is False
        assert body["errors"][0]["id"] == "InvalidChars", path
        assert "nvalid characters in" in body["errors"][0]["msg"]


def test_body_over_limit_413(start_weldr_server):
    server = start_weldr_server(env={"CELERY_COMPOSER_BODY_LIMIT": "1024"})
    r = server.client.post("/api/v1/compose", b"{" + b" " * 2048 + b"}",
                           headers={"Content-Type": "application/json"})
    assert r.status == 413
    body = r.json()
    assert body["status"] is False and body["errors"][0]["id"] == "HTTPError"
    assert body["errors"][0]["code"] == 413


# lorax-composer's test string, URL-encoded (fullwidth and mathematical letters)
LORAX_UNICODE = ("I%20%EF%BD%97%F0%9D%92%8All%20%F0%9D%9F%89%CE%BF%F0%9D%98%81%20"
                 "%F0%9D%9B%A0%EF%BD%81%F0%9D%94%B0%EA%9C%B1%20%F0%9D%98%81%F0%9D%92%89%F0%9D%9D%B8%F0%9D%9A%9C")


@pytest.mark.parametrize("method,path", [
    ("GET", f"/api/v0/compose/info/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/compose/status/{LORAX_UNICODE}"),
    ("GET", f"/api/v0/compose/log/{LORAX_UNICODE}"),
    ("DELETE", f"/api/v1/compose/cancel/{LORAX_UNICODE}"),
    ("DELETE", f"/api/v1/compose/delete/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/projects/source/info/{LORAX_UNICODE}"),
    ("DELETE", f"/api/v0/projects/source/delete/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/projects/info/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/modules/list/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/modules/info/{LORAX_UNICODE}"),
    ("GET", f"/api/v1/compose/status/*?blueprint={LORAX_UNICODE}"),
    ("GET", f"/api/v1/compose/types?distro={LORAX_UNICODE}"),
    ("GET", f"/api/v1/projects/source/info/*?format={LORAX_UNICODE}"),
    ("GET", f"/api/v1/projects/list?limit={LORAX_UNICODE}"),
    ("GET", f"/api/v1/distros/list?arch={LORAX_UNICODE}"),
    ("POST", f"/api/v1/compose?test={LORAX_UNICODE}"),
])
def test_lorax_unicode_is_invalid_chars_everywhere(weldr_client, method, path):
    r = weldr_client.request(method, path)
    assert r.status == 400, r
    body = r.json()
    assert body["status"] is False and body["errors"][0]["id"] == "InvalidChars"
    assert "nvalid characters in" in body["errors"][0]["msg"]
