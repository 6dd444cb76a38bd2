"""The API's gunicorn worker: gthread (with `app.gunicorn_worker`'s JSON error answers), each
request read whole before a thread takes it.

Why: gunicorn's gthread worker hands a connection to one of its few threads (`api_workers` × 4
here) as soon as a byte arrives, and the thread then blocks reading the rest. Twelve clients
sending a byte every 2 s held every thread and stalled the whole API for as long as they
trickled. Here the worker's event loop reads each request (headers, and a body up to
`BUFFERED_BODY_LIMIT`) without blocking and submits it to the thread pool only once it is all
there, so a slow client costs a socket and a buffer, never a thread. A request not complete
within `REQUEST_READ_TIMEOUT` seconds of its first byte (of the accept, for a new connection) is
answered 408 and its connection closed. A larger body (uploads of huge blueprints are the only
ones) goes to a thread after its headers, read through a socket that enforces the same deadline.
"""

from __future__ import annotations

import errno
import re
import selectors
import socket
import time
from functools import partial
from typing import Any

from gunicorn.workers.gthread import TConn

from app.gunicorn_worker import WeldrThreadWorker, error_reply

REQUEST_READ_TIMEOUT = 30.0  # seconds for one request's headers and body to arrive
BUFFERED_BODY_LIMIT = 1024 * 1024  # larger bodies are read by the thread (with the deadline)
HEADERS_LIMIT = 64 * 1024  # past this without an end of headers the parser refuses it anyway
_CONTENT_LENGTH = re.compile(rb"\r\ncontent-length:[ \t]*([0-9]+)[ \t]*\r\n", re.IGNORECASE)
_CHUNKED = re.compile(rb"\r\ntransfer-encoding:[^\r\n]*chunked", re.IGNORECASE)
_EXPECT_CONTINUE = re.compile(rb"\r\nexpect:[ \t]*100-continue[ \t]*\r\n", re.IGNORECASE)
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
TIMEOUT_RESPONSE = error_reply(408, "Request Timeout", f"the request was not received within "
                               f"{REQUEST_READ_TIMEOUT:g} s")


class DeadlineSocket:
    """A socket whose reads fail (TimeoutError) once `deadline` (monotonic) has passed.

    Between reads the socket is blocking again: the response is written without a timeout (an
    image download may take long; sendall's timeout would bound the whole transfer).
    """

    def __init__(self, sock: socket.socket, deadline: float):
        self._sock = sock
        self.deadline = deadline

    def _arm(self) -> None:
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            raise TimeoutError(errno.ETIMEDOUT, "request body not received in time")
        self._sock.settimeout(remaining)

    def recv(self, size: int, *args: Any) -> bytes:
        self._arm()
        try:
            return self._sock.recv(size, *args)
        finally:
            self._sock.settimeout(None)

    def recv_into(self, buffer: Any, *args: Any) -> int:
        self._arm()
        try:
            return self._sock.recv_into(buffer, *args)
        finally:
            self._sock.settimeout(None)

    def setblocking(self, flag: bool) -> None:
        self._sock.setblocking(flag)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._sock, name)


def request_complete(data: bytes) -> bool | None:
    """True when `data` holds a whole request, False when more must come, None when the thread
    should take it now (headers done but the body is too large or chunked: read with a deadline;
    or the headers are over the limit: the parser answers that)."""
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None if len(data) > HEADERS_LIMIT else False
    head = data[:end + 2]
    if _CHUNKED.search(head):
        return None
    match = _CONTENT_LENGTH.search(head)
    length = int(match.group(1)) if match else 0
    if length > BUFFERED_BODY_LIMIT:
        return None
    return len(data) - (end + 4) >= length


class BufferedThreadWorker(WeldrThreadWorker):
    """gthread, except that requests are read in the event loop (see the module's docstring)."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.reading: dict[TConn, tuple[bytearray, float]] = {}  # conn → (bytes so far, deadline)
        self.continued: set[TConn] = set()  # told "100 Continue" for the request being read

    def accept(self, listener: Any) -> None:
        try:
            client_sock, client_addr = listener.accept()
        except OSError as e:
            if e.errno not in (errno.EAGAIN, errno.ECONNABORTED, errno.EWOULDBLOCK):
                raise
            return
        self.nr_conns += 1
        conn = TConn(self.cfg, client_sock, client_addr, listener.getsockname())  # non-blocking
        self._start_reading(conn)

    def on_client_socket_readable(self, conn: TConn, client: Any) -> None:
        """A kept-alive connection has its next request coming: read it here too."""
        self.poller.unregister(client)
        self.keepalived_conns.remove(conn)
        conn.sock.setblocking(False)
        self._start_reading(conn)

    def _start_reading(self, conn: TConn) -> None:
        self.reading[conn] = (bytearray(), time.monotonic() + REQUEST_READ_TIMEOUT)
        self.poller.register(conn.sock, selectors.EVENT_READ, partial(self._on_bytes, conn))

    def _on_bytes(self, conn: TConn, client: Any) -> None:
        buffer, deadline = self.reading[conn]
        try:
            data = conn.sock.recv(65536)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:  # the client went away mid-request
            self._drop(conn)
            return
        buffer += data
        complete = request_complete(bytes(buffer))
        if complete is False:
            self._maybe_continue(conn, buffer)
            return
        self.poller.unregister(conn.sock)
        del self.reading[conn]
        self.continued.discard(conn)
        conn.sock.setblocking(True)
        conn.init()  # the parser, on a socket that stops reading at the deadline
        if not isinstance(conn.parser.unreader.sock, DeadlineSocket):
            conn.parser.unreader.sock = DeadlineSocket(conn.parser.unreader.sock, deadline)
        conn.parser.unreader.sock.deadline = deadline
        conn.parser.unreader.unread(bytes(buffer))
        conn.data_ready = True
        self.enqueue_req(conn)

    def _maybe_continue(self, conn: TConn, buffer: bytearray) -> None:
        """A client that sent `Expect: 100-continue` waits for this before sending its body (the
        thread's gunicorn may say it again later: clients take several 1xx answers)."""
        if conn in self.continued:
            return
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(buffer[:end + 2])
        if _EXPECT_CONTINUE.search(head) and not head.split(b"\r\n", 1)[0].endswith(b"HTTP/1.0"):
            self.continued.add(conn)
            try:
                conn.sock.send(CONTINUE)
            except OSError:
                pass

    def _drop(self, conn: TConn, answer: bytes = b"") -> None:
        self.reading.pop(conn, None)
        self.continued.discard(conn)
        try:
            self.poller.unregister(conn.sock)
        except (KeyError, ValueError, OSError):
            pass
        if answer:
            try:
                conn.sock.send(answer)  # small: fits the socket buffer of a fresh connection
            except OSError:
                pass
        self.nr_conns -= 1
        conn.close()

    def murder_pending(self) -> None:
        """Also close requests not received within REQUEST_READ_TIMEOUT (called every loop)."""
        super().murder_pending()
        now = time.monotonic()
        for conn, (_buffer, deadline) in list(self.reading.items()):
            if deadline <= now:
                self.log.info("closing a connection from %s: request not received in %g s",
                              conn.client or "the unix socket", REQUEST_READ_TIMEOUT)
                self._drop(conn, TIMEOUT_RESPONSE)

    def murder_keepalived(self, force: bool = False) -> None:
        super().murder_keepalived(force)
        if force:  # stopping: requests still arriving are not waited for
            for conn in list(self.reading):
                self._drop(conn)
