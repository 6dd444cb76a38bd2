"""Sources and distros over the real socket: system sources read-only, user sources in v0/v1, TOML/JSON."""

from __future__ import annotations

import pytest

V1 = "/api/v1/projects/source"
V0 = "/api/v0/projects/source"

TOML_SOURCE = """
id = "test-toml"
name = "Test $releasever $basearch"
type = "yum-baseurl"
url = "https://example.invalid/$releasever/$basearch/os/"
check_gpg = true
check_ssl = true
gpgkeys = ["https://example.invalid/key-$releasever"]
"""


def _err(r, status=400):
    assert r.status == status, r
    body = r.json()
    assert body["status"] is False
    return body["errors"][0]


def test_distros_list_v1_only(weldr_client):
    r = weldr_client.get("/api/v1/distros/list?arch=x86_64")
    assert r.status == 200
    distros = r.json()["distros"]
    assert distros == sorted(distros) and "centos-9" in distros and "fedora-43" in distros
    assert weldr_client.get("/api/v0/distros/list").status == 404
    assert weldr_client.get("/api/v1/distros/list?arch=sparc").json() == {"distros": []}


def test_system_sources_listed_and_read_only(weldr_client):
    names = weldr_client.get(f"{V1}/list").json()["sources"]
    assert names, "the default distro has system sources"
    info = weldr_client.get(f"{V1}/info/{names[0]}").json()
    src = info["sources"][names[0]]
    assert src["system"] is True and src["id"] == names[0] and src["type"].startswith("yum-")
    e = _err(weldr_client.delete(f"{V1}/delete/{names[0]}"))
    assert e == {"id": "SystemSource", "msg": f"{names[0]} is a system source, it cannot be deleted."}
    e = _err(weldr_client.post(f"{V1}/new", {"id": names[0], "name": "x", "type": "yum-baseurl",
                                              "url": "http://example.invalid/"}))
    assert e == {"id": "SystemSource", "msg": f"{names[0]} is a system source, it cannot be changed."}


def test_user_source_toml_v1_with_substitution(weldr_client):
    r = weldr_client.post_toml(f"{V1}/new", TOML_SOURCE)
    assert r.status == 200 and r.json() == {"status": True}
    assert "test-toml" in weldr_client.get(f"{V1}/list").json()["sources"]
    body = weldr_client.get(f"{V1}/info/test-toml").json()
    src = body["sources"]["test-toml"]
    assert body["errors"] == []
    assert src["id"] == "test-toml" and src["system"] is False
    assert "$" not in src["url"] and "$" not in src["name"] and "$" not in src["gpgkeys"][0]
    # the v0 shape names it by id, with gpgkey_urls
    v0 = weldr_client.get(f"{V0}/info/test-toml").json()["sources"]["test-toml"]
    assert v0["name"] == "test-toml" and "id" not in v0 and v0["gpgkey_urls"]
    toml = weldr_client.get(f"{V1}/info/test-toml?format=toml")
    assert toml.status == 200 and "[test-toml]" in toml.text
    assert weldr_client.delete(f"{V1}/delete/test-toml").json() == {"status": True}
    e = _err(weldr_client.delete(f"{V1}/delete/test-toml"))
    assert e == {"id": "UnknownSource", "msg": "test-toml is not a valid source."}


def test_user_source_table_form_and_v0_json(weldr_client):
    table = '[tbl-src]\nname = "t"\ntype = "yum-metalink"\nurl = "https://example.invalid/m"\n'
    assert weldr_client.post_toml(f"{V1}/new", table).status == 200
    assert weldr_client.get(f"{V1}/info/tbl-src").json()["sources"]["tbl-src"]["type"] == "yum-metalink"
    r = weldr_client.post(f"{V0}/new", {"name": "v0-src", "type": "yum-mirrorlist",
                                        "url": "https://example.invalid/ml", "check_gpg": False,
                                        "check_ssl": True})
    assert r.status == 200
    info = weldr_client.get(f"{V1}/info/v0-src,nope").json()
    assert info["sources"]["v0-src"]["id"] == "v0-src"
    assert info["errors"] == [{"id": "UnknownSource", "msg": "nope is not a valid source"}]
    everything = weldr_client.get(f"{V1}/info/*").json()["sources"]
    assert {"tbl-src", "v0-src"} <= set(everything)
    # replace keeps one entry
    r = weldr_client.post(f"{V0}/new", {"name": "v0-src", "type": "yum-baseurl",
                                        "url": "https://example.invalid/b"})
    assert weldr_client.get(f"{V0}/info/v0-src").json()["sources"]["v0-src"]["type"] == "yum-baseurl"
    for name in ("tbl-src", "v0-src"):
        assert weldr_client.delete(f"{V1}/delete/{name}").status == 200


