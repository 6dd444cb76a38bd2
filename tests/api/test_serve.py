"""`celery-composer serve` as deployed: socket group, optional TCP, clean stop."""

from __future__ import annotations

import grp
import http.client
import socket
import stat


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_socket_group_and_tcp(start_weldr_server):
    group = grp.getgrnam("daemon")  # any existing group stands in for `weldr`
    port = _free_port()
    server = start_weldr_server(env={"CELERY_COMPOSER_SOCKET_GROUP": group.gr_name},
                                args=["--listen", f"127.0.0.1:{port}"])
    st = server.socket.stat()
    assert stat.S_IMODE(st.st_mode) == 0o660 and st.st_gid == group.gr_gid
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    conn.request("GET", "/api/status")
    resp = conn.getresponse()
    assert resp.status == 200 and b'"backend":"osbuild-composer"' in resp.read()
    conn.close()
    assert server.stop() == 0
    assert not server.socket.exists()


def test_missing_group_leaves_owner_group(start_weldr_server):
    server = start_weldr_server(env={"CELERY_COMPOSER_SOCKET_GROUP": "no-such-group-here"})
    assert stat.S_IMODE(server.socket.stat().st_mode) == 0o660
    assert server.client.get("/api/status").status == 200
