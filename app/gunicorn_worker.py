"""The gunicorn worker `serve` runs: gthread, answering the errors gunicorn handles itself in JSON.

Some requests never reach Flask: a request line longer than gunicorn's `limit_request_line`, too
many or too large headers, a malformed request line.  gunicorn answers those with a small HTML
page, which composer-cli and cockpit-composer fail to parse ("invalid character '<'").  This
worker answers them with the Weldr `HTTPError` body every other routing failure gets, same status
codes as gunicorn's; anything else is left to gunicorn.
"""

from __future__ import annotations

import json
from typing import Any

from gunicorn.http import errors as http_errors
from gunicorn.util import write_nonblock
from gunicorn.workers.gthread import ThreadWorker

# gunicorn's status for each client error it detects while parsing; anything else is a 400
_STATUS: list[tuple[type[Exception], int, str]] = [
    (http_errors.LimitRequestLine, 414, "URI Too Long"),
    (http_errors.LimitRequestHeaders, 431, "Request Header Fields Too Large"),
    (http_errors.ForbiddenProxyRequest, 403, "Forbidden"),
    (http_errors.UnsupportedTransferCoding, 501, "Not Implemented"),
    (http_errors.ExpectationFailed, 417, "Expectation Failed"),
]
_CLIENT_ERRORS = tuple(getattr(http_errors, name) for name in (
    "InvalidRequestLine", "InvalidRequestMethod", "InvalidHTTPVersion", "InvalidHeader",
    "InvalidHeaderName", "LimitRequestLine", "LimitRequestHeaders", "InvalidProxyLine",
    "ForbiddenProxyRequest", "InvalidSchemeHeaders", "UnsupportedTransferCoding",
    "ObsoleteFolding", "ExpectationFailed", "InvalidChunkSize", "ChunkMissingTerminator",
    "InvalidChunkExtension") if hasattr(http_errors, name))


def error_reply(status: int, reason: str, detail: str) -> bytes:
    """A complete HTTP/1.1 response carrying the Weldr HTTPError body; the connection closes."""
    body = json.dumps({"status": False, "errors": [
        {"id": "HTTPError", "code": status, "msg": f"{reason}: {detail}" if detail else reason}]},
        separators=(",", ":")).encode() + b"\n"
    head = (f"HTTP/1.1 {status} {reason}\r\nConnection: close\r\n"
            "Content-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
    return head + body


class WeldrThreadWorker(ThreadWorker):
    """gthread with JSON answers to the request errors gunicorn catches before the application."""

    def handle_error(self, req: Any, client: Any, addr: Any, exc: BaseException) -> None:
        if not isinstance(exc, _CLIENT_ERRORS):
            super().handle_error(req, client, addr, exc)
            return
        status, reason = 400, "Bad Request"
        for kind, code, words in _STATUS:
            if isinstance(exc, kind):
                status, reason = code, words
                break
        detail = str(exc)[:200]  # gunicorn's words; a request line is not echoed in full
        self.log.warning("Invalid request from %s: %s", (addr or ("", -1))[0] or "unix socket", detail)
        try:
            write_nonblock(client, error_reply(status, reason, detail))
        except Exception:  # noqa: BLE001 - the client may be gone already
            self.log.debug("Failed to send error message.")
