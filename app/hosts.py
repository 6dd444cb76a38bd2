"""Requests on the TCP listener must name this server: Host and Origin are checked.

Why: the Weldr API has no authentication; its TCP listener (`listen`, or the HTTP socket unit) is
meant for loopback. A web page in the user's browser can still reach it: with a cross-site form
(CSRF: a `text/plain` POST needs no CORS preflight) or by DNS rebinding (the attacker's name
resolving to 127.0.0.1, so the page reads the answers). Both carry the attacker's name, in `Origin`
or `Host`. So on TCP a request is answered only when its Host (and its Origin, when it has one)
is a loopback name, the `listen` address, or one of `allowed_hosts`. The unix socket is only
reachable by local processes with the socket's permissions and is not checked. JSON routes also
require a JSON Content-Type (`app.params`), which no cross-site form can send.
"""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from core.errors import WeldrError

LOOPBACK_NAMES = frozenset({"localhost", "localhost.localdomain", "127.0.0.1", "::1"})
_ANY_ADDRESS = ("0.0.0.0", "::", "")


def allowed_names(config: Any) -> frozenset[str]:
    """Loopback, the host `listen` names (unless it is the any-address) and `allowed_hosts`."""
    names = set(LOOPBACK_NAMES)
    listen_host = _hostname(config.listen.rsplit(":", 1)[0]) if config.listen else ""
    if listen_host not in _ANY_ADDRESS:
        names.add(listen_host)
    names.update(_hostname(h) for h in config.allowed_hosts)
    return frozenset(names)


def over_tcp(environ: dict[str, Any]) -> bool:
    """Whether gunicorn took the request on a TCP listener (not on the unix socket)."""
    sock = environ.get("gunicorn.socket")
    return sock is not None and getattr(sock, "family", None) in (socket.AF_INET, socket.AF_INET6)


def check_request(environ: dict[str, Any], headers: Any, allowed: frozenset[str]) -> None:
    """Raise a 403 Weldr error when a TCP request names a host this server is not."""
    if "*" in allowed or not over_tcp(environ):
        return
    host = headers.get("Host")
    if host is not None and _hostname(host) not in allowed:
        raise WeldrError("HTTPError", f"Forbidden: this server does not answer to host "
                                      f"'{host}' (add it to allowed_hosts)", 403)
    origin = headers.get("Origin")
    if origin is not None:
        parts = urlsplit(origin)
        if parts.scheme not in ("http", "https") or _hostname(parts.hostname or "") not in allowed:
            raise WeldrError("HTTPError", f"Forbidden: requests from origin '{origin}' are not "
                                          "answered (add its host to allowed_hosts)", 403)


def _hostname(value: str) -> str:
    """`Host`-header or address text without port and brackets, lower case, no trailing dot."""
    value = value.strip().lower()
    if value.startswith("["):  # [::1]:8700
        value = value[1:value.find("]")] if "]" in value else value[1:]
    elif value.count(":") == 1:  # name:port (a bare IPv6 address has several colons)
        value = value.split(":", 1)[0]
    return value.rstrip(".")
