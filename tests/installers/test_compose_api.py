"""POST /compose with `ostree` options and compose/types, over the real socket.

No workers run (the shared server has embedded workers off): a compose is checked, its ostree
commits resolved and it is stored WAITING, or it is refused with osbuild-composer's error.
The stored compose then gives the engine the same manifest options the build worker uses.
"""

from __future__ import annotations

import hashlib
from http.server import BaseHTTPRequestHandler

import pytest

import distros
from core.store.composes import ComposeStore
from tasks.steps import manifest_options
from tests.conftest import loopback_http
from tests.databases import database_for

V1 = "/api/v1"
BP = 'name = "edge-bp"\ndescription = "edge"\nversion = "0.1.0"\ndistro = "centos-9"\n' \
     '[[customizations.user]]\nname = "alice"\nkey = "ssh-ed25519 AAAA alice"\ngroups = ["wheel"]\n'
BP_CONTAINERS = 'name = "edge-containers"\ndescription = "edge"\nversion = "0.1.0"\ndistro = "centos-9"\n' \
                '[[containers]]\nsource = "127.0.0.1:9/app:1"\nname = "app"\ntls-verify = false\n'
BP_KINOITE = 'name = "kinoite-bp"\ndescription = "desktop"\nversion = "0.1.0"\ndistro = "fedora-43"\n' \
             'architecture = "x86_64"\n'
BP_FLATPAKS = 'name = "kinoite-own"\ndescription = "desktop"\nversion = "0.1.0"\ndistro = "fedora-43"\n' \
              'architecture = "x86_64"\n[[customizations.installer.payload.flatpaks.force]]\n' \
              'references = ["app/org.example.App/$arch/stable"]\n' \
              '[customizations.installer.payload.flatpaks.force.registry]\nurl = "oci+https://127.0.0.1:9"\n'
BP_HOST = 'name = "edge-host"\ndescription = "edge"\nversion = "0.1.0"\ndistro = "centos-9"\n' \
          '[customizations]\nhostname = "edge1"\n'


@pytest.fixture(scope="module")
def client(weldr_client):
    for toml in (BP, BP_HOST, BP_CONTAINERS, BP_KINOITE, BP_FLATPAKS):
        r = weldr_client.post_toml(f"{V1}/blueprints/new", toml)
        assert r.status == 200, r
    return weldr_client


@pytest.fixture(scope="module")
def store(weldr_server):
    return ComposeStore(database_for(weldr_server.state_dir), weldr_server.state_dir / "artifacts")


def _start(client, compose_type, blueprint="edge-bp", test="", **extra):
    body = {"blueprint_name": blueprint, "compose_type": compose_type, "branch": "master", **extra}
    return client.post(f"{V1}/compose" + (f"?test={test}" if test else ""), body)


def test_compose_types_list_installer_and_ostree_types(client):
    el = {t["name"] for t in client.get(f"{V1}/compose/types?distro=centos-9").json()["types"]}
    assert {"image-installer", "edge-commit", "edge-container", "edge-installer", "edge-raw-image",
            "edge-simplified-installer", "edge-ami", "edge-vsphere"} <= el
    fedora = {t["name"] for t in client.get(f"{V1}/compose/types?distro=fedora-38").json()["types"]}
    assert {"iot-commit", "iot-container", "iot-installer", "image-installer", "live-installer"} <= fedora


@pytest.mark.parametrize("compose_type,blueprint,ostree,msg", [
    ("edge-installer", "edge-bp", {}, 'failed to initialize osbuild manifest: boot ISO image type "edge-installer" '
     "requires specifying a URL from which to retrieve the OSTree commit"),
    ("edge-commit", "edge-bp", {"parent": "rhel/9/x86_64/edge"}, "failed to initialize osbuild manifest: ostree "
     "parent ref specified, but no URL to retrieve it"),
    ("edge-raw-image", "edge-host", {"url": "http://127.0.0.1:9/repo"}, "failed to initialize osbuild manifest: "
     'unsupported blueprint customizations found for image type "edge-raw-image": (allowed: Ignition, Kernel, '
     "User, Group, SSHKey, Filesystem, Disk, FIPS, Files, Directories, Locale, Services)"),
    # ostree's ref rule, as osbuild/images applies it (a ref becomes a path on the ostree server)
    ("edge-commit", "edge-bp", {"ref": "../../x"},
     'failed to initialize osbuild manifest: invalid ostree image ref "../../x"'),
    ("edge-commit", "edge-bp", {"ref": "a b"}, 'failed to initialize osbuild manifest: invalid ostree image ref "a b"'),
    ("edge-commit", "edge-bp", {"ref": "acme/edge/"},
     'failed to initialize osbuild manifest: invalid ostree image ref "acme/edge/"'),
    ("edge-commit", "edge-bp", {"ref": "a" * 64},
     f'failed to initialize osbuild manifest: ostree image ref looks like a checksum "{"a" * 64}"'),
    ("edge-installer", "edge-bp", {"url": "http://127.0.0.1:9/repo", "parent": "../x"},
     'failed to initialize osbuild manifest: invalid ostree parent ref or commit "../x"'),
    ("tar", "edge-bp", {"ref": "-x"}, 'failed to initialize osbuild manifest: invalid ostree image ref "-x"'),
])
def test_refused_requests_answer_manifest_creation_failed(client, compose_type, blueprint, ostree, msg):
    before = client.get(f"{V1}/compose/status/*").json()
    for test in ("", "2"):  # test mode checks the request too
        r = _start(client, compose_type, blueprint, test=test, ostree=ostree)
        assert r.status == 400, r
        assert r.json()["errors"] == [{"id": "ManifestCreationFailed", "msg": msg}]
    assert client.get(f"{V1}/compose/status/*").json() == before


