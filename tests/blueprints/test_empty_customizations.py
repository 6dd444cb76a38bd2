"""Present-but-empty customizations come back as osbuild-composer returns them.

osbuild-composer's blueprint structs (osbuild/blueprint, `pkg/blueprint/*customizations.go`) use
pointer fields with `omitempty` for most customizations: a pointer that was given stays in the
JSON even when what it points to is empty (`{}`, `""`, `false`, `0`), while plain strings, bools
and slices with `omitempty` disappear when empty.  cockpit-composer relies on this: a blueprint
with firewall ports and `services = {enabled = [], disabled = []}` must keep `services`, or its
details page calls `Object.keys(undefined)` and goes blank.

Pushed over the session server's socket (JSON and TOML), read back as JSON and as TOML.
"""

from __future__ import annotations

import json
import tomllib
import uuid

import pytest

V1 = "/api/v1"

# given → what osbuild-composer's JSON holds after decoding into its structs and encoding again
CASES: list[tuple[dict, dict]] = [
    ({"firewall": {"ports": ["22:tcp"], "services": {"enabled": [], "disabled": []}}},
     {"firewall": {"ports": ["22:tcp"], "services": {}}}),
    ({"firewall": {"services": {}, "zones": [{"name": "", "sources": []}]}},
     {"firewall": {"services": {}, "zones": [{"name": ""}]}}),
    ({"hostname": ""}, {"hostname": ""}),
    ({"kernel": {}}, {"kernel": {}}),
    ({"kernel": {"name": "", "append": ""}}, {"kernel": {}}),  # plain strings: omitted when empty
    ({"timezone": {"timezone": "", "ntpservers": []}}, {"timezone": {"timezone": ""}}),
    ({"locale": {"languages": [], "keyboard": ""}}, {"locale": {"keyboard": ""}}),
    ({"services": {"enabled": [], "disabled": [], "masked": []}}, {"services": {}}),
    ({"disk": {}}, {"disk": {}}),
    ({"fdo": {}}, {"fdo": {}}),
    ({"openscap": {"profile_id": "p", "tailoring": {}, "json_tailoring": {}}},
     {"openscap": {"profile_id": "p", "tailoring": {}, "json_tailoring": {}}}),
    ({"ignition": {"embedded": {}, "firstboot": {}}}, {"ignition": {"embedded": {}, "firstboot": {}}}),
    ({"fips": False}, {"fips": False}),
    ({"installer": {"unattended": False, "modules": {}, "bootloader": {"grub2": {}},
                    "payload": {"flatpaks": {}}}},
     {"installer": {"modules": {}, "bootloader": {"grub2": {}}, "payload": {"flatpaks": {}}}}),
    ({"rpm": {"import_keys": {}}}, {"rpm": {"import_keys": {}}}),
    ({"rhsm": {"config": {"dnf_plugins": {"product_id": {}},
                          "subscription_manager": {"rhsm": {}, "rhsmcertd": {}}}}},
     {"rhsm": {"config": {"dnf_plugins": {"product_id": {}},
                          "subscription_manager": {"rhsm": {}, "rhsmcertd": {}}}}}),
    ({"cacerts": {}}, {"cacerts": {}}),
    ({"containers-storage": {}}, {"containers-storage": {}}),
    ({"firstboot": {"scripts": []}}, {"firstboot": {}}),
    ({"dnf": {"config": {"set_releasever": False}}}, {"dnf": {"config": {}}}),
    ({"iso": {}}, {"iso": {}}),
    ({"sshd": {"password_authentication": False, "client_alive_interval": 0, "permit_root_login": ""}},
     {"sshd": {"password_authentication": False, "client_alive_interval": 0}}),
    ({"user": [{"name": "u", "description": "", "key": "", "home": "", "shell": "", "groups": [],
                "uid": 0, "gid": 0, "force_password_reset": False, "password": ""}]},
     # an empty password is dropped before storing (osbuild-composer's CryptPasswords does too)
     {"user": [{"name": "u", "description": "", "key": "", "home": "", "shell": "", "uid": 0,
                "gid": 0, "force_password_reset": False}]}),
    ({"group": [{"name": "g", "gid": 0}]}, {"group": [{"name": "g", "gid": 0}]}),
    ({"repositories": [{"id": "r", "baseurls": ["http://127.0.0.1/"], "enabled": False,
                        "gpgcheck": False, "priority": 0, "name": "", "sslverify": False}]},
     {"repositories": [{"id": "r", "baseurls": ["http://127.0.0.1/"], "priority": 0,
                        "enabled": False, "gpgcheck": False, "sslverify": False,
                        "install_from": False}]}),
    ({"sshkey": [], "filesystem": [], "directories": [], "files": [], "installation_device": "",
      "partitioning_mode": ""}, {}),  # slices and plain strings: gone when empty
]


def _name() -> str:
    return f"empty-cust-{uuid.uuid4().hex[:8]}"


def _info(client, name: str) -> dict:
    r = client.get(f"{V1}/blueprints/info/{name}")
    assert r.status == 200, r
    return r.json()["blueprints"][0]


@pytest.mark.parametrize("given,expected", CASES, ids=[next(iter(c[0]), "none") for c in CASES])
def test_json_push_round_trips_like_osbuild_composer(weldr_client, given, expected):
    name = _name()
    body = {"name": name, "version": "0.0.1", "customizations": given}
    r = weldr_client.post(f"{V1}/blueprints/new", json.dumps(body),
                          headers={"Content-Type": "application/json"})
    assert r.status == 200, r
    assert _info(weldr_client, name).get("customizations") == expected


def test_customizations_table_itself_stays(weldr_client):
    name = _name()
    r = weldr_client.post_toml(f"{V1}/blueprints/new", f'name = "{name}"\n[customizations]\n')
    assert r.status == 200, r
    assert _info(weldr_client, name)["customizations"] == {}


def test_cockpit_firewall_blueprint_in_toml_and_back(weldr_client):
    """cockpit-composer's case: ports and empty services, pushed as TOML (composer-cli) and read
    back as JSON (cockpit) and TOML (composer-cli), then pushed again unchanged."""
    name = _name()
    text = (f'name = "{name}"\nversion = "0.0.1"\n'
            '[customizations.firewall]\nports = ["22:tcp", "80:tcp"]\n'
            "[customizations.firewall.services]\nenabled = []\ndisabled = []\n"
            "[customizations.services]\n[customizations.kernel]\n")
    r = weldr_client.post_toml(f"{V1}/blueprints/new", text)
    assert r.status == 200, r
    expected = {"firewall": {"ports": ["22:tcp", "80:tcp"], "services": {}},
                "services": {}, "kernel": {}}
    assert _info(weldr_client, name)["customizations"] == expected
    toml_text = weldr_client.get(f"{V1}/blueprints/info/{name}?format=toml").text
    assert tomllib.loads(toml_text)["customizations"] == expected
    r = weldr_client.post_toml(f"{V1}/blueprints/new", toml_text)
    assert r.status == 200, r
    assert _info(weldr_client, name)["customizations"] == expected
