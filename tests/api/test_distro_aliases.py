"""Distro aliases and the releases /distros/list offers (issue 11, class 12).

osbuild-composer lets `rhel-8`, `rhel-9`, `rhel-10` stand for a minor release (its
`distro_aliases` setting, cmd/osbuild-composer/config.go); here an alias names the newest offered
minor unless `distro_aliases` says otherwise, and RHEL 8.x, CentOS Stream 8 and Fedora 37 are
offered with repository files like every other release the definitions know.
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from core.config import ConfigError, default_repositories_dir, load
from distros import offered

V1 = "/api/v1"


def cfg(**kw):
    return SimpleNamespace(**{"repositories_dir": default_repositories_dir(), "default_distro": "", **kw})


def test_every_defined_release_has_repositories_and_is_listed():
    import distros

    listed = offered.list_distros(cfg())
    for name in ["rhel-8.4", "rhel-8.6", "rhel-8.8", "rhel-8.10", "centos-8", "fedora-37"]:
        assert name in listed
    assert set(distros.list_distros()) - {"test-distro-1"} <= set(listed)
    assert "centos-8" in offered.list_distros(cfg(), "ppc64le") and "centos-8" not in offered.list_distros(cfg(), "s390x")


def test_aliases_name_the_newest_minor_and_follow_the_setting():
    aliases = offered.distro_aliases(cfg())
    assert aliases["rhel-8"] == "rhel-8.10" and aliases["rhel-9"] == "rhel-9.9" and aliases["rhel-10"] == "rhel-10.3"
    assert aliases["rhel-7"] == "rhel-7.9"
    # osbuild-composer's own defaults, configured; an alias to a release not offered drops
    c = cfg(distro_aliases={"rhel-9": "rhel-9.6", "rhel-10": "rhel-10.0", "rhel-7": "rhel-7.9"})
    assert offered.resolve_distro(c, "rhel-9") == "rhel-9.6"
    assert offered.resolve_distro(c, "rhel-10") == "rhel-10.0"
    assert offered.resolve_distro(c, "rhel-7") == "rhel-7.9"
    assert offered.resolve_distro(c, "rhel-9.4") == "rhel-9.4"
    assert offered.resolve_distro(c, "nonsense-1") == "nonsense-1"
    # a real distro always wins over an alias of the same name
    assert offered.resolve_distro(cfg(distro_aliases={"centos-9": "rhel-9.6"}), "centos-9") == "centos-9"
    assert offered.resolve_distro(cfg(default_distro="rhel-9"), "") == ""
    assert offered.default_distro(cfg(default_distro="rhel-9")) == "rhel-9.9"


def test_distro_aliases_setting_from_toml_and_environment(tmp_path):
    path = tmp_path / "c.toml"
    path.write_text('[distro_aliases]\n"rhel-9" = "rhel-9.6"\n')
    assert load(path, environ={}).distro_aliases == {"rhel-9": "rhel-9.6"}
    env = {"CELERY_COMPOSER_DISTRO_ALIASES": "rhel-9=rhel-9.4,rhel-8=rhel-8.8"}
    assert load(None, environ=env).distro_aliases == {
        "rhel-9": "rhel-9.4", "rhel-8": "rhel-8.8"}
    with pytest.raises(ConfigError, match="distro_aliases"):
        load(None, environ={"CELERY_COMPOSER_DISTRO_ALIASES": "rhel-9"})
    path.write_text('[distro_aliases]\n"rhel-9" = 9\n')
    with pytest.raises(ConfigError, match="must name a distro"):
        load(path, environ={})


def test_alias_in_a_blueprint_and_a_query(weldr_client):
    """A blueprint may name `rhel-8`; it is kept as written and depsolves/builds rhel-8.10."""
    listed = weldr_client.get(f"{V1}/distros/list?arch=x86_64").json()["distros"]
    assert "rhel-8.10" in listed and "rhel-8" not in listed and "centos-8" in listed
    bp = {"name": "aliased", "version": "0.0.1", "distro": "rhel-8", "packages": [], "modules": [], "groups": []}
    r = weldr_client.post(f"{V1}/blueprints/new", bp)
    assert r.status == 200, r.body
    info = weldr_client.get(f"{V1}/blueprints/info/aliased").json()
    assert info["blueprints"][0]["distro"] == "rhel-8"
    types = weldr_client.get(f"{V1}/compose/types?distro=rhel-8").json()["types"]
    assert {"name": "qcow2", "enabled": True} in types
    bad = weldr_client.get(f"{V1}/compose/types?distro=rhel-8000").json()
    assert bad["errors"][0]["id"] == "DistroError"
