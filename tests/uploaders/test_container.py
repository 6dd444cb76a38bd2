"""The `container` target against a real registry on loopback (Debian's `docker-registry`, over
TLS with our own CA and an htpasswd user), pushing with skopeo as the worker does."""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tarfile
import urllib.error
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent
from tests.uploaders.emulators import REGISTRY_PASSWORD, REGISTRY_USER, Registry, TLSCert
from uploaders import service
from uploaders.service import run_upload

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("docker-registry") is None,
                                reason="skopeo and docker-registry are installed by `make test-deps`")


@pytest.fixture(scope="module")
def registry(tls_cert: TLSCert) -> Iterator[Registry]:
    server = Registry(tls_cert)
    yield server
    server.stop()


def write_oci_archive(path: Path, layer_bytes: int) -> str:
    """An OCI image layout in a tar (what osbuild's oci-archive stage writes): one uncompressed
    layer holding `layer_bytes` of random data. Returns the config's digest (the push may
    compress the layer, so the layer's digest changes; the config names the uncompressed one)."""
    payload = io.BytesIO()
    with tarfile.open(fileobj=payload, mode="w") as layer:
        info = tarfile.TarInfo("usr/share/blob")
        info.size = layer_bytes
        layer.addfile(info, io.BytesIO(os.urandom(layer_bytes)))
    blobs: dict[str, bytes] = {}

    def blob(data: bytes) -> dict[str, Any]:
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return {"digest": digest, "size": len(data)}

    layer_desc = {"mediaType": "application/vnd.oci.image.layer.v1.tar", **blob(payload.getvalue())}
    config = {"architecture": "amd64", "os": "linux",
              "rootfs": {"type": "layers", "diff_ids": [layer_desc["digest"]]}}
    config_desc = {"mediaType": "application/vnd.oci.image.config.v1+json",
                   **blob(json.dumps(config).encode())}
    manifest = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "config": config_desc, "layers": [layer_desc]}
    index = {"schemaVersion": 2, "manifests": [{"mediaType": manifest["mediaType"],
                                               **blob(json.dumps(manifest).encode())}]}
    with tarfile.open(path, "w") as archive:
        def add(name: str, data: bytes) -> None:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))

        add("oci-layout", b'{"imageLayoutVersion": "1.0.0"}')
        add("index.json", json.dumps(index).encode())
        for digest, data in blobs.items():
            add(f"blobs/sha256/{digest.split(':', 1)[1]}", data)
    return str(config_desc["digest"])


CREDS = {"username": REGISTRY_USER, "password": REGISTRY_PASSWORD}


def test_push_with_credentials(env, registry) -> None:
    upload_id, path = env.upload_for("container", {**CREDS, "tls_verify": False}, "container",
                                     "container.tar", image_name=f"{registry.host}/os/fedora:42")
    config = write_oci_archive(path, 3 * MiB)
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    result = env.store.upload(upload_id).result
    manifest, digest = registry.manifest("os/fedora", "42")
    assert result["digest"] == digest and result["reference"] == f"{registry.host}/os/fedora:42"
    assert manifest["config"]["digest"] == config and len(manifest["layers"]) == 1
    log = service.upload_store.read_log(env.db, upload_id)
    assert "pushed" in log and REGISTRY_PASSWORD not in log


def test_tls_verified_by_default(env, registry) -> None:
    """tls_verify left out means verify, as osbuild-composer does: a self-signed registry fails,
    and the message names the registry and the cause."""
    upload_id, path = env.upload_for("container", CREDS, "iot-container", "container.tar",
                                     image_name=f"{registry.host}/os/iot:1")
    write_oci_archive(path, 64 * 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert error.startswith(f"pushing to registry {registry.host}: the registry's TLS certificate "
                            "is not trusted"), error


def test_bad_password_named_and_not_shown(env, registry) -> None:
    wrong = "not-the-registry-password"
    upload_id, path = env.upload_for("container", {"username": REGISTRY_USER, "password": wrong,
                                                   "tls_verify": False}, "edge-container",
                                     "container.tar", image_name=f"{registry.host}/os/edge:1")
    write_oci_archive(path, 64 * 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    error = env.store.upload(upload_id).error
    assert "authentication" in error and registry.host in error, error
    assert wrong not in error and wrong not in service.upload_store.read_log(env.db, upload_id)


def test_cancel_stops_the_push(env, registry, proxy_to) -> None:
    """Cancelled mid-push through a slow relay: skopeo is stopped and no tag appears."""
    proxy = proxy_to(registry.port, rate=4 * MiB)
    upload_id, path = env.upload_for("container", {**CREDS, "tls_verify": False}, "container",
                                     "container.tar", image_name=f"127.0.0.1:{proxy.port}/os/big:1")
    write_oci_archive(path, 48 * MiB)
    canceller = cancel_once_sent(env.store, upload_id, proxy, sent=2 * MiB)
    assert run_upload(env.config, upload_id, store=env.store) == "CANCELLED"
    canceller.join()
    assert proxy.sent < 40 * MiB
    with pytest.raises(urllib.error.HTTPError) as err:
        registry.manifest("os/big", "1")
    assert err.value.code == 404
