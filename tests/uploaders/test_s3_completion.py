"""An S3 multipart upload whose completion call outlives the client's read timeout, and progress
that only moves forward (issue 13, items 18 and 19).

The S3 server is moto in server mode.  Between it and the uploader sits a small HTTP relay of this
test's own that forwards every request but holds back the answer to CompleteMultipartUpload until
the test ends: moto has stitched the object together, the client never hears so, exactly as with
a multi-GiB object on a real S3 whose completion takes longer than the read timeout.
"""

from __future__ import annotations

import http.client
import http.server
import threading
from collections.abc import Iterator
from typing import Any

import boto3
import pytest

from core.store import uploads as upload_store
from tests.conftest import loopback_http
from tests.uploaders.conftest import MiB, write_image
from tests.uploaders.test_s3 import KEYS, s3_settings
from uploaders import s3 as s3_target
from uploaders.service import _progress_sink, run_upload


class _Relay:
    """Forwards to moto; `held` counts completion calls whose answer it keeps back."""

    def __init__(self, upstream_port: int):
        self.upstream_port = upstream_port
        self.release = threading.Event()
        self.held = 0
        self.lock = threading.Lock()

    def handler(self) -> type[http.server.BaseHTTPRequestHandler]:
        relay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _forward(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                upstream = http.client.HTTPConnection("127.0.0.1", relay.upstream_port, timeout=60)
                headers = {k: v for k, v in self.headers.items() if k.lower() != "host"}
                headers["Host"] = f"127.0.0.1:{relay.upstream_port}"
                upstream.request(self.command, self.path, body=body, headers=headers)
                answer = upstream.getresponse()
                data = answer.read()
                if self.command == "POST" and "uploadId=" in self.path:
                    with relay.lock:
                        relay.held += 1
                    relay.release.wait()  # the client gives up first; that is the point
                    return
                self.send_response(answer.status)
                for key, value in answer.getheaders():
                    if key.lower() not in ("transfer-encoding", "connection", "content-length"):
                        self.send_header(key, value)
                # a HEAD answer's length is the object's, not the (empty) body's
                self.send_header("Content-Length", answer.getheader("Content-Length", "0")
                                 if self.command == "HEAD" else str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_HEAD = do_DELETE = _forward

        return Handler


@pytest.fixture
def relay(moto_clean) -> Iterator[tuple[_Relay, int]]:
    r = _Relay(moto_clean.port)
    with loopback_http(r.handler()) as port:
        try:
            yield r, port
        finally:
            r.release.set()


def test_completion_past_the_read_timeout_still_finishes(env, moto_clean, relay,
                                                          monkeypatch) -> None:
    monkeypatch.setattr(s3_target, "READ_TIMEOUT", 1)  # the client's patience, not a test wait
    monkeypatch.setattr(s3_target, "COMPLETION_GRACE", 60.0)  # bounds a failing run only
    r, port = relay
    s3 = boto3.client("s3", endpoint_url=moto_clean.url, **KEYS)
    s3.create_bucket(Bucket="images")
    upload_id, path = env.upload_for("s3", s3_settings(f"http://127.0.0.1:{port}"), "qcow2",
                                     "disk.qcow2", image_name="big.qcow2")
    write_image(path, 24 * MiB, [(0, 24 * MiB)])

    assert run_upload(env.config, upload_id, store=env.store) == "FINISHED"
    assert r.held >= 1  # the completion answer really never came
    head = s3.head_object(Bucket="images", Key="big.qcow2")
    assert head["ContentLength"] == 24 * MiB
    upload = env.store.upload(upload_id)
    assert upload.status == "FINISHED" and upload.progress == 1.0
    assert "is complete: 25165824 bytes in 3 parts" in upload_store.read_log(env.db, upload_id)


def test_a_missing_part_is_still_a_failure(env, moto_clean) -> None:
    """A network that never carried the parts leaves no object: the error stands, at once."""
    s3 = boto3.client("s3", endpoint_url=moto_clean.url, **KEYS)
    s3.create_bucket(Bucket="images")
    upload_id, path = env.upload_for("s3", s3_settings("http://127.0.0.1:9"), "qcow2",
                                     "disk.qcow2", image_name="lost.qcow2")
    write_image(path, 4 * MiB, [(0, 4 * MiB)])
    assert run_upload(env.config, upload_id, store=env.store) == "FAILED"


def test_progress_is_monotonic_and_never_100_before_the_end(env) -> None:
    """Reports arrive out of order from part threads and go back on a retried part; the stored
    progress and the log only move forward, and 100 % is written with FINISHED only."""
    upload_id, _ = env.upload_for("s3", {"bucket": "b"}, "qcow2", "disk.qcow2")
    lines: list[str] = []
    stored: list[float] = []
    sink = _progress_sink(env.store, upload_id, lines.append)
    sink.interval = 0.0
    total = 100
    for done in (10, 30, 25, 60, 50, 80, 75, 100, 90, 100):
        sink(done, total)
        stored.append(env.store.upload(upload_id).progress)
    assert stored == sorted(stored)
    assert max(stored) < 1.0
    marks = [line for line in lines if line.startswith("progress:")]
    assert marks == ["progress: 25% of 100 bytes sent", "progress: 50% of 100 bytes sent",
                     "progress: 75% of 100 bytes sent"]