def test_valid_ostree_refs_are_taken(client):
    for ref in ("acme/edge", "rhel/9/x86_64/edge", "_a.b-c/d_e", "x"):
        r = _start(client, "edge-commit", test="2", ostree={"ref": ref})
        assert r.status == 200, (ref, r)


def test_unresolvable_commit_answers_ostree_options_error(client):
    before = client.get(f"{V1}/compose/status/*").json()
    r = _start(client, "edge-installer", ostree={"url": "http://127.0.0.1:9/repo", "ref": "acme/edge"})
    assert r.status == 400, r
    error = r.json()["errors"][0]
    assert error["id"] == "OSTreeOptionsError" and "127.0.0.1:9/repo/refs/heads/acme/edge" in error["msg"]
    assert client.get(f"{V1}/compose/status/*").json() == before


def test_test_mode_compose_stores_stand_in_commits_that_make_the_manifest(client, store):
    url, ref = "http://127.0.0.1:9/repo", "acme/9/x86_64/edge"
    r = _start(client, "edge-installer", test="2", ostree={"url": url, "ref": ref, "rhsm": False})
    assert r.status == 200, r
    compose = store.get(r.json()["build_id"])
    assert compose.ostree["url"] == url
    checksum = hashlib.sha256((url + ref).encode()).hexdigest()
    assert compose.options["ostree_commits"] == {
        "bootiso-tree": [{"Ref": ref, "URL": url, "ContentURL": "", "Secrets": "", "Checksum": checksum}]}
    # the build worker's manifest options carry them into the engine
    it = distros.get_distro("centos-9").image_type("x86_64", "edge-installer")
    pkgs = {name: [{"name": "kernel", "epoch": 0, "version": "5.14.0", "release": "1.el9", "arch": "x86_64",
                    "remote_location": "http://127.0.0.1:9/kernel.rpm", "checksum": "sha256:" + "0" * 64,
                    "check_gpg": False}] for name in ("build", "anaconda-tree")}
    manifest = it.manifest(compose.blueprint, pkgs, [], manifest_options(compose), seed=1)
    assert manifest["sources"]["org.osbuild.ostree"]["items"] == {checksum: {"remote": {"url": url}}}
    tree = next(p for p in manifest["pipelines"] if p["name"] == "bootiso-tree")
    kickstart = next(s for s in tree["stages"] if s["type"] == "org.osbuild.kickstart")["options"]
    assert kickstart["ostree"]["ref"] == ref and "alice" in kickstart["users"]


def test_edge_commit_with_users_warns_like_osbuild_composer(client):
    r = _start(client, "edge-commit", test="2", ostree={"ref": "acme/edge"})
    assert r.status == 200, r
    warnings = r.json()["warnings"]
    assert warnings and 'user customizations on "edge-commit" image type are deprecated' in warnings[0]


def test_blueprint_containers_are_resolved_in_test_mode_and_unreachable_registries_refused(client, store):
    r = _start(client, "edge-commit", "edge-containers", test="2")
    assert r.status == 200, r
    specs = store.get(r.json()["build_id"]).options["containers"]["os"]
    assert [(s["Source"], s["LocalName"]) for s in specs] == [("127.0.0.1:9/app:1", "app")]
    assert specs[0]["ImageID"].startswith("sha256:") and specs[0]["Digest"].startswith("sha256:")
    r = _start(client, "edge-commit", "edge-containers")
    assert r.status == 500, r
    error = r.json()["errors"][0]
    assert error["id"] == "ContainerResolveError" and "127.0.0.1:9/v2/app/manifests/1" in error["msg"]
    r = _start(client, "edge-raw-image", "edge-containers", ostree={"url": "http://127.0.0.1:9/repo"})
    assert r.status == 400 and r.json()["errors"][0]["msg"] == (
        "failed to initialize osbuild manifest: embedding containers is not supported for edge-raw-image on centos-9")


def test_atomic_desktop_installer_flatpaks_are_resolved_with_the_compose(client, store):
    fedora = {t["name"] for t in client.get(f"{V1}/compose/types?distro=fedora-43").json()["types"]}
    assert {"kinoite-installer", "silverblue-installer"} <= fedora
    ostree = {"url": "http://127.0.0.1:9/repo"}
    r = _start(client, "kinoite-installer", "kinoite-bp", test="2", ostree=ostree)
    assert r.status == 200, r
    compose = store.get(r.json()["build_id"])
    specs = compose.options["flatpaks"]["anaconda-tree"]
    assert len(specs) == 12 and specs[0]["Source"] == "runtime/org.fedoraproject.KDE6Platform/x86_64/f43"
    # the build worker's manifest options carry them into the engine
    assert manifest_options(compose)["flatpaks"] == compose.options["flatpaks"]
    # a real compose resolves the commit, then looks the blueprint's own list up in its registry's
    # Flatpak index (refused here: nothing listens there)
    with loopback_http(_OSTreeRepo) as port:
        r = _start(client, "kinoite-installer", "kinoite-own", ostree={"url": f"http://127.0.0.1:{port}/repo"})
    assert r.status == 500, r
    error = r.json()["errors"][0]
    assert error["id"] == "ContainerResolveError" and "https://127.0.0.1:9/index/static" in error["msg"], error


class _OSTreeRepo(BaseHTTPRequestHandler):
    """An ostree repository whose every ref points at one commit."""

    def do_GET(self):  # noqa: N802 (http.server's name)
        body = ("ab" * 32 + "\n").encode() if "/refs/heads/" in self.path else b""
        self.send_response(200 if body else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
