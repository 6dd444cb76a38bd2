"""Real cloud API emulators on loopback for the uploader tests and `bench/upload.py`.

- moto in server mode (`moto_server`): S3, EC2 (snapshots, register-image, tags) and the EBS
  direct APIs, over real HTTP.
- Azurite's blob service (`azurite-blob`, npm, installed by `make test-deps` into node_modules/).
- `CountingProxy`: a TCP relay that counts the bytes a client sends (what an upload costs on the
  wire) and can cut every connection after a byte budget (a network failure mid-upload); with a
  `TLSCert` it terminates TLS in front of a plain server (a custom-CA endpoint).
- `TLSCert`: a self-signed certificate for 127.0.0.1 made with openssl, our own CA for a test.
- `GCSEmulator`: gcp-storage-emulator (PyPI), the GCS JSON API including resumable uploads.
- `write_oci_archive`: an OCI archive (what osbuild's oci-archive stage writes) for the
  container target's tests and benchmark.
- `Registry`: Debian's `docker-registry` (the CNCF distribution registry) over TLS with an
  htpasswd user, storing into a temporary directory.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
AZURITE_BIN = ROOT / "node_modules" / ".bin" / "azurite-blob"
AZURITE_ACCOUNT = "devstoreaccount1"
# Azurite's fixed, publicly documented development key (not a secret).
AZURITE_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/"
               "K1SZFPTOtr/KBHBeksoGMGw==")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, proc: subprocess.Popen, what: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{what} exited with {proc.returncode}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


def _stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)


class MotoServer:
    """`moto_server` on a free loopback port. `auth=True` makes it check credentials (IAM)."""

    def __init__(self, auth: bool = False):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ)
        # with auth, the first 3 actions (create the IAM user, policy and key) run unauthenticated
        env.pop("INITIAL_NO_AUTH_ACTION_COUNT", None)
        if auth:
            env["INITIAL_NO_AUTH_ACTION_COUNT"] = "3"
        moto = Path(sys.executable).with_name("moto_server")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([str(moto), "-H", "127.0.0.1", "-p", str(self.port)], env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        _wait_port(self.port, self.proc, "moto_server")

    def reset(self) -> None:
        req = urllib.request.Request(self.url + "/moto-api/reset", method="POST")
        urllib.request.urlopen(req, timeout=10).read()

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


class Azurite:
    """Azurite's blob service on a free loopback port, its data in a temporary directory."""

    def __init__(self) -> None:
        if not AZURITE_BIN.exists():
            raise FileNotFoundError(f"{AZURITE_BIN} is missing: run `make test-deps`")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="azurite-")
        self.url = f"http://127.0.0.1:{self.port}/{AZURITE_ACCOUNT}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen(
            [str(AZURITE_BIN), "--blobHost", "127.0.0.1", "--blobPort", str(self.port),
             "--location", self.dir, "--skipApiVersionCheck", "--disableProductStyleUrl",
             "--silent", "--disableTelemetry"],
            stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, "azurite-blob")

    def create_container(self, name: str) -> None:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient(self.url, credential={"account_name": AZURITE_ACCOUNT,
                                                          "account_key": AZURITE_KEY})
        service.create_container(name)

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class TLSCert:
    """A self-signed certificate for 127.0.0.1 (and localhost), valid for a day."""

    def __init__(self, directory: Path):
        self.cert = directory / "cert.pem"
        self.key = directory / "key.pem"
        subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                        "-keyout", str(self.key), "-out", str(self.cert), "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1,DNS:localhost"],
                       check=True, capture_output=True)

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context


