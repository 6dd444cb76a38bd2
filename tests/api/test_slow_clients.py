"""Slow clients cannot stall the API: real slow clients against the real server.

Twenty clients each send a request one byte at a time (a POST whose body never quite arrives)
on the real `celery-composer serve` socket, one API worker of 4 threads. While they trickle, a
normal request is answered; then each slow client gets a 408 Weldr error and its connection is
closed at the read deadline, though it is still sending.
"""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from app.buffered_worker import BUFFERED_BODY_LIMIT, REQUEST_READ_TIMEOUT, request_complete

SLOW_CLIENTS = 20


class SlowClient(threading.Thread):
    """Sends a blueprint push a byte at a time, every 0.5 s, until told to stop or cut off."""

    HEAD = (b"POST /api/v1/blueprints/new HTTP/1.1\r\nHost: localhost\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n")

    def __init__(self, path: str):
        super().__init__(daemon=True)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.connect(path)
        self.started_sending = threading.Event()
        self.stop = threading.Event()
        self.answer = b""
        self.closed_by_server = threading.Event()

    def run(self) -> None:
        try:
            for i, byte in enumerate(self.HEAD + b"{" + b" " * 99_999):
                self.sock.send(bytes([byte]))
                if i == 0:
                    self.started_sending.set()
                if self.stop.wait(0.5):
                    return
        except OSError:  # the server closed the connection: read what it said
            pass
        finally:
            self._read_answer()

    def _read_answer(self) -> None:
        self.sock.settimeout(5)
        try:
            while chunk := self.sock.recv(65536):
                self.answer += chunk
            self.closed_by_server.set()
        except (ConnectionResetError, BrokenPipeError):
            # the server closed with our unsent bytes unread: a unix socket reports that as a
            # reset once what the server sent has been read
            self.closed_by_server.set()
        except OSError:
            pass


def test_a_normal_request_is_answered_while_slow_clients_trickle(start_weldr_server):
    server = start_weldr_server(workers=1)
    slow = [SlowClient(str(server.socket)) for _ in range(SLOW_CLIENTS)]
    for client in slow:
        client.start()
    try:
        for client in slow:
            assert client.started_sending.wait(30)
        # every slow client has a request under way; a normal one is still answered (the bound is
        # generous: with threads held by the slow clients it would wait as long as they trickle)
        r = server.client.get("/api/status", timeout=REQUEST_READ_TIMEOUT * 2 / 3)
        assert r.status == 200 and r.json()["api"] == "1"
        r = server.client.post("/api/v1/blueprints/new", {"name": "fast-one", "version": "0.0.1"},
                               timeout=REQUEST_READ_TIMEOUT * 2 / 3)
        assert r.status == 200, r
        assert not any(c.closed_by_server.is_set() for c in slow), "slow clients ended too early"

        # still sending, each is cut off at the read deadline with a 408 Weldr error
        for client in slow:
            assert client.closed_by_server.wait(REQUEST_READ_TIMEOUT * 4), "slow client never cut off"
        for client in slow:
            head, _, body = client.answer.partition(b"\r\n\r\n")
            assert head.startswith(b"HTTP/1.1 408"), client.answer[:200]
            assert json.loads(body)["errors"][0]["code"] == 408
        assert server.client.get("/api/v1/blueprints/list").json()["blueprints"] == ["fast-one"]
    finally:
        for client in slow:
            client.stop.set()


@pytest.mark.parametrize("data,complete", [
    (b"GET / HTTP/1.1\r\nHost: x\r\n", False),
    (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", True),
    (b"POST / HTTP/1.1\r\nContent-Length: 3\r\n\r\nab", False),
    (b"POST / HTTP/1.1\r\ncontent-length: 3\r\n\r\nabc", True),
    (b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n", None),
    (b"POST / HTTP/1.1\r\nContent-Length: %d\r\n\r\n" % (BUFFERED_BODY_LIMIT + 1), None),
    (b"GET / HTTP/1.1\r\nX: " + b"a" * 70_000, None),
])
def test_when_a_request_is_whole(data, complete):
    assert request_complete(data) is complete


def test_deadline_socket_stops_a_trickling_body():
    from app.buffered_worker import DeadlineSocket

    a, b = socket.socketpair()
    with a, b:
        wrapped = DeadlineSocket(a, time.monotonic() + 0.5)
        b.send(b"x")
        assert wrapped.recv(10) == b"x"
        assert a.gettimeout() is None  # blocking again between reads: responses are not bounded
        with pytest.raises(TimeoutError):
            wrapped.recv(10)  # nothing more arrives before the deadline


def test_a_client_waiting_for_100_continue_is_told_to_go_on(start_weldr_server):
    """curl and others send `Expect: 100-continue` and hold the body until the server agrees."""
    server = start_weldr_server(workers=1)
    body = json.dumps({"name": "expecting", "version": "0.0.1"}).encode()
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(REQUEST_READ_TIMEOUT / 2)  # generous; the 100 comes as the headers do
        sock.connect(str(server.socket))
        sock.sendall(b"POST /api/v1/blueprints/new HTTP/1.1\r\nHost: localhost\r\n"
                     b"Content-Type: application/json\r\nExpect: 100-continue\r\n"
                     b"Content-Length: %d\r\n\r\n" % len(body))
        assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
        sock.sendall(body)
        answer = b""
        while b'{"status":true}' not in answer:
            chunk = sock.recv(4096)
            assert chunk, answer
            answer += chunk
    assert b"HTTP/1.1 200" in answer
