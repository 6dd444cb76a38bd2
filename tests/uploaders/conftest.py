"""Fixtures of the uploader tests: emulators (session-wide), a store with a FINISHED compose, images."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest

from tests.uploaders.emulators import (
    AZURITE_ACCOUNT,
    AZURITE_BIN,
    AZURITE_KEY,
    Azurite,
    CountingProxy,
    MotoServer,
    TLSCert,
)
from uploaders import service

MiB = 1024 * 1024


def wait_until(predicate: Callable[[], Any], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        time.sleep(0.02)


def cancel_once_sent(store: Any, upload_id: str, proxy: CountingProxy,
                     sent: int = 4 * MiB) -> threading.Thread:
    """Cancel the upload from another thread once `sent` bytes passed the proxy, so the cancel
    lands mid-transfer as a user's would; join the returned thread after the upload ends."""
    def cancel() -> None:
        wait_until(lambda: proxy.sent > sent)
        service.cancel_upload(store, upload_id)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    return canceller


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    server = MotoServer()
    yield server
    server.stop()


@pytest.fixture
def moto_clean(moto: MotoServer) -> MotoServer:
    moto.reset()
    return moto


@pytest.fixture(scope="session")
def moto_auth() -> Iterator[tuple[MotoServer, dict[str, str]]]:
    """A moto that checks credentials; its first actions create the one valid IAM key."""
    server = MotoServer(auth=True)
    iam = boto3.client("iam", endpoint_url=server.url, aws_access_key_id="AKIAEXAMPLEKEY000001",
                       aws_secret_access_key="x", region_name="us-east-1")
    iam.create_user(UserName="composer")
    iam.put_user_policy(UserName="composer", PolicyName="all", PolicyDocument=(
        '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Action": "*", "Resource": "*"}]}'))
    key = iam.create_access_key(UserName="composer")["AccessKey"]
    yield server, {"aws_access_key": key["AccessKeyId"], "aws_secret_key": key["SecretAccessKey"]}
    server.stop()


@pytest.fixture(scope="session")
def azurite() -> Iterator[Azurite]:
    if not AZURITE_BIN.exists():
        pytest.skip("Azurite is not installed (make test-deps installs it into node_modules/)")
    server = Azurite()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def tls_cert(tmp_path_factory: pytest.TempPathFactory) -> TLSCert:
    return TLSCert(tmp_path_factory.mktemp("tls"))


@pytest.fixture
def proxy_to() -> Iterator[Callable[..., CountingProxy]]:
    proxies: list[CountingProxy] = []

    def make(port: int, rate: float | None = None, tls: TLSCert | None = None) -> CountingProxy:
        proxy = CountingProxy(port, rate, tls)
        proxies.append(proxy)
        return proxy

    yield make
    for p in proxies:
        p.close()


def write_image(path: Path, size: int, extents: list[tuple[int, int]], vhd: bool = False,
                seed: int = 1) -> int:
    """A sparse image: random data at (offset, length) extents, holes elsewhere; returns data bytes.

    With `vhd`, a fixed-VHD footer (cookie `conectix`) follows `size` bytes of disk.
    """
    import random

    rnd = random.Random(seed)
    with open(path, "wb") as fh:
        fh.truncate(size + (512 if vhd else 0))
        for offset, length in extents:
            fh.seek(offset)
            data = bytearray(rnd.randbytes(length))
            data[0] = data[0] or 1  # never an all-zero first byte: the extent is data
            fh.write(bytes(data))
        if vhd:
            fh.seek(size)
            fh.write(b"conectix" + bytes(504))
    return sum(length for _, length in extents) + (512 if vhd else 0)


class ComposeEnv:
    """A real store (SQLite in a temp state dir) holding FINISHED composes with image files."""

    def __init__(self, tmp: Path):
        from core.config import load
        from core.store.composes import ComposeStore
        from tests.databases import database_for, database_url

        self.config = load(environ={}, state_dir=tmp / "state", cache_dir=tmp / "cache",
                           database_url=database_url(tmp / "state"),
                           local_upload_dirs=[str(tmp)])  # where the `local` target may write
        self.db = database_for(self.config.state_dir)
        self.store = ComposeStore(self.db, self.config.artifacts_path)

    def finished_compose(self, compose_type: str, filename: str, arch: str = "x86_64",
                         uploads: list[dict[str, Any]] | None = None,
                         distro: str = "fedora-42") -> Any:
        compose = self.store.create(blueprint={"name": "bp", "version": "0.0.1"},
                                    compose_type=compose_type, distro=distro, arch=arch,
                                    size=0, image_filename=filename, test_mode=2,
                                    upload_requests=uploads or [])
        path = self.store.image_path(compose)
        path.parent.mkdir(parents=True, exist_ok=True)
        return compose, path

    def upload_for(self, target: str, settings: dict[str, Any], compose_type: str, filename: str,
                   image_name: str = "test-image", distro: str = "fedora-42") -> tuple[str, Path]:
        compose, path = self.finished_compose(compose_type, filename, distro=distro)
        upload_id = self.store.add_upload(compose.id, target, image_name, settings)
        return upload_id, path


@pytest.fixture
def env(tmp_path: Path) -> ComposeEnv:
    return ComposeEnv(tmp_path)


def azurite_settings(url: str, container: str = "images", **extra: Any) -> dict[str, Any]:
    return {"storage_account_name": AZURITE_ACCOUNT, "storage_container": container,
            "storage_account_key": AZURITE_KEY, "endpoint_url": url, **extra}


def aws_settings(url: str, **extra: Any) -> dict[str, Any]:
    return {"aws_region": "us-east-1", "aws_access_key": "AKIAEXAMPLEKEY000001",
            "aws_secret_key": "s3cr3t-aws-key-for-tests", "aws_endpoint_url": url, **extra}


@pytest.fixture(autouse=True)
def _no_proxy_env(monkeypatch: pytest.MonkeyPatch) -> None:
    """Loopback only: an inherited HTTP(S)_PROXY must not reroute emulator traffic."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy", "AWS_PROFILE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,localhost")
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    os.environ.setdefault("AWS_CONFIG_FILE", "/dev/null")
