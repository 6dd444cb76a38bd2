"""Downloading repository files over file://, http:// and https://, with retries.

Mirrors fail transiently (a 503 while a mirror syncs, a reset connection), and a compose should
not fail for that; a 404 or a refused certificate, on the other hand, will not heal by waiting,
so only the transient kinds are retried, with exponential backoff.  The standard library is
enough here and keeps `celery-composer depsolve` quick to start.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
import time
import urllib.parse
from pathlib import Path
from typing import TYPE_CHECKING

from core.records import Record, field

if TYPE_CHECKING:
    import urllib.request

USER_AGENT = "celery-composer-depsolve/1"
# Attempts per URL and the first backoff delay (doubled after each failed attempt).
ATTEMPTS = 4
BACKOFF = 0.25
TIMEOUT = 30.0
# HTTP statuses worth another try: the server may answer differently in a moment.
TRANSIENT_STATUSES = frozenset({408, 425, 429, 500, 502, 503, 504})
_CHUNK = 1 << 20


class TransportError(Exception):
    """One URL could not be read; `reason` is short and human, `transient` says whether retried."""

    def __init__(self, url: str, reason: str, transient: bool = False) -> None:
        super().__init__(url, reason, transient)
        self.url = url
        self.reason = reason
        self.transient = transient

    def __str__(self) -> str:
        return f"{self.url}: {self.reason}"


class FetchOptions(Record, frozen=True):
    """How to reach one repository's servers."""

    proxy: str | None = None
    sslverify: bool = True
    # Read when an options value is made, so a deployment (or a test) can tune the module's.
    attempts: int = field(default_factory=lambda: ATTEMPTS)
    backoff: float = field(default_factory=lambda: BACKOFF)
    timeout: float = field(default_factory=lambda: TIMEOUT)


def _opener(options: FetchOptions) -> "urllib.request.OpenerDirector":
    # urllib.request pulls in http.client, email and ssl: a tenth of a second a warm CLI run
    # (which fetches nothing) need not pay, so it is imported on first use.
    import ssl
    import urllib.request

    handlers: list[urllib.request.BaseHandler] = []
    # An explicit proxy only: the environment's proxies must not redirect repository traffic
    # that the repository definition did not ask to proxy.
    proxies = {"http": options.proxy, "https": options.proxy} if options.proxy else {}
    handlers.append(urllib.request.ProxyHandler(proxies))
    if not options.sslverify:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        handlers.append(urllib.request.HTTPSHandler(context=context))
    return urllib.request.build_opener(*handlers)


def _local_path(url: str) -> Path:
    parsed = urllib.parse.urlsplit(url)
    return Path(urllib.parse.unquote(parsed.path))


def _open_once(url: str, options: FetchOptions):
    """One attempt: a readable response or a TransportError saying whether to retry."""
    if url.startswith("file:"):
        path = _local_path(url)
        try:
            return open(path, "rb")
        except FileNotFoundError:
            raise TransportError(url, "file not found") from None
        except OSError as exc:
            raise TransportError(url, exc.strerror or str(exc)) from None
    import ssl
    import urllib.error
    import urllib.request

    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    try:
        return _opener(options).open(request, timeout=options.timeout)
    except urllib.error.HTTPError as exc:
        exc.close()
        transient = exc.code in TRANSIENT_STATUSES
        raise TransportError(url, f"HTTP {exc.code} {exc.reason}", transient) from None
    except urllib.error.URLError as exc:
        reason = exc.reason
        if isinstance(reason, ssl.SSLCertVerificationError):
            raise TransportError(url, f"TLS certificate rejected: {reason.verify_message}") from None
        text = getattr(reason, "strerror", None) or str(reason)
        raise TransportError(url, text, transient=True) from None
    except (TimeoutError, ConnectionError) as exc:
        raise TransportError(url, str(exc) or type(exc).__name__, transient=True) from None
    except ValueError as exc:
        raise TransportError(url, f"invalid URL ({exc})") from None


def _with_retries(url: str, options: FetchOptions, action):
    delay = options.backoff
    for attempt in range(1, max(1, options.attempts) + 1):
        try:
            return action()
        except TransportError as exc:
            if not exc.transient or attempt >= options.attempts:
                if exc.transient and options.attempts > 1:
                    exc.reason = f"{exc.reason} (after {attempt} attempts)"
                raise
        except (TimeoutError, ConnectionError, OSError) as exc:
            # A connection dropped in the middle of a body.
            if attempt >= options.attempts:
                raise TransportError(url, f"{exc} (after {attempt} attempts)", True) from None
        time.sleep(delay)
        delay *= 2
    raise AssertionError("unreachable")


def fetch_bytes(url: str, options: FetchOptions | None = None) -> bytes:
    """The whole body of a small document (repomd.xml, a metalink, a mirrorlist)."""
    options = options or FetchOptions()

    def attempt() -> bytes:
        with _open_once(url, options) as response:
            return response.read()

    return _with_retries(url, options, attempt)


def fetch_file(url: str, dest: Path, *, checksum_type: str | None = None,
               checksum: str | None = None, options: FetchOptions | None = None) -> None:
    """Download `url` to `dest` atomically, verifying the checksum the repomd announced.

    The body goes to a temporary file in the destination directory and is renamed into place
    only once complete and verified, so concurrent readers never see half a file.
    """
    options = options or FetchOptions()

    def attempt() -> None:
        digest = hashlib.new(checksum_type) if checksum_type else None
        fd, tmp = tempfile.mkstemp(dir=dest.parent, prefix=".part-")
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o664 & ~umask)  # shared with the other workers (see metadata._share)
        try:
            with os.fdopen(fd, "wb") as out, _open_once(url, options) as response:
                while True:
                    block = response.read(_CHUNK)
                    if not block:
                        break
                    if digest is not None:
                        digest.update(block)
                    out.write(block)
            if digest is not None and checksum and digest.hexdigest() != checksum.lower():
                raise TransportError(
                    url, f"{checksum_type} checksum mismatch: expected {checksum}, "
                         f"got {digest.hexdigest()}", transient=True)
            os.replace(tmp, dest)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    _with_retries(url, options, attempt)

