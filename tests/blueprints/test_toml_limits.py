"""TOML input that would make the standard parser blow up is refused cheaply, before parsing.

`tomllib` costs time and memory quadratic in the dotted parts of one key: 200 KB of `a.a.a…`
OOM-killed an API worker. Every TOML entry point (blueprints/new and workspace, sources/new, the
configuration file, the `manifest` command's blueprint) goes through `core.tomldoc.loads`.
"""

from __future__ import annotations

import tracemalloc
import uuid

import pytest

from core import blueprint as model
from core import config as config_mod
from core import tomldoc

BOMB = "a" + ".a" * 100_000 + " = 1\n"  # 200 KB, 100,001 parts: tens of GB in tomllib


def _peak_bytes(fn, *args) -> int:
    tracemalloc.start()
    try:
        try:
            fn(*args)
        except (ValueError, model.BlueprintError):
            pass
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_many_part_key_is_refused_before_parsing():
    """4,000 parts (8 KB) cost tomllib 65 MB; refused now, the decode stays under a megabyte."""
    text = 'name = "x"\n' + "a" + ".a" * 3999 + " = 1\n"
    assert _peak_bytes(model.decode, text, model.TOML_TYPE) < 1024 * 1024
    with pytest.raises(model.BlueprintError, match="line 2: a key has more than 16 dotted parts"):
        model.decode(text, model.TOML_TYPE)


def test_the_200_kb_bomb_costs_next_to_nothing():
    peak = _peak_bytes(tomldoc.loads, BOMB)
    assert peak < 1024 * 1024, peak
    with pytest.raises(tomldoc.TOMLLimitError):
        tomldoc.loads(BOMB)


def test_table_headers_and_quoted_parts_count_too():
    for text in ("[" + ".".join(["t"] * 17) + "]\n",
                 "[[" + ".".join(["t"] * 17) + "]]\n",
                 ".".join(['"q"'] * 17) + " = 1\n",
                 "x = { " + ".".join(["i"] * 17) + " = 1 }\n"):
        with pytest.raises(tomldoc.TOMLLimitError):
            tomldoc.loads(text)
    assert tomldoc.loads(".".join(["k"] * 16) + " = 1\n")  # 16 parts is the bound, accepted


def test_dots_in_strings_comments_and_values_do_not_count():
    dots = "." * 40
    text = f'''
name = "dots{dots}"
literal = 'x{dots}'
escaped = "a \\" {dots} \\\\"
ml = """
line {dots}
quote " and "" {dots}
"""""
ml_literal = \'\'\'{dots}\'\'\'
floats = [1.5, 2.5, 3.5, 4.5, 5.5, 6.5, 7.5, 8.5, 9.5, 10.5, 11.5, 12.5, 13.5, 14.5, 15.5, 16.5, 17.5]
when = 1979-05-27T07:32:00.999999
# a comment {dots} "unbalanced
[customizations.kernel]
append = "console=ttyS0 {dots}"
'''
    doc = tomldoc.loads(text)
    assert doc["ml"].endswith('"" ' + dots + '\n""') and doc["customizations"]["kernel"]["append"]


def test_the_document_size_is_bounded():
    text = 'name = "x"\n' + "# padding\n" * (tomldoc.MAX_TOML_CHARS // 10)
    with pytest.raises(tomldoc.TOMLLimitError, match="at most 2097152 are accepted"):
        tomldoc.loads(text)


def test_the_configuration_file_goes_through_the_same_check(tmp_path):
    path = tmp_path / "celery-composer.toml"
    path.write_text("[api]\n" + ".".join(["x"] * 40) + " = 1\n")
    with pytest.raises(config_mod.ConfigError, match="a key has more than 16 dotted parts"):
        config_mod.load(path, environ={})


@pytest.mark.parametrize("route", ["/api/v1/blueprints/new", "/api/v0/blueprints/workspace"])
def test_blueprint_routes_refuse_the_bomb_and_store_nothing(weldr_client, route):
    name = f"toml-bomb-{uuid.uuid4().hex[:8]}"
    r = weldr_client.post_toml(route, f'name = "{name}"\nversion = "0.0.1"\n' + BOMB)
    assert r.status == 400, r
    [error] = r.json()["errors"]
    assert error["id"] == "BlueprintsError" and "a key has more than 16 dotted parts" in error["msg"]
    assert weldr_client.get(f"/api/v1/blueprints/info/{name}").json()["blueprints"] == []
    assert weldr_client.get("/api/status").status == 200  # the worker is alive


def test_sources_new_refuses_the_bomb_and_stores_nothing(weldr_client):
    before = weldr_client.get("/api/v1/projects/source/list").json()
    r = weldr_client.post_toml("/api/v1/projects/source/new",
                               'id = "bomb"\nname = "b"\ntype = "yum-baseurl"\nurl = "u"\n' + BOMB)
    assert r.status == 400, r
    [error] = r.json()["errors"]
    assert error["id"] == "ProjectsError" and "a key has more than 16 dotted parts" in error["msg"]
    assert weldr_client.get("/api/v1/projects/source/list").json() == before
