"""Resolving blueprint container images against a registry served on loopback.

The registry is a small HTTP server speaking the distribution API's manifest routes: a
multi-arch index, per-arch image manifests, and a bearer-token challenge like Docker Hub's.
"""

from __future__ import annotations

import hashlib
import json
from http.server import BaseHTTPRequestHandler

import pytest

from distros.inputs import prepare_containers
from distros.registry import ContainerResolveError, Reference, parse_reference, resolve_container
from tests.conftest import loopback_http


def _blob(obj: dict) -> tuple[bytes, str]:
    body = json.dumps(obj).encode()
    return body, "sha256:" + hashlib.sha256(body).hexdigest()


CONFIG = {"amd64": "sha256:" + "a" * 64, "arm64": "sha256:" + "b" * 64}
IMAGES = {arch: _blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cfg, "size": 1},
                        "layers": []}) for arch, cfg in CONFIG.items()}
INDEX = _blob({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
               "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": len(b),
                              "platform": {"architecture": arch, "os": "linux"}} for arch, (b, d) in IMAGES.items()]})
SINGLE = IMAGES["amd64"]


class Registry(BaseHTTPRequestHandler):
    def do_GET(self):  # noqa: N802 (http.server's name)
        if self.path.startswith("/token"):
            return self._send(200, json.dumps({"token": "t0k3n"}).encode(), "application/json")
        if self.path.startswith("/v2/private/") and self.headers.get("Authorization") != "Bearer t0k3n":
            self.send_response(401)
            host = self.headers["Host"]
            self.send_header("WWW-Authenticate",
                             f'Bearer realm="http://{host}/token",service="test",scope="repository:private:pull"')
            self.send_header("Content-Length", "0")
            self.end_headers()
            return None
        routes = {"/v2/acme/app/manifests/1": INDEX, "/v2/private/manifests/latest": SINGLE}
        routes.update({f"/v2/acme/app/manifests/{d}": (b, d) for b, d in IMAGES.values()})
        if self.path not in routes:
            return self._send(404, b"{}", "application/json")
        body, digest = routes[self.path]
        media = json.loads(body)["mediaType"]
        return self._send(200, body, media, digest)

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
    with loopback_http(Registry) as port:
        yield f"127.0.0.1:{port}"


def test_parse_reference_defaults_like_container_tools():
    assert parse_reference("fedora") == Reference("registry-1.docker.io", "library/fedora")
    assert parse_reference("quay.io/acme/app:2").tag == "2"
    assert parse_reference("localhost:5000/app@sha256:" + "c" * 64).ref == "sha256:" + "c" * 64
    with pytest.raises(ContainerResolveError, match="invalid container image reference"):
        parse_reference("quay.io/Bad Name")


def test_references_are_named_as_containers_image_names_them():
    """images' resolver stores `Name()` as a spec's source and `TagNameOnly(ref).String()` as its
    default local name: Docker Hub as docker.io, `latest` added only when there is no digest."""
    digest = "sha256:" + "c" * 64
    assert parse_reference("fedora").name == "docker.io/library/fedora"
    assert parse_reference("fedora").normalized == "docker.io/library/fedora:latest"
    assert parse_reference("quay.io/acme/app:2").normalized == "quay.io/acme/app:2"
    assert parse_reference(f"localhost:5000/app@{digest}").normalized == f"localhost:5000/app@{digest}"
    assert parse_reference(f"quay.io/acme/app:2@{digest}").name == "quay.io/acme/app"


def test_multi_arch_image_resolves_to_the_arch_manifest_and_the_list(registry):
    entry = {"source": f"{registry}/acme/app:1", "name": "app", "tls-verify": False}
    spec = resolve_container(entry, arch="aarch64")
    assert spec == {"Source": f"{registry}/acme/app", "Digest": IMAGES["arm64"][1], "ImageID": CONFIG["arm64"],
                    "LocalName": "app", "TLSVerify": False, "ListDigest": INDEX[1]}
    assert resolve_container(entry, arch="x86_64")["ImageID"] == CONFIG["amd64"]
    with pytest.raises(ContainerResolveError, match="no image for architecture s390x"):
        resolve_container(entry, arch="s390x")


def test_bearer_token_challenge_is_answered(registry):
    spec = resolve_container({"source": f"{registry}/private", "tls-verify": False}, arch="x86_64")
    assert spec["Digest"] == SINGLE[1] and "ListDigest" not in spec
    assert (spec["Source"], spec["LocalName"]) == (f"{registry}/private", f"{registry}/private:latest")


def test_errors_name_the_image(registry):
    with pytest.raises(ContainerResolveError, match="registry answered 404"):
        resolve_container({"source": f"{registry}/acme/missing", "tls-verify": False}, arch="x86_64")
    specs = prepare_containers({"containers": [{"source": f"{registry}/acme/app:1", "tls-verify": False}]},
                               arch="x86_64")
    assert specs["os"][0]["ImageID"] == CONFIG["amd64"]