class CountingProxy:
    """Relays 127.0.0.1:<port> to an upstream port, counting the bytes clients send.

    `cut_after(n)`: once n more bytes went upstream, every connection (and every new one) is
    closed — a network that fails in the middle of an upload and stays down. With `tls`, clients
    speak TLS to the proxy (the upstream stays plain): an HTTPS endpoint with our own CA.
    """

    def __init__(self, upstream_port: int, rate: float | None = None, tls: TLSCert | None = None):
        self.upstream = upstream_port
        self.rate = rate  # bytes/s per connection, client → upstream; None: as fast as possible
        self.sent = 0
        self.received = 0
        self._budget: int | None = None
        self._lock = threading.Lock()
        self._sock = socket.socket()
        self._sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self.port = self._sock.getsockname()[1]
        self._tls = tls.server_context() if tls else None
        self._conns: list[socket.socket] = []
        self._closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def url(self, path: str = "") -> str:
        return f"{'https' if self._tls else 'http'}://127.0.0.1:{self.port}{path}"

    def reset_counts(self) -> None:
        with self._lock:
            self.sent = self.received = 0

    def cut_after(self, nbytes: int) -> None:
        with self._lock:
            self._budget = self.sent + nbytes

    def _down(self) -> bool:
        return self._budget is not None and self.sent >= self._budget

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self._sock.accept()
            except OSError:
                return
            with self._lock:
                down = self._down()
            if down:
                client.close()
                continue
            if self._tls is not None:
                threading.Thread(target=self._handshake, args=(client,), daemon=True).start()
                continue
            self._relay(client)

    def _handshake(self, client: socket.socket) -> None:
        assert self._tls is not None
        try:
            client.settimeout(10)
            wrapped = self._tls.wrap_socket(client, server_side=True)
            wrapped.settimeout(None)
        except (OSError, ssl.SSLError):  # a client that refused our certificate
            client.close()
            return
        self._relay(wrapped)

    def _relay(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(("127.0.0.1", self.upstream))
        except OSError:
            client.close()
            return
        with self._lock:
            self._conns += [client, upstream]
        threading.Thread(target=self._pipe, args=(client, upstream, True), daemon=True).start()
        threading.Thread(target=self._pipe, args=(upstream, client, False), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, outbound: bool) -> None:
        try:
            while True:
                data = src.recv(64 * 1024 if self.rate else 256 * 1024)
                if not data:
                    break
                with self._lock:
                    if outbound:
                        self.sent += len(data)
                    else:
                        self.received += len(data)
                    down = self._down()
                if down:
                    break
                if outbound and self.rate:
                    time.sleep(len(data) / self.rate)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()
            if self._down():
                with self._lock:
                    conns, self._conns = self._conns, []
                for s in conns:
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

    def close(self) -> None:
        self._closed = True
        self._sock.close()


REGISTRY_BIN = "docker-registry"
REGISTRY_USER = "composer"
REGISTRY_PASSWORD = "registry-password-for-tests"


class Registry:
    """A real container registry on a loopback port: TLS with `cert`, one htpasswd user."""

    def __init__(self, cert: TLSCert):
        import crypt  # the bcrypt of htpasswd lines (deprecated in 3.11, still present)

        if shutil.which(REGISTRY_BIN) is None:
            raise FileNotFoundError("docker-registry is not installed (tests/debian-packages.txt)")
        self.port = free_port()
        self.host = f"127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="registry-"))
        (self.dir / "htpasswd").write_text(
            f"{REGISTRY_USER}:{crypt.crypt(REGISTRY_PASSWORD, crypt.mksalt(crypt.METHOD_BLOWFISH))}\n")
        (self.dir / "config.yml").write_text(f"""version: 0.1
log: {{level: info}}
storage:
  filesystem: {{rootdirectory: {self.dir / "data"}}}
  delete: {{enabled: true}}
http:
  addr: 127.0.0.1:{self.port}
  secret: test-only
  tls: {{certificate: {cert.cert}, key: {cert.key}}}
auth:
  htpasswd: {{realm: tests, path: {self.dir / "htpasswd"}}}
""")
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([REGISTRY_BIN, "serve", str(self.dir / "config.yml")],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, "docker-registry")
        self.cert = cert

    def manifest(self, repository: str, tag: str) -> tuple[dict, str]:
        """The pushed manifest and its digest, read back over the registry API."""
        import base64
        import json

        context = ssl.create_default_context(cafile=str(self.cert.cert))
        auth = base64.b64encode(f"{REGISTRY_USER}:{REGISTRY_PASSWORD}".encode()).decode()
        req = urllib.request.Request(
            f"https://{self.host}/v2/{repository}/manifests/{tag}",
            headers={"Authorization": f"Basic {auth}", "Accept": ", ".join((
                "application/vnd.oci.image.manifest.v1+json",
                "application/vnd.docker.distribution.manifest.v2+json"))})
        with urllib.request.urlopen(req, timeout=30, context=context) as resp:
            return json.loads(resp.read()), resp.headers["Docker-Content-Digest"]

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class GCSEmulator:
    """gcp-storage-emulator (PyPI) serving the GCS JSON API on a loopback port, data in memory."""

    def __init__(self) -> None:
        binary = Path(sys.executable).with_name("gcp-storage-emulator")
        if not binary.exists():
            raise FileNotFoundError(f"{binary} is missing: run `make test-deps`")
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = tempfile.TemporaryFile()
        self.proc = subprocess.Popen([str(binary), "start", "--host", "127.0.0.1", "--port",
                                      str(self.port), "--in-memory"],
                                     stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        _wait_port(self.port, self.proc, "gcp-storage-emulator")

    def client(self) -> "object":
        from google.auth.credentials import AnonymousCredentials
        from google.cloud import storage

        return storage.Client(project="test", credentials=AnonymousCredentials(),
                              client_options={"api_endpoint": self.url})

    def stop(self) -> None:
        _stop(self.proc)
        self.log.close()


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
