"""Socket activation: `serve` takes the sockets systemd hands it, as celery-composer.socket does.

`systemd-socket-activate` is systemd's own tool for this: it listens, and on the first connection
execs the service with LISTEN_FDS/LISTEN_PID set, exactly like PID 1 does for a .socket unit.
"""

from __future__ import annotations

import http.client
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import stop_group

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.skipif(shutil.which("systemd-socket-activate") is None,
                                reason="systemd-socket-activate not installed (Debian package systemd)")


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: Path, timeout: float):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = str(path)

    def connect(self) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(self.timeout)
        self.sock.connect(self.unix_path)


def get(conn: http.client.HTTPConnection, path: str) -> tuple[int, bytes]:
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_serve_uses_inherited_sockets_and_leaves_them_in_place(tmp_path):
    sock = tmp_path / "run" / "api.socket"
    sock.parent.mkdir()
    port = free_port()
    env_settings = {
        "CELERY_COMPOSER_STATE_DIR": str(tmp_path / "state"),
        "CELERY_COMPOSER_CACHE_DIR": str(tmp_path / "cache"),
        "CELERY_COMPOSER_SOCKET": str(sock),
        "CELERY_COMPOSER_EMBEDDED_WORKERS": "false",
        "CELERY_COMPOSER_API_WORKERS": "1",
        "PYTHONPATH": str(ROOT),
    }
    cmd = ["systemd-socket-activate", "-l", str(sock), "-l", f"127.0.0.1:{port}"]
    cmd += [f"--setenv={k}={v}" for k, v in env_settings.items()]
    cmd += [sys.executable, "-m", "app.cli", "serve"]
    log_path = tmp_path / "serve.log"
    with open(log_path, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    try:
        deadline = time.monotonic() + 120  # a bound for a loaded machine
        while not sock.exists():
            assert time.monotonic() < deadline, log_path.read_text()
            assert proc.poll() is None, log_path.read_text()
            time.sleep(0.05)
        # the first connection starts the service; it answers on the socket systemd made
        status, body = get(UnixHTTPConnection(sock, timeout=60), "/api/status")
        assert status == 200, log_path.read_text()
        assert b'"api"' in body
        # and on the TCP socket it was given too (config `listen` was never set)
        status, body = get(http.client.HTTPConnection("127.0.0.1", port, timeout=30), "/api/status")
        assert status == 200 and b'"api"' in body
        assert "from systemd" in log_path.read_text()
    finally:
        stop_group(proc)
    # systemd owns the socket: a stopped service must not remove it, or the next activation fails
    assert sock.exists(), log_path.read_text()
