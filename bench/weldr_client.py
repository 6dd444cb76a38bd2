"""A Weldr API client over the unix socket: plain HTTP/1.1, as composer-cli speaks it.

Here, not in the tests, because the benchmarks drive the API too and run on what `make venv`
installs (no pytest); the tests import it from here.
"""

from __future__ import annotations

import http.client
import json as jsonlib
import socket
from pathlib import Path
from typing import Any


class UnixHTTPConnection(http.client.HTTPConnection):
    def __init__(self, path: str, timeout: float = 60.0):
        super().__init__("localhost", timeout=timeout)
        self.unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        sock.connect(self.unix_path)
        self.sock = sock


class WeldrResponse:
    def __init__(self, status: int, headers: http.client.HTTPMessage, body: bytes):
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")

    def json(self) -> Any:
        return jsonlib.loads(self.body)

    def __repr__(self) -> str:
        return f"<WeldrResponse {self.status} {self.body[:300]!r}>"


class WeldrClient:
    """HTTP over the Weldr unix socket; paths are sent exactly as given (no normalisation)."""

    def __init__(self, socket_path: str | Path):
        self.socket_path = str(socket_path)

    def request(self, method: str, path: str, body: bytes | str | dict | None = None,
                headers: dict[str, str] | None = None, timeout: float = 60.0) -> WeldrResponse:
        headers = dict(headers or {})
        if isinstance(body, dict):
            body = jsonlib.dumps(body)
            headers.setdefault("Content-Type", "application/json")
        if isinstance(body, str):
            body = body.encode("utf-8")
        conn = UnixHTTPConnection(self.socket_path, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers)
            resp = conn.getresponse()
            return WeldrResponse(resp.status, resp.headers, resp.read())
        finally:
            conn.close()

    def get(self, path: str, **kw: Any) -> WeldrResponse:
        return self.request("GET", path, **kw)

    def post(self, path: str, body: Any = None, **kw: Any) -> WeldrResponse:
        return self.request("POST", path, body=body, **kw)

    def delete(self, path: str, **kw: Any) -> WeldrResponse:
        return self.request("DELETE", path, **kw)

    def post_toml(self, path: str, text: str) -> WeldrResponse:
        return self.post(path, text, headers={"Content-Type": "text/x-toml"})
