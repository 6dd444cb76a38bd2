"""Tar archives streamed to the client: compose results hold whole disk images (gigabytes), so
the archive is produced as it is sent, never built in memory or on disk."""

from __future__ import annotations

import tarfile
import time
from pathlib import Path
from typing import Iterable, Iterator

from flask import Response

BLOCK = tarfile.BLOCKSIZE
CHUNK = 1 << 20


def _header(name: str, size: int, mtime: float) -> bytes:
    info = tarfile.TarInfo(name)
    info.size = size
    info.mtime = int(mtime)
    info.mode = 0o644
    return info.tobuf(format=tarfile.PAX_FORMAT)


def _padding(size: int) -> bytes:
    return b"\0" * ((BLOCK - size % BLOCK) % BLOCK)


def tar_stream(members: Iterable[tuple[str, bytes | Path]]) -> Iterator[bytes]:
    """Members are (name in the archive, bytes or a file path); a file is read in chunks."""
    now = time.time()
    for name, content in members:
        if isinstance(content, (bytes, bytearray)):
            yield _header(name, len(content), now) + bytes(content) + _padding(len(content))
            continue
        with open(content, "rb") as fh:
            size = Path(content).stat().st_size
            yield _header(name, size, Path(content).stat().st_mtime)
            sent = 0
            while sent < size:
                block = fh.read(min(CHUNK, size - sent))
                if not block:  # the file shrank while we sent it: keep the archive well-formed
                    block = b"\0" * min(CHUNK, size - sent)
                sent += len(block)
                yield block
            yield _padding(size)
    yield b"\0" * (2 * BLOCK)


def tar_response(filename: str, members: list[tuple[str, bytes | Path]]) -> Response:
    resp = Response(tar_stream(members), content_type="application/x-tar",
                    direct_passthrough=True)
    resp.headers["Content-Disposition"] = f"attachment; filename={filename}"
    return resp
