"""Today's image-type names through the Weldr API, over the real socket of the shared test server.

compose/types lists canonical names only (osbuild-composer lists `ListImageTypes()`, which
leaves the aliases out); POST /compose accepts an alias as the type it names.  Test-mode composes
(`?test=2`) are stored at once, so no worker or osbuild is needed.
"""

from __future__ import annotations

import pytest

V1 = "/api/v1"
BP = 'name = "today-f43"\ndescription = "today"\nversion = "0.1.0"\ndistro = "fedora-43"\n'


@pytest.fixture(scope="module")
def client(weldr_client):
    r = weldr_client.post_toml(f"{V1}/blueprints/new", BP)
    assert r.status == 200, r
    return weldr_client


def names(client, distro: str, arch: str = "x86_64") -> list[str]:
    r = client.get(f"{V1}/compose/types?distro={distro}&arch={arch}")
    assert r.status == 200, r
    return [t["name"] for t in r.json()["types"]]


def test_compose_types_lists_todays_names_without_aliases(client):
    f43 = names(client, "fedora-43")
    assert {"server-qcow2", "generic-qcow2", "cloud-qcow2", "minimal-raw-xz", "iot-qcow2", "iot-raw-xz",
            "pxe-tar-xz", "everything-network-installer"} <= set(f43)
    assert not {"qcow2", "guest-image", "ami", "minimal-raw", "iot-qcow2-image", "netinst"} & set(f43)
    assert f43 == sorted(f43)
    # the July-2023 releases keep their names
    f38 = names(client, "fedora-38")
    assert "qcow2" in f38 and "generic-qcow2" not in f38


@pytest.mark.parametrize("requested", ["server-qcow2", "qcow2", "guest-image", "iot-qcow2-image", "netinst"])
def test_post_compose_accepts_todays_names_and_aliases(client, requested):
    body = {"blueprint_name": "today-f43", "compose_type": requested, "branch": "master"}
    if requested == "iot-qcow2-image":
        # a deployed commit needs its URL (test mode stands in for the resolved commit)
        body["ostree"] = {"url": "http://127.0.0.1:9/repo", "ref": "fedora/43/x86_64/iot"}
    r = client.post(f"{V1}/compose?test=2", body)
    assert r.status == 200, r.text
    assert r.json()["status"] is True
    # stored by its type's name, as osbuild-composer shows it in compose/status and info
    canonical = {"qcow2": "generic-qcow2", "guest-image": "generic-qcow2", "iot-qcow2-image": "iot-qcow2",
                 "netinst": "everything-network-installer"}.get(requested, requested)
    info = client.get(f"{V1}/compose/info/{r.json()['build_id']}").json()
    assert info["compose_type"] == canonical


def test_post_compose_refuses_unknown_types_as_osbuild_composer(client):
    r = client.post(f"{V1}/compose", {"blueprint_name": "today-f43", "compose_type": "server-qcow3",
                                      "branch": "master"})
    assert r.status == 400
    assert r.json()["errors"][0] == {"id": "ComposeError", "msg": 'Failed to get compose type "server-qcow3": '
                                                                  "invalid image type: server-qcow3"}
