"""The one error type every layer raises for a failure the API answers with a Weldr error.

It lives in the core so that plain code below the API (upload scheduling, compose requests) can
say *which* Weldr error a failure is without importing Flask; `app.errors` renders it.
"""

from __future__ import annotations

from typing import Any


class WeldrError(Exception):
    """An API error with a Weldr id, a message and the HTTP status it is answered with.

    `extra` adds keys next to `errors` in the body (e.g. compose/delete's `uuids`).
    """

    def __init__(self, id: str, msg: str, http_status: int = 400,
                 extra: dict[str, Any] | None = None):
        super().__init__(f"{id}: {msg}")
        self.id = id
        self.msg = msg
        self.http_status = http_status
        self.extra = extra or {}

    def entry(self) -> dict[str, Any]:
        return {"id": self.id, "msg": self.msg}

    def body(self) -> dict[str, Any]:
        """The whole reply body: `{"status": false, "errors": [...]}` plus `extra`."""
        body: dict[str, Any] = {"status": False, "errors": [self.entry()]}
        body.update(self.extra)
        return body


def error_entry(id: str, msg: str) -> dict[str, str]:
    """One item of an `errors` list, for routes that report per-item errors with 200."""
    return {"id": id, "msg": msg}
