"""The `container` target against a real registry on loopback (Debian's `docker-registry`, over
TLS with our own CA and an htpasswd user), pushing with skopeo as the worker does."""

from __future__ import annotations

import shutil
import urllib.error
from collections.abc import Iterator

import pytest

from tests.uploaders.conftest import MiB, cancel_once_sent
from tests.uploaders.emulators import (
    REGISTRY_PASSWORD,
    REGISTRY_USER,
    Registry,
    TLSCert,
    write_oci_archive,
)
from uploaders import service
from uploaders.service import run_upload

pytestmark = pytest.mark.skipif(shutil.which("skopeo") is None or shutil.which("docker-registry") is None,
                                reason="skopeo and docker-registry are installed by `make test-deps`")


@pytest.fixture(scope="module")
def registry(tls_cert: TLSCert) -> Iterator[Registry]:
    server = Registry(tls_cert)
    yield server
    server.stop()


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
    assert "Copying blob sha256:" in log and "Writing manifest" in log  # skopeo's steps, live


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


def test_reset_with_new_settings_then_push(env, registry) -> None:
    """A push that failed on a wrong password is reset with the right settings and pushed; the
    new settings are checked first (a malformed one is refused, naming it)."""
    from core.errors import WeldrError

    upload_id, path = env.upload_for("container", {"username": REGISTRY_USER, "password": "wrong-one",
                                                   "tls_verify": False}, "container", "container.tar",
                                     image_name=f"{registry.host}/os/reset:1")
    write_oci_archive(path, 64 * 1024)
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"
    with pytest.raises(WeldrError) as err:
        service.reset_upload(env.store, env.config, upload_id, None, {**CREDS, "tls_verify": "no"})
    assert 'Expected a boolean for "tls_verify"' in err.value.msg
    service.reset_upload(env.store, env.config, upload_id, f"{registry.host}/os/reset:2",
                         {**CREDS, "tls_verify": False})
    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    assert registry.manifest("os/reset", "2")[1] == env.store.upload(upload_id).result["digest"]
