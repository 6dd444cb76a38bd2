"""Flatpaks embedded in today's Kinoite and Silverblue installers (distros/flatpaks.py).

The manifests are made with images' mock resolver (as its test manifests are); the resolver for
real composes is exercised against a registry served on loopback: its Flatpak index names the image
of each reference, whose manifest the distribution API then serves.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

import pytest

import distros
from distros import flatpaks, manifestmock
from distros.inputs import prepare_flatpaks
from tests.conftest import loopback_http
from tests.distros.test_schemas import fake_packages, validate_manifest

OSTREE = {"url": "http://127.0.0.1:9/repo"}
REGISTRY = "oci+https://registry.fedoraproject.org"


def _manifest(distro: str, arch: str, name: str, blueprint: dict[str, Any] | None = None,
              drop_flatpaks: bool = False) -> dict[str, Any]:
    it = distros.get_distro(distro).image_type(arch, name)
    bp = blueprint or {}
    options: dict[str, Any] = {"ostree": dict(OSTREE)}
    options["ostree_commits"] = {p: [manifestmock.resolve_commit(s.url, s.ref)]
                                 for p, s in ((p, s[0]) for p, s in it.ostree_sources(bp, options).items())}
    if not drop_flatpaks:
        options["flatpaks"] = prepare_flatpaks(it, bp, OSTREE, test=True)
    sets = it.package_sets(bp, options)
    return it.manifest(bp, fake_packages(arch, list(sets)), [], options, seed=3)


def _pipeline(manifest: dict[str, Any], name: str) -> dict[str, Any]:
    return next(p for p in manifest["pipelines"] if p["name"] == name)


def _imports(manifest: dict[str, Any]) -> list[dict[str, Any]]:
    return [s for s in _pipeline(manifest, "anaconda-tree")["stages"]
            if s["type"] == "org.osbuild.flatpak.build-import-bundle.oci"]


@pytest.mark.parametrize("name,count", [("kinoite-installer", 12), ("silverblue-installer", 20)])
def test_atomic_desktop_installers_embed_their_flatpaks_after_the_payload(name, count):
    manifest = _manifest("fedora-43", "x86_64", name)
    stages = _pipeline(manifest, "anaconda-tree")["stages"]
    types = [s["type"] for s in stages]
    # the payload commit and its kickstart, then the flatpak repository and one import per image
    first = types.index("org.osbuild.ostree.init", types.index("org.osbuild.kickstart"))
    assert stages[first]["options"] == {"mode": "bare-user", "path": "/flatpak/repo"}
    assert types[first + 1:first + 1 + count] == ["org.osbuild.flatpak.build-import-bundle.oci"] * count
    assert types[first + 1 + count] == "org.osbuild.buildstamp"
    skopeo = manifest["sources"]["org.osbuild.skopeo"]["items"]
    assert len(skopeo) == count
    for stage in _imports(manifest):
        assert stage["options"] == {"repository": "tree:///flatpak/repo"}
        (image_id, ref), = stage["inputs"]["containers"]["references"].items()
        # images' mock names the image by its reference and gives it no local name
        assert ref == {"name": ""} and skopeo[image_id]["image"]["name"].split("/")[2] == "x86_64"
    # the build root brings flatpak for the import stages
    assert "flatpak" in [p for p in distros.get_distro("fedora-43").image_type("x86_64", name)
                         .package_sets({}, {"ostree": OSTREE})["build"][0]["include"]]


def test_images_reference_names_and_mock_digests():
    it = distros.get_distro("fedora-44").image_type("aarch64", "silverblue-installer")
    (pipeline, sources), = it.flatpak_sources({}, {"ostree": OSTREE}).items()
    assert pipeline == "anaconda-tree"
    assert sources[0] == flatpaks.FlatpakSource(REGISTRY, "runtime/org.fedoraproject.Platform/aarch64/f44", "fedora")
    assert sources[-1].ref == "app/org.gnome.Weather/aarch64/stable"
    spec = manifestmock.resolve_flatpak(REGISTRY, sources[0].ref, "fedora")
    base = f"1fedora{REGISTRY}{sources[0].ref}"
    assert spec == {"Source": sources[0].ref, "Digest": "sha256:" + hashlib.sha256((base + "digest").encode()).hexdigest(),
                    "ImageID": "sha256:" + hashlib.sha256((base + "imageid").encode()).hexdigest()}


def test_fedora_45_keeps_the_f44_runtimes():
    it = distros.get_distro("fedora-45").image_type("x86_64", "kinoite-installer")
    refs = [s.ref for s in it.flatpak_sources({}, {"ostree": OSTREE})["anaconda-tree"]]
    assert refs[:2] == ["runtime/org.fedoraproject.KDE6Platform/x86_64/f44",
                        "runtime/org.fedoraproject.Platform.GL.default/x86_64/f44"]
    assert len(refs) == 12


def test_unresolved_flatpaks_are_refused():
    with pytest.raises(flatpaks.MissingFlatpaks, match="12 flatpaks to embed, 0 resolved"):
        _manifest("fedora-43", "x86_64", "kinoite-installer", drop_flatpaks=True)


def test_blueprint_forces_its_own_flatpaks_or_none():
    force = {"customizations": {"installer": {"payload": {"flatpaks": {"force": [
        {"registry": {"remote_name": "mine", "url": "oci+https://quay.io"},
         "references": ["app/org.example.App/$arch/stable"]}]}}}}}
    it = distros.get_distro("fedora-43").image_type("aarch64", "kinoite-installer")
    (source,) = it.flatpak_sources(force, {"ostree": OSTREE})["anaconda-tree"]
    # images keeps the blueprint registry's URL and not its remote name
    assert source == flatpaks.FlatpakSource("oci+https://quay.io", "app/org.example.App/aarch64/stable")
    assert len(_imports(_manifest("fedora-43", "aarch64", "kinoite-installer", force))) == 1

    none = {"customizations": {"installer": {"payload": {"flatpaks": {"force": []}}}}}
    manifest = _manifest("fedora-43", "x86_64", "silverblue-installer", none)
    assert not _imports(manifest) and "org.osbuild.skopeo" not in manifest["sources"]
    assert "flatpak" not in it.package_sets(none, {"ostree": OSTREE})["build"][0]["include"]


@pytest.mark.parametrize("entry,msg", [
    ({"registry": {"url": "https://quay.io"}, "references": ["app/a/x86_64/stable"]}, "unknown registry type"),
    ({"registry": {"url": "oci+https://quay.io"}, "references": ["app/a/stable"]}, "got 3 parts"),
    ({"registry": {"url": "oci+https://quay.io"}, "references": ["app//x86_64/stable"]}, "empty part at index 1"),
    ({"references": ["app/a/x86_64/stable"]}, "registry is mandatory"),
])
def test_bad_blueprint_flatpaks_are_request_errors(entry, msg):
    bp = {"customizations": {"installer": {"payload": {"flatpaks": {"force": [entry]}}}}}
    it = distros.get_distro("fedora-43").image_type("x86_64", "kinoite-installer")
    with pytest.raises(flatpaks.FlatpakError, match=msg):
        it.flatpak_sources(bp, {"ostree": OSTREE})


@pytest.mark.parametrize("name", ["kinoite-installer", "silverblue-installer"])
def test_manifests_validate_against_osbuild_schemas(schema_dir: Path, name: str):
    for distro in ("fedora-43", "fedora-45"):
        validate_manifest(_manifest(distro, "aarch64", name))


def test_other_installers_resolve_no_flatpaks():
    for name in ("sway-atomic-installer", "minimal-installer", "iot-installer"):
        it = distros.get_distro("fedora-43").image_type("x86_64", name)
        assert it.flatpak_sources({}, {"ostree": OSTREE}) == {}


# --- resolving against a registry ----------------------------------------------------------------


def _blob(obj: dict[str, Any]) -> tuple[bytes, str]:
    body = json.dumps(obj).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


CONFIG = "sha256:" + "c" * 64
IMAGE = _blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
               "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": CONFIG, "size": 1},
               "layers": []})
WANTED = "app/org.example.Calc/x86_64/stable"


class FlatpakRegistry(BaseHTTPRequestHandler):
    queries: list[dict[str, list[str]]] = []

    def do_GET(self):  # noqa: N802 (http.server's name)
        url = urllib.parse.urlsplit(self.path)
        if url.path == "/index/static":
            FlatpakRegistry.queries.append(urllib.parse.parse_qs(url.query))
            host = self.headers["Host"]
            index = {"Registry": f"http://{host}/", "Results": [
                {"Name": "flatpaks/other", "Images": [{"Digest": "sha256:" + "1" * 64,
                                                       "Labels": {"org.flatpak.ref": "app/other/x86_64/stable"}}]},
                {"Name": "flatpaks/calc", "Images": [None, {"Digest": IMAGE[1],
                                                            "Labels": {"org.flatpak.ref": WANTED}}]},
            ]}
            return self._send(200, json.dumps(index).encode(), "application/json")
        if url.path == f"/v2/flatpaks/calc/manifests/{IMAGE[1]}":
            return self._send(200, IMAGE[0], "application/vnd.oci.image.manifest.v1+json", IMAGE[1])
        return self._send(404, b"{}", "application/json")

    def _send(self, status, body, media, digest=""):
        self.send_response(status)
        self.send_header("Content-Type", media)
        if digest:
            self.send_header("Docker-Content-Digest", digest)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def registry():
    FlatpakRegistry.queries = []
    with loopback_http(FlatpakRegistry) as port:
        yield f"127.0.0.1:{port}"


def _plain_http(entry, arch):
    # the loopback registry speaks plain HTTP: resolve as a `tls-verify = false` image would be
    from distros.registry import resolve_container

    return resolve_container({**entry, "tls-verify": False}, arch=arch)


def test_references_resolve_through_the_registry_index(registry):
    sources = [flatpaks.FlatpakSource(f"oci+http://{registry}", WANTED, "fedora")] * 2
    specs = flatpaks.resolve_all(sources, container_resolver=_plain_http,
                                 index_fetcher=lambda base: flatpaks.fetch_index(base, timeout=10))
    spec = specs[0]
    assert spec["Source"] == f"{registry}/flatpaks/calc"   # the digest stays apart, as images' specs
    assert spec["Digest"] == IMAGE[1] and spec["ImageID"] == CONFIG and spec["LocalName"] == "flatpaks/calc"
    assert specs[1] == spec
    # one index fetch per registry, with the query Flatpak sends
    assert FlatpakRegistry.queries == [{"label:org.flatpak.ref:exists": ["1"], "os": ["linux"], "tag": ["latest"]}]
    assert flatpaks.spec_from_dict(spec).local_name == "flatpaks/calc"


def test_unknown_references_and_unreachable_registries_are_resolve_errors(registry):
    missing = [flatpaks.FlatpakSource(f"oci+http://{registry}", "app/org.example.None/x86_64/stable")]
    with pytest.raises(flatpaks.FlatpakResolveError, match="did not find image"):
        flatpaks.resolve_all(missing, container_resolver=_plain_http)
    with pytest.raises(flatpaks.FlatpakResolveError, match="registry index"):
        flatpaks.resolve_all([flatpaks.FlatpakSource("oci+http://127.0.0.1:9", WANTED)], timeout=5)
    with pytest.raises(flatpaks.FlatpakResolveError, match="missing oci\\+ prefix"):
        flatpaks.resolve_all([flatpaks.FlatpakSource("https://quay.io", WANTED)])


def test_index_without_registry_field_is_refused():
    index = {"Results": [{"Name": "x", "Images": [{"Digest": "sha256:" + "a" * 64,
                                                   "Labels": {"org.flatpak.ref": WANTED}}]}]}
    with pytest.raises(flatpaks.FlatpakResolveError, match="Registry field was missing"):
        flatpaks.find_in_index(index, WANTED)