@pytest.mark.parametrize("body,headers,want", [
    ("", {"Content-Type": "application/json"}, ("ProjectsError", "Missing source")),
    ('{"id": "x"', {"Content-Type": "application/json"}, ("ProjectsError", "Problem parsing POST body: ")),
    ('id = "x', {"Content-Type": "text/x-toml"}, ("ProjectsError", "Problem parsing POST body: ")),
    ('{"id": "x"}', {}, ("HTTPError", "malformed Content-Type header")),
    ('{"id": "x"}', {"Content-Type": "application/json; charset=utf-8"}, ("ProjectsError", "Problem parsing POST body")),
    ('{"name": "x", "type": "yum-baseurl", "url": "u"}', {"Content-Type": "application/json"},
     ("ProjectsError", "Problem parsing POST body: 'id' field is missing from request")),
    ('{"id": "x", "type": "yum-baseurl", "url": "u"}', {"Content-Type": "application/json"},
     ("ProjectsError", "Problem parsing POST body: 'name' field is missing from request")),
    ('{"id": "x", "name": "x", "type": "git", "url": "u"}', {"Content-Type": "application/json"},
     ("ProjectsError", "Problem parsing POST body: unknown source type")),
    ('{"id": "x", "name": "x", "type": "yum-baseurl", "url": "u", "distros": ["nope-1"]}',
     {"Content-Type": "application/json"}, ("ProjectsError", "Problem parsing POST body: Invalid distributions: nope-1")),
    ('{"id": "a,b", "name": "x", "type": "yum-baseurl", "url": "u"}', {"Content-Type": "application/json"},
     ("InvalidChars", "Invalid characters in source id")),
])
def test_source_new_errors_change_nothing(weldr_client, body, headers, want):
    before = weldr_client.get(f"{V1}/list").json()
    e = _err(weldr_client.post(f"{V1}/new", body, headers=headers))
    assert e["id"] == want[0] and e["msg"].startswith(want[1]), e
    assert weldr_client.get(f"{V1}/list").json() == before


def test_source_info_empty_and_toml_errors(weldr_client):
    assert weldr_client.get(f"{V1}/info/").status == 404
    r = weldr_client.get(f"{V1}/info/nope?format=toml")
    assert r.status == 400 and r.json()["errors"][0]["id"] == "UnknownSource"
    e = _err(weldr_client.get(f"{V1}/info/x?format=yaml"))
    assert e == {"id": "InvalidChars", "msg": "invalid format parameter: yaml"}


def test_damaged_source_fails_alone(weldr_server, weldr_client):
    from tests.databases import database_for

    ok = {"id": "fine-src", "name": "fine", "type": "yum-baseurl", "url": "http://127.0.0.1:9/"}
    assert weldr_client.post(f"{V1}/new", ok).status == 200
    db = database_for(weldr_server.state_dir)
    db.execute("INSERT INTO sources (id, data) VALUES ('rotten-src', '{not json')")
    try:
        names = weldr_client.get(f"{V1}/list").json()["sources"]
        assert "fine-src" in names and "rotten-src" not in names
        body = weldr_client.get(f"{V1}/info/*").json()
        assert "fine-src" in body["sources"]
        assert weldr_client.get(f"{V1}/info/fine-src").json()["sources"]["fine-src"]["name"] == "fine"
    finally:
        db.execute("DELETE FROM sources WHERE id = 'rotten-src'")
        weldr_client.delete(f"{V1}/delete/fine-src")
